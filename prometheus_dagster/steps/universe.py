"""Universe step: each strategy's universe (CORE / SATELLITE / EXCLUDED with reasons) on each
date of a range, from one read of the declared inputs; and the strategies of a market.
Shared by the daily chain (``assets/universe.py``) and the backtest. See
``docs/engines/universe.md``."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from prometheus_dagster.core.config import LoadedConfig
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import empty_frame, validate_frame
from prometheus_dagster.engines.strategy import StrategyConfig, load_strategies
from prometheus_dagster.engines.universe import UniverseRules, select_universe
from prometheus_dagster.engines.universe.candidates import universe_candidates_range
from prometheus_dagster.engines.universe.schemas import UNIVERSES
from prometheus_dagster.steps.common import lookback_start, register_config

Strategies = dict[str, tuple[StrategyConfig, str]]
SCORE_COLUMNS = ["strategy_id", "instrument_id", "as_of_date", "horizon_days", "score"]


def market_strategies(market_id: str) -> dict[str, LoadedConfig]:
    """The loaded configs of the strategies trading ``market_id``."""
    return {sid: c for sid, c in load_strategies().items()
            if market_id in c.typed(StrategyConfig).markets}


def register_strategies(warehouse: Any, market_id: str) -> Strategies:
    """The market's strategies, each config recorded in ``engine_configs``."""
    return {sid: (c.typed(StrategyConfig), register_config(warehouse, c))
            for sid, c in market_strategies(market_id).items()}


def strategies_of(market_id: str) -> Strategies:
    """The market's strategies with their config ids, recording nothing (definition time)."""
    return {sid: (c.typed(StrategyConfig), c.config_id)
            for sid, c in market_strategies(market_id).items()}


def sessions_covering(sessions: int) -> int:
    """Trading sessions that reach at least as far back as ``lookback_start(D, sessions)``
    (a calendar margin over ``sessions``): at most 5 sessions per 7 calendar days, plus 2."""
    days = int(sessions * 7 / 5 * 1.05) + 10
    return days * 5 // 7 + 2


def sessions_in_days(days: int) -> int:
    """Trading sessions that reach at least ``days`` calendar days back."""
    return days * 5 // 7 + 2


def history_sessions(strategies: Strategies) -> int:
    """The longest price history a market's strategies ask of a candidate, plus a margin."""
    return max((s.universe.min_history_sessions for s, _ in strategies.values()),
               default=UniverseRules().min_history_sessions) + 5


def profile_age_days(strategies: Strategies) -> int:
    """The oldest profile that still counts as coverage for any of the market's strategies."""
    return max((s.universe.max_profile_age_days for s, _ in strategies.values()),
               default=UniverseRules().max_profile_age_days)


def universe_inputs(strategies: Strategies, scores_given: bool = False) -> Inputs:
    """What the universes of date D read: listings, issuers and all delistings up to D, the
    price history the strategies' history rule counts, D's liquidity, soft-target classes and
    scores, the profiles young enough to count (the decision records also read
    ``PREVIOUS_UNIVERSE``). ``scores_given``: the caller passes the scores (the backtest) and
    they are not read."""
    reads = [Read("instruments", reference=True), Read("issuers", reference=True),
             Read("corporate_actions", history=True, note="DELISTING actions up to D"),
             Read("prices_daily", sessions=sessions_covering(history_sessions(strategies))),
             Read("liquidity_daily"),
             Read("profiles", sessions=sessions_in_days(profile_age_days(strategies))),
             Read("soft_target_classes")]
    if not scores_given:
        reads.append(Read("instrument_scores"))
    return Inputs(*reads)


PREVIOUS_UNIVERSE = Inputs(Read("universes", sessions=sessions_in_days(10),
                                note="the previous date's universe, for the changes in the "
                                     "decision record"))


def compute_universes(reader: Any, market_id: str, dates: list[pd.Timestamp],
                      strategies: Strategies, scores: pd.DataFrame | None = None
                      ) -> pd.DataFrame:
    """``universes`` rows of every strategy on ``dates``; ``scores`` (instrument_scores rows)
    default to the stored ones. ``reader`` may be a backtest's time machine. The candidates
    of all dates are assembled in one pass; the selection (a walk down the ranking with
    sector caps) runs per date and strategy."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    window = InputWindow(reader, universe_inputs(strategies, scores is not None), market_id,
                         dates)
    actions = window.frame("corporate_actions",
                           columns=["instrument_id", "date", "action_type"])
    if scores is None:
        scores = window.frame("instrument_scores", columns=SCORE_COLUMNS)
    longest = history_sessions(strategies)
    candidates = universe_candidates_range(
        dates, instruments=window.frame("instruments"), issuers=window.frame("issuers"),
        delistings=actions[actions["action_type"] == "DELISTING"],
        prices=window.frame("prices_daily", columns=["instrument_id", "date", "close"]),
        liquidity=window.frame("liquidity_daily",
                               columns=["instrument_id", "date", "adv_21d"]),
        profiles=window.frame("profiles", columns=["issuer_id", "as_of_date", "leverage_score",
                                                   "earnings_quality_score", "liquidity_risk"]),
        soft_targets=window.frame("soft_target_classes",
                                  columns=["entity_type", "entity_id", "as_of_date",
                                           "soft_target_class"]),
        history_starts=[lookback_start(d, longest) for d in dates],
        max_profile_age_days=profile_age_days(strategies))
    return select_universes_of(candidates, scores, strategies, market_id)


def select_universes_of(candidates: dict[pd.Timestamp, pd.DataFrame], scores: pd.DataFrame,
                        strategies: Strategies, market_id: str) -> pd.DataFrame:
    """``universes`` rows of every strategy from the candidates of each date (without
    scores) and the ``instrument_scores`` rows: date by date, strategy by strategy."""
    dates = sorted(candidates)
    by_sid = {sid: _scores_by_date(scores, sid, strategy.horizon_days)
              for sid, (strategy, _) in strategies.items()}
    no_score = pd.Series(dtype=float)
    frames = []
    for d in dates:
        base = candidates[d]
        for sid, (strategy, config_id) in sorted(strategies.items()):
            mine = by_sid[sid].get(d, no_score)
            with_score = base.assign(score=base["instrument_id"].map(mine).astype(float))
            frames.append(select_universe(with_score, strategy.universe, market_id=market_id,
                                          strategy_id=sid, as_of_date=d, config_id=config_id,
                                          validate=False))
    # validated once for the range: the same rows and types as validating each date's frame
    return (validate_frame(UNIVERSES, pd.concat(frames, ignore_index=True)) if frames
            else empty_frame("universes"))


def _scores_by_date(scores: pd.DataFrame, strategy_id: str, horizon: int
                    ) -> dict[pd.Timestamp, pd.Series]:
    """Date -> the strategy's score of each instrument (index) at its horizon."""
    mine = scores[(scores["strategy_id"] == strategy_id) & (scores["horizon_days"] == horizon)]
    return {pd.Timestamp(d): g.set_index("instrument_id")["score"]
            for d, g in mine.groupby(pd.to_datetime(mine["as_of_date"]), sort=False)}


def reason_list(value: Any) -> list[str]:
    """A ``reasons`` value as a list of texts: stored rows hold it as JSON text, frames built
    in memory as a list."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
        if isinstance(value, str):
            return [value]
    return [str(v) for v in value]


def empty_selections(out: pd.DataFrame) -> list[str]:
    """One line per strategy that selected no name on some dates: those dates and the most
    common exclusion reason of their names (e.g. a price history with a gap before the
    range fails the history rule for every name)."""
    lines = []
    for sid, rows in out.groupby("strategy_id", sort=True):
        selected = rows.groupby("as_of_date")["tier"].apply(lambda t: (t != "EXCLUDED").any())
        empty = sorted(pd.Timestamp(d) for d in selected.index[~selected.to_numpy()])
        if not empty:
            continue
        reasons = pd.Series([r for v in rows.loc[rows["as_of_date"].isin(empty), "reasons"]
                             for r in reason_list(v)], dtype=object)
        kinds = reasons.str.replace(r"-?\d[\d.,]*", "N", regex=True)
        top = kinds.value_counts().index[0] if len(kinds) else None
        example = reasons[kinds == top].iloc[0] if top is not None else "none given"
        shown = ", ".join(str(d.date()) for d in empty[:5]) + (" ..." if len(empty) > 5 else "")
        lines.append(f"{sid}: no name selected on {len(empty)} date(s) ({shown}); most common "
                     f"reason: {example} ({int((kinds == top).sum())} names)")
    return lines


def universe_changes(today: pd.DataFrame, before: pd.DataFrame) -> dict:
    """Names that entered or left the selected universe since the previous date, with the
    reasons a leaving name is now excluded."""
    sel = set(today.loc[today["tier"] != "EXCLUDED", "instrument_id"])
    was = set(before.loc[before["tier"] != "EXCLUDED", "instrument_id"])
    reasons = today.set_index("instrument_id")["reasons"]
    return {"added": sorted(sel - was),
            "removed": {i: reason_list(reasons.get(i)) or ["not a candidate"]
                        for i in sorted(was - sel)}}


def universe_decisions(reader: Any, market_id: str, out: pd.DataFrame,
                       strategies: Strategies) -> pd.DataFrame:
    """One decision per strategy and date: the selected names by tier and the changes since
    the previous date (the stored one for a run's first date)."""
    first = pd.Timestamp(out["as_of_date"].min())
    window = InputWindow(reader, PREVIOUS_UNIVERSE, market_id, [first])
    earlier = window.frame("universes", end=first - pd.Timedelta(days=1),
                           columns=["strategy_id", "instrument_id", "as_of_date", "tier"])
    earlier = earlier[pd.to_datetime(earlier["as_of_date"])
                      >= first - pd.Timedelta(days=10)]
    refs = (universe_inputs(strategies) + PREVIOUS_UNIVERSE).refs(market_id)
    rows = []
    for sid, by_strategy in out.groupby("strategy_id", sort=True):
        prev = earlier[earlier["strategy_id"] == sid]
        before = prev[prev["as_of_date"] == prev["as_of_date"].max()] if len(prev) else prev
        for d, day in by_strategy.groupby("as_of_date", sort=True):
            tiers = {t: sorted(day.loc[day["tier"] == t, "instrument_id"])
                     for t in ("CORE", "SATELLITE")}
            rows.append({
                "context_id": f"{sid}:{market_id}:{pd.Timestamp(d).date()}", "as_of_date": d,
                "config_id": day["config_id"].iloc[0], "model_id": None, "input_refs": refs,
                "proposed_action": {**tiers, "excluded": int((day["tier"] == "EXCLUDED").sum()),
                                    **universe_changes(day, before)}})
            before = day
    return pd.DataFrame(rows)
