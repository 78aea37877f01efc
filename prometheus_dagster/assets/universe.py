"""Universe assets per market: for every strategy trading the market, each instrument's tier
(CORE, SATELLITE, EXCLUDED with reasons) on each date, from point-in-time listings, prices,
liquidity, profile flags, soft-target classes and the strategy's assessment scores."""

import json

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import (
    lookback_start,
    register_config,
    run_dates,
    write_decisions,
)
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.strategy import StrategyConfig, load_strategies
from prometheus_dagster.engines.universe import select_universe, universe_candidates
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "portfolio"
ENGINE = "universe"
PROFILE_MAX_AGE_DAYS = 120  # an older profile does not count as coverage
INPUTS = ("instruments", "issuers", "prices_daily", "liquidity_daily", "corporate_actions",
          "profiles", "soft_target_classes", "instrument_scores")


def register_strategies(wh: Warehouse, market_id: str) -> dict[str, tuple[StrategyConfig, str]]:
    """The market's strategies, each config recorded in ``engine_configs``."""
    loaded = {sid: cfg for sid, cfg in load_strategies().items()
              if market_id in cfg.config.markets}  # type: ignore[attr-defined]
    return {sid: (cfg.config, register_config(wh, cfg))  # type: ignore[misc]
            for sid, cfg in loaded.items()}


def universe_changes(today: pd.DataFrame, before: pd.DataFrame) -> dict:
    """Names that entered or left the selected universe since the previous date, with the
    reasons a leaving name is now excluded."""
    sel = set(today.loc[today["tier"] != "EXCLUDED", "instrument_id"])
    was = set(before.loc[before["tier"] != "EXCLUDED", "instrument_id"])
    reasons = today.set_index("instrument_id")["reasons"]
    return {"added": sorted(sel - was),
            "removed": {i: reason_list(reasons.get(i)) or ["not a candidate"]
                        for i in sorted(was - sel)}}


def reason_list(value: object) -> list[str]:
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


def compute_universes(wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                      strategies: dict[str, tuple[StrategyConfig, str]],
                      scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """``universes`` rows of every strategy on ``dates``; ``scores`` (instrument_scores rows)
    default to the stored ones. ``wh`` may be a backtest's time machine."""
    longest = max(s.universe.min_history_sessions for s, _ in strategies.values())
    start, end = lookback_start(dates[0], longest + 5), dates[-1]
    instruments = wh.read("instruments", where={"market_id": market_id})
    issuers = wh.read("issuers", where={"market_id": market_id})
    actions = wh.read_partitions("corporate_actions", market_id=market_id, end=end,
                                 columns=["instrument_id", "date", "action_type"])
    delistings = actions[actions["action_type"] == "DELISTING"]
    prices = wh.read_partitions("prices_daily", market_id=market_id, start=start, end=end,
                                columns=["instrument_id", "date", "close"])
    liquidity = wh.read_partitions("liquidity_daily", market_id=market_id, dates=dates,
                                   columns=["instrument_id", "date", "adv_21d"])
    profiles = wh.read_partitions("profiles", market_id=market_id,
                                  start=dates[0] - pd.Timedelta(days=PROFILE_MAX_AGE_DAYS),
                                  end=end,
                                  columns=["issuer_id", "as_of_date", "leverage_score",
                                           "earnings_quality_score", "liquidity_risk"])
    soft = wh.read_partitions("soft_target_classes", market_id=market_id, dates=dates,
                              columns=["entity_type", "entity_id", "as_of_date",
                                       "soft_target_class"])
    if scores is None:
        scores = wh.read_partitions("instrument_scores", market_id=market_id, dates=dates,
                                    columns=["strategy_id", "instrument_id", "as_of_date",
                                             "horizon_days", "score"])
    frames = []
    no_scores = scores.iloc[0:0]
    by_sid = {sid: scores[(scores["strategy_id"] == sid)
                          & (scores["horizon_days"] == strategy.horizon_days)]
              for sid, (strategy, _) in strategies.items()}
    for d in dates:
        # the candidates of a date are the same for every strategy but for the score
        base = universe_candidates(
            d, instruments=instruments, issuers=issuers, delistings=delistings,
            prices=prices, liquidity=liquidity, profiles=profiles, soft_targets=soft,
            scores=no_scores, history_start=lookback_start(d, longest + 5),
            max_profile_age_days=PROFILE_MAX_AGE_DAYS)
        for sid, (strategy, config_id) in sorted(strategies.items()):
            mine = by_sid[sid]
            mine = mine[pd.to_datetime(mine["as_of_date"]) == d].set_index("instrument_id")
            candidates = base.assign(score=base["instrument_id"].map(mine["score"]).astype(float))
            frames.append(select_universe(candidates, strategy.universe, market_id=market_id,
                                          strategy_id=sid, as_of_date=d, config_id=config_id))
    return pd.concat(frames, ignore_index=True) if frames else empty_frame("universes")


def universe_decisions(wh: Warehouse, market_id: str, out: pd.DataFrame) -> pd.DataFrame:
    """One decision per strategy and date: the selected names by tier and the changes since
    the previous date (the stored one for a run's first date)."""
    first = pd.Timestamp(out["as_of_date"].min())
    earlier = wh.read_partitions("universes", market_id=market_id,
                                 start=first - pd.Timedelta(days=10),
                                 end=first - pd.Timedelta(days=1),
                                 columns=["strategy_id", "instrument_id", "as_of_date", "tier"])
    rows = []
    for sid, by_strategy in out.groupby("strategy_id", sort=True):
        prev = earlier[earlier["strategy_id"] == sid]
        before = prev[prev["as_of_date"] == prev["as_of_date"].max()] if len(prev) else prev
        for d, day in by_strategy.groupby("as_of_date", sort=True):
            tiers = {t: sorted(day.loc[day["tier"] == t, "instrument_id"])
                     for t in ("CORE", "SATELLITE")}
            rows.append({
                "context_id": f"{sid}:{market_id}:{pd.Timestamp(d).date()}", "as_of_date": d,
                "config_id": day["config_id"].iloc[0], "model_id": None,
                "input_refs": {"tables": list(INPUTS)},
                "proposed_action": {**tiers, "excluded": int((day["tier"] == "EXCLUDED").sum()),
                                    **universe_changes(day, before)}})
            before = day
    return pd.DataFrame(rows)


def universe_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "universes"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in INPUTS],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "universes"},
        tags={"prometheus/tier": "1"},
        description=f"Universe of each strategy trading {market_id}: hard filters, quality "
                    "screens, soft-target policy, ranking by assessment score, sector cap and "
                    "max size; CORE / SATELLITE / EXCLUDED with a reason for every exclusion.",
    )
    def _universes(context: AssetExecutionContext, warehouse: WarehouseResource,
                   mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return empty_frame("universes")
        out = compute_universes(wh, market_id, dates, strategies)
        no_score = out[out["reasons"].apply(lambda r: "no assessment score" in r)]
        if len(no_score) == len(out) and len(out):
            context.log.warning(f"{market_id}: no assessment scores on these dates: every name "
                                "is EXCLUDED (materialize instrument_scores first)")
        counts = out.groupby(["strategy_id", "tier"]).size()
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=",".join(c for _, c in strategies.values())) as run:
            for sid, g in out.groupby("strategy_id"):
                run.log_metric_series(f"{sid}_selected", g.groupby("as_of_date")["tier"].apply(
                    lambda s: float((s != "EXCLUDED").sum())))
            run.log_metrics({f"{sid}_{tier}_rows": int(n) for (sid, tier), n in counts.items()})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, ENGINE, market_id, dates,
                        universe_decisions(wh, market_id, out), mlflow_run_id=run_id)
        context.add_output_metadata({
            **lineage, "rows": len(out),
            "strategies": ", ".join(f"{sid} ({cid})" for sid, (_, cid) in strategies.items()),
            **{f"{sid} {tier}": int(n) for (sid, tier), n in counts.items()}})
        return out

    return _universes


def universe_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [universe_asset(m) for m in markets]
