"""The daily brief's inputs: what ``engines.brief.collect_brief`` reads for a GLOBAL business
day D across the data markets. See ``docs/engines/brief.md``.

``collect_brief`` reads point in time (rows dated on or before D). Its windows are in calendar
days for regimes and stability (252) and the paper books (10); they are declared in sessions,
which span at least as many calendar days.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_dagster.core.calendars import GLOBAL
from prometheus_dagster.core.inputs import Inputs, Read

HISTORY_SESSIONS = 126  # engines.brief.collect.HISTORY_SESSIONS: the index history shown
CALENDAR_WINDOW = 2 * HISTORY_SESSIONS  # regimes and market stability: calendar days
PAPER_SESSIONS = 10  # the previous paper book is looked for 10 calendar days back
# tables whose rows on D are counted in the pipeline-status section (engines.brief CHAIN)
STATUS_TABLES = ("prices_daily", "news_articles", "returns_daily", "factors_daily",
                 "text_embeddings", "soft_target_classes", "scenario_sets",
                 "fragility_measures")
STATUS_TABLES_ENCODED = ("numeric_window_embeddings", "joint_embeddings", "profiles",
                         "fragility_alpha", "instrument_scores", "universes",
                         "target_portfolios", "portfolio_risk_reports")
# read, with no asset of their own: the model registry (every refit writes it) and the decision
# records (every decision engine writes them; the brief reads the universes'); declared for the
# lineage test, not Dagster dependencies
NO_ASSET_TABLES = ("models", "engine_decisions")


def brief_inputs(data_markets: Sequence[str], encoded: Sequence[str],
                 regions: Sequence[str]) -> Inputs:
    """Per data market: D's rows of the status tables, the index history (market internals,
    ``HISTORY_SESSIONS``), market stability (``CALENDAR_WINDOW``), soft targets; per region
    its regimes (``CALENDAR_WINDOW``); per market with the investment chain its profiles (D and
    the session before), fragility alpha, scores, universes (and their decision records),
    target portfolios, risk reports and paper books; the models in use."""
    reads: list[Read] = []
    for m in data_markets:
        chain = m in encoded
        tables = STATUS_TABLES + (STATUS_TABLES_ENCODED if chain else ())
        for t in tables:
            if t == "profiles":
                reads.append(Read(t, market=m, sessions=1, note="D and the session before"))
            else:
                reads.append(Read(t, market=m))
        reads.append(Read("market_correlation_daily", market=m, sessions=HISTORY_SESSIONS))
        reads.append(Read("stability_vectors", market=m, sessions=CALENDAR_WINDOW))
        if chain:
            reads.append(Read("positions_snapshots", market=m, sessions=PAPER_SESSIONS,
                              asset="paper_execution"))
            reads.append(Read("fills", market=m, asset="paper_execution", note="D's fills"))
    reads += [Read("regimes", market=r, sessions=CALENDAR_WINDOW) for r in regions]
    reads += [Read(t, market=GLOBAL, reference=True) for t in NO_ASSET_TABLES]
    return Inputs(*reads)


def brief_deps(inputs: Inputs) -> Inputs:
    """The declared inputs that are Dagster assets."""
    return Inputs(*(r for r in inputs if r.table not in NO_ASSET_TABLES))
