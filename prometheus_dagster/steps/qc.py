"""Pre-open quality checks of a market's session: ingestion (from ``ingestion_runs``), engine
outputs present, decision records logged, target portfolios within their limits. See
``docs/engines/qc.md``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import TABLES
from prometheus_dagster.engines.qc import (
    QcLimits,
    check_decisions,
    check_exposures,
    check_ingestion,
    check_outputs,
    qc_report,
)

# engine tables that must have rows on every session with prices
REQUIRED_OUTPUTS = {"returns_daily", "volatility_daily", "liquidity_daily",
                    "market_correlation_daily"}
# engines that log decisions, with the output table that says they ran
DECISION_ENGINES = {"regime": "regimes", "stability": "stability_vectors",
                    "scenarios": "scenario_sets", "soft_targets": "soft_target_classes",
                    "fragility_alpha": "fragility_alpha", "assessment": "instrument_scores",
                    "universe": "universes", "portfolio": "target_portfolios"}
# read, but no asset of its own (every decision engine writes its records there): declared
# for the lineage test, not a Dagster dependency
DECISIONS_TABLE = "engine_decisions"


def qc_inputs(engine_tables: list[str]) -> Inputs:
    """What the checks of session D read: D's rows of the market's engine tables (counted, and
    the target portfolios' weights) and D's decision records. The ingestion check reads
    ``ingestion_runs`` (bookkeeping, not declared)."""
    return Inputs(*(Read(t) for t in engine_tables), Read(DECISIONS_TABLE))


def qc_deps(inputs: Inputs) -> Inputs:
    return Inputs(*(r for r in inputs if r.table != DECISIONS_TABLE))


def strategy_limits(market_id: str) -> dict[str, QcLimits]:
    """Exposure limits of each portfolio on the market, from its strategy config."""
    from prometheus_dagster.engines.strategy import StrategyConfig, load_strategies, portfolio_id

    out = {}
    for sid, loaded in load_strategies().items():
        cfg = loaded.typed(StrategyConfig)
        if market_id not in cfg.markets:
            continue
        lim = cfg.portfolio
        gross = lim.gross_limit if lim.gross_limit is not None else max(abs(lim.budget), 1.0)
        out[portfolio_id(sid, market_id)] = QcLimits(
            max_weight=max(lim.max_weight, -lim.min_weight), max_gross=gross)
    return out


def _exists(reader: Any, table: str) -> bool:
    return table in TABLES and reader.table_exists(table)


def _counts(window: InputWindow, table: str) -> dict[pd.Timestamp, int] | None:
    """Rows per date of a declared table; None when the table is absent."""
    if not _exists(window.reader, table):
        return None
    col = TABLES[table].partition_column
    assert col is not None
    days = pd.to_datetime(window.frame(table, columns=[col])[col]).dt.normalize()
    found = days.value_counts().to_dict()
    return {d: int(found.get(d, 0)) for d in window.dates}


def _not_in_chain(reader: Any, table: str, dates: list[pd.Timestamp]
                  ) -> dict[pd.Timestamp, int] | None:
    """A decision engine's table the market's chain does not write: no rows of this market
    (None when no market writes it)."""
    return dict.fromkeys(dates, 0) if _exists(reader, table) else None


def preopen_checks(reader: Any, market_id: str, dates: list[pd.Timestamp],
                   ingested: list[str], engine_tables: list[str],
                   limits: QcLimits | dict[str, QcLimits]) -> pd.DataFrame:
    """The pre-open report rows of ``dates`` (sessions) of a market."""
    window = InputWindow(reader, qc_inputs(engine_tables), market_id, dates)
    runs = reader.read("ingestion_runs", where={"market_id": market_id, "date": dates})
    outputs = {t: c for t in engine_tables if (c := _counts(window, t)) is not None}
    produced = {t: c for t in DECISION_ENGINES.values()
                if (c := outputs.get(t) if t in engine_tables
                    else _not_in_chain(reader, t, dates)) is not None}
    decisions = pd.DataFrame(columns=["engine_name", "as_of_date"])
    if reader.table_exists(DECISIONS_TABLE):
        decisions = window.frame(DECISIONS_TABLE, columns=["engine_name", "as_of_date"])
    portfolios = None
    if _exists(reader, "target_portfolios"):
        portfolios = (window.frame("target_portfolios") if "target_portfolios" in engine_tables
                      else pd.DataFrame(columns=["portfolio_id", "instrument_id", "weight"]))
    reports = []
    for d in dates:
        logged = decisions[pd.to_datetime(decisions["as_of_date"]) == d][
            "engine_name"].value_counts().to_dict()
        weights = (None if portfolios is None
                   else portfolios[pd.to_datetime(portfolios["as_of_date"]) == d]
                   if len(portfolios) else portfolios)
        rows = (check_ingestion(runs[pd.to_datetime(runs["date"]) == d], ingested)
                + check_outputs({t: c[d] for t, c in outputs.items()}, REQUIRED_OUTPUTS)
                + check_decisions({t: c[d] for t, c in produced.items()}, logged,
                                  DECISION_ENGINES)
                + check_exposures(weights, limits))
        reports.append(qc_report(market_id, d, rows))
    return pd.concat(reports, ignore_index=True)
