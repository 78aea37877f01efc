"""Universe engine (``docs/engines/universe.md``): per strategy, market and date, which
candidates are CORE, SATELLITE or EXCLUDED, after hard filters, quality screens, soft-target
handling, ranking by assessment score, a per-sector cap and a maximum size. Every exclusion
carries a reason."""

from prometheus_dagster.engines.universe import schemas  # noqa: F401  (declares the table)
from prometheus_dagster.engines.universe.candidates import (
    status_on,
    universe_candidates,
    universe_candidates_range,
)
from prometheus_dagster.engines.universe.rules import SIDES, TIERS, UniverseRules
from prometheus_dagster.engines.universe.select import (
    CANDIDATE_COLUMNS,
    hard_reasons,
    select_universe,
    select_universes,
)

__all__ = ["CANDIDATE_COLUMNS", "SIDES", "TIERS", "UniverseRules", "hard_reasons",
           "select_universe", "select_universes", "status_on",
           "universe_candidates", "universe_candidates_range"]
