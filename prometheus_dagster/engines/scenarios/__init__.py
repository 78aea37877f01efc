"""The synthetic scenario engine: per market and as-of date D, scenario sets of per-instrument
step-return paths over a horizon, from data dated on or before D only.

* ``config``: the ``scenarios`` config: bounds and the set specs of six families.
* ``inputs``: ``ScenarioInputs`` (returns, factors, regime labels, exposures, sectors,
  weakness), the base window and exposures.
* ``paths``: block bootstrap indices, correlation stress, bounds, path statistics.
* ``generators``: HISTORICAL, BOOTSTRAP, FACTOR_BOOTSTRAP, SHOCK_OVERLAY,
  FRAGILITY_ADVERSARIAL and NAMED.
* ``sets``: set ids, seeding, ``ScenarioDay`` (a date's inputs and base windows, prepared once),
  generation, table rows, regeneration from a stored row.
* ``errors``: ``ScenarioError``.

Importing the package declares the ``scenario_sets`` and ``scenario_paths`` tables and
registers the ``scenarios`` config.
"""

from prometheus_dagster.engines.scenarios import schemas  # noqa: F401  (declares the tables)
from prometheus_dagster.engines.scenarios.config import (
    CATEGORIES,
    FAMILIES,
    AdversarialShock,
    Bounds,
    CrashGap,
    CreditFreeze,
    NamedShock,
    ScenariosConfig,
    ScenarioSetSpec,
    VolSpike,
)
from prometheus_dagster.engines.scenarios.errors import ScenarioError
from prometheus_dagster.engines.scenarios.inputs import ScenarioInputs
from prometheus_dagster.engines.scenarios.paths import cumulative_returns, path_statistics
from prometheus_dagster.engines.scenarios.sets import (
    GeneratedSet,
    ScenarioDay,
    generate_scenario_set,
    generate_scenarios,
    regenerate_paths,
    scenario_frames,
    scenario_path_frame,
    scenario_seed_sequence,
    scenario_set_frame,
    scenario_set_id,
)

__all__ = [
    "CATEGORIES",
    "FAMILIES",
    "AdversarialShock",
    "Bounds",
    "CrashGap",
    "CreditFreeze",
    "GeneratedSet",
    "NamedShock",
    "ScenarioDay",
    "ScenarioError",
    "ScenarioInputs",
    "ScenarioSetSpec",
    "ScenariosConfig",
    "VolSpike",
    "cumulative_returns",
    "generate_scenario_set",
    "generate_scenarios",
    "path_statistics",
    "regenerate_paths",
    "scenario_frames",
    "scenario_path_frame",
    "scenario_seed_sequence",
    "scenario_set_frame",
    "scenario_set_id",
]
