"""Pre-open quality checks of a market's session: ingestion (from ``ingestion_runs``), engine
outputs present, decision records logged, target portfolios within their limits, inputs fresh.
See ``docs/engines/qc.md``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from prometheus_dagster.core.calendars import GLOBAL, trading_calendar
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import TABLES
from prometheus_dagster.engines.qc import (
    Age,
    QcLimits,
    check_decisions,
    check_exposures,
    check_freshness,
    check_ingestion,
    check_missing_prices,
    check_outputs,
    qc_report,
)
from prometheus_dagster.engines.qc.config import Freshness, QcConfig

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


def qc_config() -> LoadedConfig:
    return load_engine_config("qc")


def _macro_business_days(fresh: Freshness) -> int:
    """GLOBAL business days covering the oldest macro observation still fresh."""
    return math.ceil(fresh.macro_lookback_days() * 5 / 7) + 1


def qc_inputs(engine_tables: list[str], macro: bool = False,
              fresh: Freshness | None = None) -> Inputs:
    """What the checks of session D read: D's rows of the market's engine tables (counted, and
    the target portfolios' weights), D's decision records, and for freshness the prices and
    delistings of the sessions before D and (``macro``: the market's regimes read macro series)
    the macro series of the months before D. The ingestion and freshness checks also read
    ``ingestion_runs`` (bookkeeping, not declared)."""
    fresh = fresh or qc_config().typed(QcConfig).freshness
    engine = [t for t in engine_tables if t not in ("prices_daily", "corporate_actions")]
    reads = [*(Read(t) for t in engine), Read(DECISIONS_TABLE),
             Read("prices_daily", sessions=fresh.active_sessions,
                  note="instruments priced before D and not on D"),
             Read("corporate_actions", sessions=fresh.active_sessions,
                  note="delistings of those instruments")]
    if macro:
        reads.append(Read("macro_time_series", sessions=_macro_business_days(fresh),
                          market=GLOBAL, note="newest observation of each series read"))
    return Inputs(*reads)


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


def _table_ages(runs: pd.DataFrame, market_id: str, day: pd.Timestamp,
                fresh: Freshness) -> list[Age]:
    """Newest date up to ``day`` on which each ingested table with a cadence delivered rows
    (its latest unit of that date succeeded), from ``ingestion_runs``."""
    cal = trading_calendar(market_id)
    latest = runs[pd.to_datetime(runs["date"]) <= day].sort_values("finished_at").groupby(
        ["table_name", "date"]).tail(1) if len(runs) else runs
    out = []
    for table, limit in fresh.max_age_sessions.items():
        rows = latest[(latest["table_name"] == table) & (latest["status"] == "SUCCESS")
                      & (latest["row_count"] > 0)] if len(latest) else latest
        newest = pd.Timestamp(rows["date"].max()).normalize() if len(rows) else None
        age = 0 if newest is None else cal.trading_days_between(newest, day) - 1
        out.append(Age(table, newest, age, limit, "sessions"))
    return out


def _missing_prices(prices: pd.DataFrame, delisted: set[str], market_id: str,
                    day: pd.Timestamp, fresh: Freshness) -> tuple[list[str], int]:
    """Instruments priced in the ``active_sessions`` before ``day``, with no price on it."""
    start = trading_calendar(market_id).previous_trading_day(day, fresh.active_sessions)
    dates = pd.to_datetime(prices["date"])
    active = set(prices.loc[(dates >= start) & (dates < day), "instrument_id"])
    on_day = set(prices.loc[dates == day, "instrument_id"])
    return sorted(active - on_day - delisted), len(active - delisted)


def _macro_ages(macro: pd.DataFrame, roles: Mapping[str, Sequence[str]], day: pd.Timestamp,
                fresh: Freshness) -> list[Age]:
    """Per macro role the market's regimes read: its first candidate series observed in the
    window (the one the regimes use), or the role is not delivered."""
    out = []
    for role, candidates in roles.items():
        seen = macro[macro["series_id"].isin(candidates)]
        used = next((c for c in candidates if (seen["series_id"] == c).any()), None)
        if used is None:
            out.append(Age(f"macro/{role}", None, 0, 0, "days"))
            continue
        rows = seen[seen["series_id"] == used]
        newest = pd.Timestamp(pd.to_datetime(rows["date"]).max()).normalize()
        limit = fresh.max_age_days.get(str(rows["frequency"].iloc[-1]),
                                       fresh.macro_lookback_days())
        out.append(Age(f"macro/{role} ({used})", newest, int((day - newest).days), limit,
                       "days"))
    return out


def freshness_rows(window: InputWindow, runs: pd.DataFrame, day: pd.Timestamp,
                   macro_roles: Mapping[str, Sequence[str]], fresh: Freshness,
                   frames: dict[str, pd.DataFrame]) -> list[dict]:
    """The freshness rows of one session (``frames``: the run's prices, delistings and macro
    series, read once)."""
    market_id = window.market_id
    actions = frames["corporate_actions"]
    delisted = set(actions.loc[(actions["action_type"] == "DELISTING")
                               & (pd.to_datetime(actions["date"]) <= day), "instrument_id"])
    missing, active = _missing_prices(frames["prices_daily"], delisted, market_id, day, fresh)
    ages = _table_ages(runs, market_id, day, fresh)
    if macro_roles:
        macro = frames["macro_time_series"]
        ages += _macro_ages(macro[pd.to_datetime(macro["date"]) <= day], macro_roles, day,
                            fresh)
    return check_freshness(ages) + check_missing_prices(missing, active,
                                                        fresh.max_missing_share)


def _freshness_frames(window: InputWindow, macro: bool) -> dict[str, pd.DataFrame]:
    frames = {"prices_daily": window.frame("prices_daily", columns=["instrument_id", "date"]),
              "corporate_actions": window.frame(
                  "corporate_actions", columns=["instrument_id", "date", "action_type"])}
    if macro:
        frames["macro_time_series"] = window.frame("macro_time_series", market=GLOBAL)
    return frames


def preopen_checks(reader: Any, market_id: str, dates: list[pd.Timestamp],
                   ingested: list[str], engine_tables: list[str],
                   limits: QcLimits | dict[str, QcLimits],
                   macro_roles: Mapping[str, Sequence[str]] | None = None,
                   cfg: QcConfig | None = None) -> pd.DataFrame:
    """The pre-open report rows of ``dates`` (sessions) of a market; ``macro_roles``: the
    macro roles (role -> candidate series) the market's regimes read."""
    cfg = cfg or qc_config().typed(QcConfig)
    macro_roles = macro_roles or {}
    window = InputWindow(reader, qc_inputs(engine_tables, bool(macro_roles), cfg.freshness),
                         market_id, dates)
    runs = reader.read("ingestion_runs", where={"market_id": market_id, "date": dates})
    history = reader.read("ingestion_runs", where={
        "market_id": market_id, "table_name": list(cfg.freshness.max_age_sessions)})
    frames = _freshness_frames(window, bool(macro_roles))
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
                + check_exposures(weights, limits, cfg.limit_tolerance)
                + freshness_rows(window, history, d, macro_roles, cfg.freshness, frames))
        reports.append(qc_report(market_id, d, rows))
    return pd.concat(reports, ignore_index=True)
