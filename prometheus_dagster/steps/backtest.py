"""Backtest step: one strategy on one market over a range of sessions, every data read
through a :class:`TimeMachine` set to the session being decided, decided by the same step
functions as the daily chain (no asset module is imported; see ``docs/engines/backtest.md``).

Each session D: D's splits and dividends apply to the holdings, the orders decided on the
previous session fill on D's bars (the execution simulator), positions are marked at D's
closes; on a rebalance session the production
functions decide D's target (assessment scores as stored, or computed with the model version
trained before D; the strategy's universe; the point-in-time risk model; the optimiser,
rebalancing from the simulated holdings) and the planner turns it into orders for D+1.

The simulator is the array path (``ArrayBook``, the compiled kernel fed one session at a
time as the time machine releases it): the same fills and equity as the order-at-a-time
broker, to the last digit. ``BacktestResult.seconds`` says where the walk's time went."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import prometheus_dagster.engines.regime  # noqa: F401  (declares the tables annotate reads)
import prometheus_dagster.engines.stability  # noqa: F401
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.assessment import AssessmentConfig
from prometheus_dagster.engines.backtest import TimeMachine
from prometheus_dagster.engines.execution import ExecutionConfig, execution_tables
from prometheus_dagster.engines.execution import kernel as K
from prometheus_dagster.engines.execution.vectorized import ArrayBook, MarketArrays
from prometheus_dagster.engines.risk import RiskModelConfig, estimate_risk_models
from prometheus_dagster.engines.strategy import StrategyConfig, portfolio_id
from prometheus_dagster.steps.assessment import compute_scores, score_inputs
from prometheus_dagster.steps.common import register_config

# compute_targets moves to the step layer with the portfolio engine; until then it is the one
# import from an asset module
from prometheus_dagster.steps.portfolio import compute_targets
from prometheus_dagster.steps.risk import (
    STORED_RISK_INPUTS,
    load_risk_models,
    read_risk_inputs,
    risk_inputs,
)
from prometheus_dagster.steps.universe import (
    Strategies,
    compute_universes,
    register_strategies,
    universe_inputs,
)

BAR_COLUMNS = ["instrument_id", "open", "high", "low", "close", "volume"]
SCORE_COLUMNS = ["strategy_id", "instrument_id", "as_of_date", "horizon_days", "score",
                 "expected_return", "model_id"]
STABILITY_BUCKETS = ((0.4, "LOW"), (0.6, "MEDIUM"), (np.inf, "HIGH"))


@dataclass(frozen=True)
class BacktestSpec:
    backtest_id: str
    strategy_id: str
    strategy: StrategyConfig
    strategy_config_id: str
    market_id: str
    sessions: list[pd.Timestamp]
    rebalance_every: int
    initial_capital: float
    execution: ExecutionConfig
    execution_config_id: str
    assessment: AssessmentConfig
    assessment_config_id: str
    risk: RiskModelConfig


@dataclass
class BacktestResult:
    equity: pd.DataFrame
    book: ArrayBook
    spec: BacktestSpec
    snapshots: list = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    decision_ids: dict[int, str] = field(default_factory=dict)
    scores_computed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def fills(self) -> list:
        return self.book.fills(portfolio_id=portfolio_id(self.spec.strategy_id,
                                                         self.spec.market_id),
                               decision_id=self.decision_ids)

    def frames(self) -> dict[str, pd.DataFrame]:
        """``orders``, ``fills`` and ``positions_snapshots`` rows of the run."""
        pid = portfolio_id(self.spec.strategy_id, self.spec.market_id)
        return execution_tables(
            self.book.orders(portfolio_id=pid, decision_id=self.decision_ids), self.fills(),
            self.snapshots, market_id=self.spec.market_id,
            config_id=self.spec.execution_config_id, backtest_id=self.spec.backtest_id)


WALK_INPUTS = Inputs(Read("prices_daily", note="the session's bars"),
                     Read("corporate_actions", note="the session's splits and dividends"))
STORED_SCORES = Inputs(Read("instrument_scores"))
ANNOTATION_INPUTS = Inputs(Read("market_correlation_daily", note="the market index return"),
                           Read("regimes"), Read("stability_vectors"))
# what compute_targets reads besides the universes, scores and risk models it is handed
TARGET_READS = Inputs(Read("issuers", reference=True), Read("soft_target_classes"))


def _wider(a: Read, b: Read) -> Read:
    if a.history or b.history:
        return a if a.history else b
    return b if b.sessions > a.sessions else a


def widest(*declarations: Inputs) -> Inputs:
    """The union of several steps' inputs, each table once with the widest of its windows."""
    out: dict[tuple, Read] = {}
    for r in (r for inputs in declarations for r in inputs):
        key = (r.market, r.members, r.asset or r.table)
        out[key] = r if key not in out else _wider(out[key], r)
    return Inputs(*out.values())


def backtest_inputs(strategies: Strategies) -> Inputs:
    """What a backtest over sessions the daily chain has run reads: the bars and actions of
    each session, the stored scores and risk models, the universe's inputs (the scores are
    passed), the targets' reference data and the annotations of the equity curve."""
    return widest(WALK_INPUTS, STORED_SCORES, universe_inputs(strategies, scores_given=True),
                  STORED_RISK_INPUTS, TARGET_READS, ANNOTATION_INPUTS)


def fallback_inputs(assessment: AssessmentConfig, risk: RiskModelConfig) -> Inputs:
    """What the walk reads besides on a session without stored scores (the features' inputs
    and the model valid for it) or without a stored risk model (its estimation window)."""
    return widest(score_inputs(assessment), risk_inputs(risk))


def backtest_sessions(reader: Any, market_id: str, start: pd.Timestamp,
                      end: pd.Timestamp) -> list[pd.Timestamp]:
    """The market's sessions in [start, end] that have prices."""
    days = [pd.Timestamp(d).normalize() for d in trading_calendar(market_id).sessions(start, end)]
    if not days:
        return []
    priced = InputWindow(reader, WALK_INPUTS, market_id, days).frame("prices_daily",
                                                                     columns=["date"])
    have = {pd.Timestamp(d).normalize() for d in priced["date"]}
    return [d for d in days if d in have]


def _scores(tm: TimeMachine, mlflow, spec: BacktestSpec, d: pd.Timestamp,
            strategies: dict) -> tuple[pd.DataFrame, bool]:
    stored = InputWindow(tm, STORED_SCORES, spec.market_id, [d]).frame(
        "instrument_scores", columns=SCORE_COLUMNS)
    stored = stored[stored["strategy_id"] == spec.strategy_id]
    if len(stored):
        return stored, False
    computed, _ = compute_scores(tm, mlflow, spec.market_id, [d], spec.assessment,
                                 spec.assessment_config_id, strategies)
    return computed, True


def _risk_model(tm: TimeMachine, spec: BacktestSpec, d: pd.Timestamp) -> dict:
    stored = load_risk_models(tm, spec.market_id, [d])
    if stored:
        return stored
    models = estimate_risk_models(spec.market_id, [d],
                                  read_risk_inputs(tm, spec.market_id, [d], spec.risk),
                                  spec.risk)
    return {m.as_of_date: m for m in models}


def decide(tm: TimeMachine, mlflow, spec: BacktestSpec, d: pd.Timestamp,
           weights: dict[str, float], log) -> tuple[dict[str, float] | None, dict, bool]:
    """(target weights or None to hold, the decision record, whether scores were computed)
    of session ``d`` with the production functions."""
    strategies = {spec.strategy_id: (spec.strategy, spec.strategy_config_id)}
    scores, computed = _scores(tm, mlflow, spec, d, strategies)
    universe = compute_universes(tm, spec.market_id, [d], strategies, scores=scores)
    targets, decisions = compute_targets(
        log, tm, spec.market_id, [d], strategies, universes=universe, scores=scores,
        risk=_risk_model(tm, spec, d), holdings={spec.strategy_id: weights})
    decision = decisions[0] if decisions else {"proposed_action": {"status": "SKIPPED"}}
    if targets.empty:
        return None, decision, computed
    return dict(zip(targets["instrument_id"], targets["weight"], strict=True)), decision, \
        computed


def run_backtest(tm: TimeMachine, mlflow, spec: BacktestSpec,
                 log: logging.Logger | Any) -> BacktestResult:
    """Walk ``spec.sessions`` (see the module docstring)."""
    pid = portfolio_id(spec.strategy_id, spec.market_id)
    book = ArrayBook(spec.execution, MarketArrays.empty(spec.sessions), cash=spec.initial_capital)
    result = BacktestResult(pd.DataFrame(), book, spec)
    seconds = dict.fromkeys(("market_reads", "simulator", "decisions"), 0.0)
    rows = []
    for i, d in enumerate(spec.sessions):
        clock = time.perf_counter()
        tm.advance_to(d)
        window = InputWindow(tm, WALK_INPUTS, spec.market_id, [d])
        actions = window.frame("corporate_actions",
                               columns=["instrument_id", "date", "action_type", "value"])
        bars = window.frame("prices_daily", columns=["date", *BAR_COLUMNS])
        now = time.perf_counter()
        seconds["market_reads"] += now - clock
        clock = now
        book.feed(bars[BAR_COLUMNS], actions)
        book.advance()
        snap = book.snapshot(pid)
        result.snapshots.append(snap)
        day = book.daily[i]
        equity = float(snap.equity)
        values = np.array([p.market_value for p in snap.positions], dtype=float)
        rows.append({
            "date": d, "equity": equity, "cash": float(snap.cash),
            "gross_exposure": float(np.abs(values).sum() / equity) if equity else np.nan,
            "net_exposure": float(values.sum() / equity) if equity else np.nan,
            "turnover": float(day[K.D_TRADED] / equity) if equity else np.nan,
            "costs": float(day[K.D_COSTS]), "dividends": float(day[K.D_DIVIDENDS])})
        now = time.perf_counter()
        seconds["simulator"] += now - clock
        clock = now
        if i % spec.rebalance_every:
            continue
        weights = {p.instrument_id: float(p.market_value) / equity for p in snap.positions
                   if p.shares} if equity else {}
        target, decision, computed = decide(tm, mlflow, spec, d, weights, log)
        result.scores_computed += int(computed)
        result.decisions.append({**decision, "as_of_date": d})
        now = time.perf_counter()
        seconds["decisions"] += now - clock
        clock = now
        if target is None:
            continue
        result.decision_ids[i] = f"backtest:{spec.backtest_id}:{d.date()}"
        book.plan(target)
        seconds["simulator"] += time.perf_counter() - clock
        if len(result.decisions) % 10 == 1:
            log.info(f"backtest {spec.backtest_id}: {d.date()} ({i + 1}/{len(spec.sessions)} "
                     f"sessions), equity {equity:,.0f}")
    result.equity = pd.DataFrame(rows)
    result.seconds = seconds
    return result


def annotate(tm: TimeMachine, spec: BacktestSpec, equity: pd.DataFrame) -> pd.DataFrame:
    """Benchmark (the market index), regime label and market stability bucket of each
    session, read at the end of the walk (for reporting only)."""
    window = InputWindow(tm, ANNOTATION_INPUTS, spec.market_id, spec.sessions)
    idx = window.frame("market_correlation_daily", columns=["date", "index_ret_1d"])
    ret = idx.set_index(pd.to_datetime(idx["date"]))["index_ret_1d"].reindex(
        pd.to_datetime(equity["date"])).fillna(0.0).to_numpy()
    ret[0] = 0.0
    out = equity.copy()
    out["benchmark_equity"] = spec.initial_capital * np.cumprod(1.0 + ret)
    regimes = window.frame("regimes", columns=["as_of_date", "regime_label"])
    labels = regimes.set_index(pd.to_datetime(regimes["as_of_date"]))["regime_label"]
    out["regime_label"] = pd.to_datetime(out["date"]).map(labels)
    stab = window.frame("stability_vectors",
                        columns=["entity_type", "as_of_date", "stability_score"])
    stab = stab[stab["entity_type"] == "MARKET"]
    score = stab.set_index(pd.to_datetime(stab["as_of_date"]))["stability_score"]
    out["stability_bucket"] = pd.to_datetime(out["date"]).map(score).map(
        lambda v: None if pd.isna(v) else next(b for lim, b in STABILITY_BUCKETS if v < lim))
    return out


def build_spec(reader: Any, market_id: str, strategy_id: str, start: pd.Timestamp,
               end: pd.Timestamp, rebalance_every: int, initial_capital: float,
               run_tag: str) -> BacktestSpec:
    """The spec of a backtest of ``strategy_id`` over the priced sessions in [start, end]
    (configs recorded in ``engine_configs``); ``run_tag`` ends the backtest id."""
    strategies = register_strategies(reader, market_id)
    if strategy_id not in strategies:
        raise ConfigError(f"backtest: strategy {strategy_id!r} does not trade "
                          f"{market_id} (strategies here: {', '.join(sorted(strategies))})")
    strategy, strategy_cid = strategies[strategy_id]
    if end < start:
        raise ConfigError(f"backtest: end {end.date()} is before start {start.date()}")
    sessions = backtest_sessions(reader, market_id, start, end)
    if len(sessions) < 2:
        raise ConfigError(f"backtest: {market_id} has {len(sessions)} priced session(s) in "
                          f"{start.date()}..{end.date()}; ingest prices first")
    loaded = {e: load_engine_config(e) for e in ("execution", "assessment", "risk")}
    cids = {e: register_config(reader, c) for e, c in loaded.items()}
    return BacktestSpec(
        backtest_id=f"{strategy_id}:{market_id}:{sessions[0].date()}:{sessions[-1].date()}:"
                    f"{run_tag}",
        strategy_id=strategy_id, strategy=strategy, strategy_config_id=strategy_cid,
        market_id=market_id, sessions=sessions, rebalance_every=rebalance_every,
        initial_capital=initial_capital,
        execution=loaded["execution"].typed(ExecutionConfig),
        execution_config_id=cids["execution"],
        assessment=loaded["assessment"].typed(AssessmentConfig),
        assessment_config_id=cids["assessment"], risk=loaded["risk"].typed(RiskModelConfig))


def result_tables(spec: BacktestSpec, result: BacktestResult,
                  equity: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The run's rows: ``backtest_trades``, ``backtest_daily_equity``, ``orders``, ``fills``
    and ``positions_snapshots``."""
    bid, market = spec.backtest_id, spec.market_id
    frames = result.frames()
    fills = frames["fills"]
    trades = pd.DataFrame({
        "backtest_id": bid, "market_id": market, "date": fills["date"],
        "instrument_id": fills["instrument_id"], "side": fills["side"],
        "quantity": fills["quantity"], "price": fills["price"],
        "commission": fills["commission"], "slippage_cost": fills["slippage_cost"],
        "decision_id": fills["decision_id"]})
    daily = equity.drop(columns=["dividends"]).assign(backtest_id=bid, market_id=market)
    return {"backtest_trades": trades, "backtest_daily_equity": daily,
            **{t: frames[t] for t in ("orders", "fills", "positions_snapshots")}}
