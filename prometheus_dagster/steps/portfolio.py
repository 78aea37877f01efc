"""Target portfolio step: each strategy's target weights on each date of a range, mean-variance
on the stored point-in-time risk model, from the strategy's universe and assessment scores,
each date rebalancing from the previous one's target (carried in memory through the range).
Shared by the daily chain (``assets/portfolio.py``) and the backtest walk. See
``docs/engines/portfolio.md``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import empty_frame, validate_frame
from prometheus_dagster.engines.portfolio import InfeasibleProblemError
from prometheus_dagster.engines.portfolio.construction import (
    EmptyBookError,
    build_problem,
    optimize_strategy,
    target_portfolio_rows,
)
from prometheus_dagster.engines.strategy import StrategyConfig, portfolio_id
from prometheus_dagster.steps.common import chunked
from prometheus_dagster.steps.risk import STORED_RISK_INPUTS, load_risk_models

Strategies = dict[str, tuple[StrategyConfig, str]]
Holdings = dict[str, dict[str, float]]
# how far back a run's first date looks for the current target: an older one is not a
# current book and the portfolio starts from cash (belongs with the strategy's portfolio
# limits; kept here until the strategy config takes it)
HOLDINGS_LOOKBACK_DAYS = 10
SCORE_COLUMNS = ["strategy_id", "instrument_id", "as_of_date", "horizon_days",
                 "expected_return", "model_id"]
SOFT_COLUMNS = ["entity_type", "entity_id", "as_of_date", "soft_target_class"]


def sessions_in_days(days: int) -> int:
    """Trading sessions that reach at least ``days`` calendar days back (at most 5 sessions
    per 7 days, plus 2)."""
    return days * 5 // 7 + 2


TARGET_INPUTS = Inputs(Read("universes"), Read("instrument_scores"),
                       Read("soft_target_classes"), Read("issuers", reference=True)
                       ) + STORED_RISK_INPUTS
PREVIOUS_TARGET = Inputs(Read(
    "target_portfolios", sessions=sessions_in_days(HOLDINGS_LOOKBACK_DAYS),
    note="the newest target before the run's first date, which it rebalances from"))
# what the target_portfolios asset reads (a backtest passes universes, scores, risk models
# and holdings, and reads only issuers and soft-target classes)
TARGET_STEP_INPUTS = TARGET_INPUTS + PREVIOUS_TARGET


def current_holdings(window: InputWindow, strategy_ids: list[str]) -> Holdings:
    """Strategy -> the newest stored target of its portfolio dated in the
    ``HOLDINGS_LOOKBACK_DAYS`` before the window's first date (empty: cash)."""
    first = window.first
    rows = window.frame("target_portfolios", end=first - pd.Timedelta(days=1),
                        columns=["portfolio_id", "instrument_id", "as_of_date", "weight"])
    rows = rows[pd.to_datetime(rows["as_of_date"])
                >= first - pd.Timedelta(days=HOLDINGS_LOOKBACK_DAYS)]
    out: Holdings = {}
    for sid in strategy_ids:
        mine = rows[rows["portfolio_id"] == portfolio_id(sid, window.market_id)]
        if mine.empty:
            out[sid] = {}
            continue
        last = mine[mine["as_of_date"] == mine["as_of_date"].max()]
        out[sid] = {r.instrument_id: float(r.weight) for r in last.itertuples()
                    if r.weight != 0.0}
    return out


def construction_candidates(universe: pd.DataFrame, scores: pd.DataFrame, issuers: pd.DataFrame,
                            soft: pd.DataFrame) -> pd.DataFrame:
    """The selected names of one strategy and date with what ``build_problem`` reads."""
    chosen = universe[universe["tier"] != "EXCLUDED"][["instrument_id", "issuer_id",
                                                       "side_allowed"]]
    out = chosen.merge(scores[["instrument_id", "expected_return"]], on="instrument_id",
                       how="left")
    out = out.merge(issuers[["issuer_id", "sector", "country"]], on="issuer_id", how="left")
    classes = soft[soft["entity_type"] == "ISSUER"].set_index("entity_id")["soft_target_class"]
    out["soft_target_class"] = out["issuer_id"].map(classes)
    return out.drop(columns="issuer_id")


def candidates_by_date(universe: pd.DataFrame, scores: pd.DataFrame, issuers: pd.DataFrame,
                       soft: pd.DataFrame) -> dict[pd.Timestamp, pd.DataFrame]:
    """``construction_candidates`` of every date of one strategy's ``universe`` rows, from one
    merge per table for all dates instead of three per date (the same rows, in the same
    order; a date whose issuers have no soft-target row has NaN classes)."""
    chosen = universe.loc[universe["tier"] != "EXCLUDED",
                          ["instrument_id", "issuer_id", "side_allowed", "as_of_date"]]
    chosen = chosen.assign(as_of_date=pd.to_datetime(chosen["as_of_date"]))
    sc = scores[["instrument_id", "as_of_date", "expected_return"]]
    out = chosen.merge(sc.assign(as_of_date=pd.to_datetime(sc["as_of_date"])),
                       on=["instrument_id", "as_of_date"], how="left")
    out = out.merge(issuers[["issuer_id", "sector", "country"]], on="issuer_id", how="left")
    classes = soft.loc[soft["entity_type"] == "ISSUER",
                       ["entity_id", "as_of_date", "soft_target_class"]]
    classes = classes.assign(as_of_date=pd.to_datetime(classes["as_of_date"])).rename(
        columns={"entity_id": "issuer_id"})
    out = out.merge(classes, on=["issuer_id", "as_of_date"], how="left")
    columns = ["instrument_id", "side_allowed", "expected_return", "sector", "country",
               "soft_target_class"]
    return {pd.Timestamp(d): g[columns].reset_index(drop=True)
            for d, g in out.groupby("as_of_date", sort=False)}


_NO_CANDIDATES = pd.DataFrame(columns=["instrument_id", "side_allowed", "expected_return",
                                       "sector", "country", "soft_target_class"])


@dataclass
class TargetRun:
    """What a range of target dates produced: the rows, the decision records, and each
    strategy's holdings after the last date (the next range starts from them)."""

    rows: list[pd.DataFrame] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    holdings: Holdings = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return validate_frame("target_portfolios", pd.concat(self.rows, ignore_index=True)) \
            if self.rows else empty_frame("target_portfolios")


def _decide(log: Any, strategy: StrategyConfig, sid: str, config_id: str, market_id: str,
            d: pd.Timestamp, candidates: pd.DataFrame | None, model_id: str | None, risk: dict,
            held: dict[str, float], refs: dict, run: TargetRun) -> dict[str, float]:
    """One strategy's target on ``d`` from its candidates (None: no universe): appends its
    rows and decision to ``run``; returns the holdings after ``d`` (unchanged when skipped,
    infeasible, or with nothing tradable and nothing held)."""
    decision = {"context_id": f"{portfolio_id(sid, market_id)}:{d.date()}", "as_of_date": d,
                "config_id": config_id, "model_id": model_id, "input_refs": refs}
    if d not in risk or candidates is None:
        why = "no risk model" if d not in risk else "no universe"
        log.warning(f"{sid} {market_id} {d.date()}: {why}: holdings kept")
        run.decisions.append({**decision, "proposed_action": {"status": "SKIPPED",
                                                              "reason": why}})
        return held
    try:
        built = build_problem(strategy, candidates, risk[d], held)
    except EmptyBookError as exc:
        # e.g. a universe that selected nothing: the book stays in cash and the range goes on
        log.warning(f"{sid} {market_id} {d.date()}: no tradable candidate and no holdings: "
                    "stays in cash")
        run.decisions.append({**decision, "proposed_action": {
            "status": "SKIPPED", "reason": "no tradable candidate", "notes": exc.notes}})
        return held
    warm = np.array([held.get(n, 0.0) for n in built.names])
    try:
        result = optimize_strategy(built, warm_start=warm)
    except InfeasibleProblemError as exc:
        log.error(f"{sid} {market_id} {d.date()}: infeasible, holdings kept: "
                  + "; ".join(exc.conflicts))
        run.decisions.append({**decision, "proposed_action": {
            "status": "INFEASIBLE", "conflicts": exc.conflicts, "notes": built.notes}})
        return held
    rows = target_portfolio_rows(
        built, result, strategy_id=sid, market_id=market_id, as_of_date=d, config_id=config_id,
        model_ids={"assessment": model_id} if model_id else None, validate=False)
    run.rows.append(rows)
    held = {r.instrument_id: float(r.weight) for r in rows.itertuples() if r.weight != 0.0}
    run.decisions.append({**decision, "proposed_action": {
        "status": result.status, "weights": {k: round(v, 6) for k, v in held.items()},
        "expected_return": float(rows["portfolio_expected_return"].iloc[0]) if len(rows)
        else 0.0,
        "volatility": float(result.volatility), "turnover": float(result.turnover),
        "binding": result.binding, "notes": built.notes}})
    return held


def target_range(log: Any, reader: Any, market_id: str, dates: list[pd.Timestamp],
                 strategies: Strategies, *, universes: pd.DataFrame | None = None,
                 scores: pd.DataFrame | None = None, risk: dict | None = None,
                 holdings: Holdings | None = None) -> TargetRun:
    """The targets of ``dates`` (one read of each declared input for the whole range). Dates
    are walked in order per strategy, each rebalancing from the previous date's target: the
    stored one for the first date unless ``holdings`` gives strategy -> current weights."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    window = InputWindow(reader, TARGET_STEP_INPUTS, market_id, dates)
    if risk is None:
        risk = load_risk_models(reader, market_id, dates)
    if universes is None:
        universes = window.frame("universes")
    if scores is None:
        scores = window.frame("instrument_scores", columns=SCORE_COLUMNS)
    issuers = window.frame("issuers")
    soft = window.frame("soft_target_classes", columns=SOFT_COLUMNS)
    missing = sorted(set(strategies) - set(holdings or {}))
    held_on = {**(current_holdings(window, missing) if missing else {}), **(holdings or {})}
    refs = TARGET_STEP_INPUTS.refs(market_id)
    run = TargetRun()
    for sid, (strategy, config_id) in sorted(strategies.items()):
        held = dict(held_on[sid])
        mine = scores[(scores["strategy_id"] == sid)
                      & (scores["horizon_days"] == strategy.horizon_days)]
        models_on = {d: ", ".join(sorted(set(g.dropna()))) or None for d, g in
                     mine["model_id"].groupby(pd.to_datetime(mine["as_of_date"]))}
        selected = universes[universes["strategy_id"] == sid]
        listed = set(pd.to_datetime(selected["as_of_date"]))
        candidates_on = candidates_by_date(selected, mine, issuers, soft)
        for d in dates:
            # a date with universe rows but none selected has empty candidates
            candidates = candidates_on.get(d, _NO_CANDIDATES) if d in listed else None
            held = _decide(log, strategy, sid, config_id, market_id, d, candidates,
                           models_on.get(d), risk, held, refs, run)
        run.holdings[sid] = held
    return run



def compute_targets(log: Any, reader: Any, market_id: str, dates: list[pd.Timestamp],
                    strategies: Strategies, *, universes: pd.DataFrame | None = None,
                    scores: pd.DataFrame | None = None, risk: dict | None = None,
                    holdings: Holdings | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """(``target_portfolios`` rows, one decision record per strategy and date). A date
    without a risk model or universe keeps the holdings; an infeasible problem keeps them too
    and is reported with the conflicting constraints. Universes, scores and risk models
    default to the stored ones; ``reader`` may be a backtest's time machine."""
    run = target_range(log, reader, market_id, dates, strategies, universes=universes,
                       scores=scores, risk=risk, holdings=holdings)
    return run.frame(), run.decisions


def compute_targets_chunked(log: Any, reader: Any, market_id: str, dates: list[pd.Timestamp],
                            strategies: Strategies, what: str = "") -> Iterator[TargetRun]:
    """The targets of a long range a year at a time (progress and ETA in ``log``), the
    holdings carried in memory from one chunk to the next."""
    holdings: Holdings | None = None
    for chunk in chunked(sorted(dates), log, what or f"{market_id} target portfolios"):
        run = target_range(log, reader, market_id, chunk, strategies, holdings=holdings)
        holdings = run.holdings
        yield run
