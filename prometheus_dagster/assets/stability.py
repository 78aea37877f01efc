"""Stability assets per market: stability vectors of the market's issuers, sectors, the market
itself and its FX pairs, from features, profiles and the market's regime, point in time."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

import prometheus_dagster.engines.profiles  # noqa: F401  (declares the profiles table)
import prometheus_dagster.engines.regime  # noqa: F401  (declares the regimes table)
from prometheus_dagster.assets.common import (
    lookback_start,
    register_config,
    require_quality_passed,
    run_dates,
    write_decisions,
)
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.stability import StabilityConfig, StabilityInputs, compute_stability
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse, between

GROUP = "stability"
ENGINE = "stability"
PROFILE_COLUMNS = ["issuer_id", "as_of_date", "leverage_score", "earnings_quality_score",
                   "liquidity_risk", "governance_risk_score", "profile_weakness"]


def stability_lookback(cfg: StabilityConfig) -> int:
    """Sessions of history before the first date that the components read."""
    return max(cfg.contagion_window, cfg.vol_history_sessions + 63,
               cfg.liquidity_history_sessions + 21) + 5


def read_stability_inputs(wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                          cfg: StabilityConfig) -> StabilityInputs:
    """Everything the stability components of ``dates`` read, dated on or before the last."""
    start = lookback_start(dates[0], stability_lookback(cfg))
    end = dates[-1]

    def part(table: str, columns: list[str]) -> pd.DataFrame:
        return wh.read_partitions(table, market_id=market_id, start=start, end=end,
                                  columns=columns)

    internals = part("market_correlation_daily", ["date", "index_ret_1d"]).dropna()
    regimes = wh.read("regimes", where={"market_id": market_id, "as_of_date": between(None, end)},
                      columns=["as_of_date", "regime_label"], order_by=["as_of_date"])
    profiles = wh.read_partitions("profiles", market_id=market_id,
                                  start=dates[0] - pd.Timedelta(days=cfg.profile_max_age_days),
                                  end=end,
                                  columns=PROFILE_COLUMNS)
    return StabilityInputs(
        returns=part("returns_daily", ["instrument_id", "date", "ret_1d"]),
        volatility=part("volatility_daily", ["instrument_id", "date", "vol_21d", "vol_63d"]),
        liquidity=part("liquidity_daily", ["instrument_id", "date", "adv_21d", "amihud_21d"]),
        instruments=wh.read("instruments", where={"market_id": market_id},
                            columns=["instrument_id", "issuer_id", "asset_class"]),
        issuers=wh.read("issuers", where={"market_id": market_id},
                        columns=["issuer_id", "issuer_type", "sector"]),
        profiles=profiles,
        index_returns=(internals.set_index(pd.to_datetime(internals["date"]))["index_ret_1d"]
                       if len(internals) else None),
        regime_labels=(regimes.set_index(pd.to_datetime(regimes["as_of_date"]))["regime_label"]
                       if len(regimes) else None))


def stability_decisions(out: pd.DataFrame, inputs_ref: dict) -> pd.DataFrame:
    """One decision record per date: the market's stability and its least stable entities."""
    rows = []
    for d, day in out.groupby("as_of_date", sort=True):
        market = day[day["entity_type"] == "MARKET"]["stability_score"]
        weakest = day[day["entity_type"] == "ISSUER"].nsmallest(5, "stability_score")
        rows.append({
            "context_id": f"{day['market_id'].iloc[0]}:{pd.Timestamp(d).date()}",
            "as_of_date": d, "config_id": day["config_id"].iloc[0], "model_id": None,
            "input_refs": inputs_ref,
            "proposed_action": {
                "market_stability": float(market.iloc[0]) if len(market) else None,
                "entities": int(len(day)),
                "below_0_5": int((day["stability_score"] < 0.5).sum()),
                "least_stable": {str(r.entity_id): round(float(r.stability_score), 4)
                                 for r in weakest.itertuples()}}})
    return pd.DataFrame(rows)


def stability_asset(market_id: str, with_profiles: bool, with_regime: bool) -> AssetsDefinition:
    inputs = ["returns_daily", "volatility_daily", "liquidity_daily", "market_correlation_daily",
              "instruments", "issuers", *(["profiles"] if with_profiles else []),
              *(["regimes"] if with_regime else [])]

    @asset(
        key=AssetKey([market_id, "stability_vectors"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in inputs],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "stability_vectors"},
        tags={"prometheus/tier": "1"},
        description=f"Stability vectors of {market_id}'s issuers, sectors, market and FX "
                    "pairs: liquidity, volatility (vs own history, regime-aware), contagion "
                    "(stress sensitivity), fundamental; weighted score.",
    )
    def _stability(context: AssetExecutionContext, warehouse: WarehouseResource,
                   mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, ["prices_daily"])
        loaded = load_engine_config("stability")
        cfg: StabilityConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        data = read_stability_inputs(wh, market_id, dates, cfg)
        if with_profiles and data.profiles.empty:
            context.log.warning(f"{market_id}: no profiles on these dates: the fundamental "
                                "component is missing (materialize profiles first)")
        if with_regime and data.regime_labels is None:
            context.log.warning(f"{market_id}: no regimes yet: volatility is judged without "
                                "the regime adjustment")
        out = compute_stability(market_id, data, dates, cfg, config_id)
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            if len(out):
                for etype, g in out.groupby("entity_type"):
                    run.log_metric_series(f"mean_stability_{etype}",
                                          g.groupby("as_of_date")["stability_score"].mean())
            run.log_metrics({"rows": len(out),
                             "missing_score": int(out["stability_score"].isna().sum())
                             if len(out) else 0})
            lineage = run.metadata()
            run_id = run.run_id
        if len(out):
            write_decisions(wh, context, ENGINE, market_id, dates, stability_decisions(
                out, {"tables": inputs, "lookback_sessions": stability_lookback(cfg)}),
                mlflow_run_id=run_id)
        done = set(out["as_of_date"]) if len(out) else set()
        without = [d for d in dates if d not in done]
        if without:
            context.log.warning(f"{market_id}: no stability vectors for {len(without)} date(s) "
                                f"(first {without[0].date()}): no prices that day")
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "entities": ", ".join(f"{k}: {v}" for k, v in
                                  out.groupby("entity_type")["entity_id"].nunique().items())
            if len(out) else "none"})
        return out if len(out) else empty_frame("stability_vectors")

    return _stability


def stability_assets(data_markets: list[str], profile_markets: list[str],
                     regime_markets: list[str]) -> list[AssetsDefinition]:
    return [stability_asset(m, m in profile_markets, m in regime_markets) for m in data_markets]
