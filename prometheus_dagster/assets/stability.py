"""Stability assets per market: stability vectors of the market's issuers, sectors, the market
itself and its FX pairs, from features, profiles and the market's regime, point in time
(``steps/stability.py``)."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

import prometheus_dagster.engines.profiles  # noqa: F401  (declares the profiles table)
import prometheus_dagster.engines.regime  # noqa: F401  (declares the regimes table)
from prometheus_dagster.assets.common import (
    register_config,
    require_quality_passed,
    run_dates,
    write_decisions,
)
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.stability import StabilityConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.stability import (
    GATED_TABLES,
    compute_stability_range,
    stability_decisions,
    stability_inputs,
    stability_lookback,
)

GROUP = "stability"
ENGINE = "stability"


def stability_asset(market_id: str, with_profiles: bool, with_regime: bool) -> AssetsDefinition:
    inputs = stability_inputs(load_engine_config("stability").typed(StabilityConfig),
                              with_profiles, with_regime)

    @asset(
        key=AssetKey([market_id, "stability_vectors"]),
        group_name=GROUP,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "stability_vectors",
                  **declare(step_name(market_id, "stability_vectors"), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Stability vectors of {market_id}'s issuers, sectors, market and FX "
                    "pairs: liquidity, volatility (vs own history, regime-aware), contagion "
                    "(stress sensitivity), fundamental; weighted score.",
    )
    def _stability(context: AssetExecutionContext, warehouse: WarehouseResource,
                   mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, list(GATED_TABLES))
        loaded = load_engine_config("stability")
        cfg = loaded.typed(StabilityConfig)
        config_id = register_config(wh, loaded)
        out, data = compute_stability_range(wh, market_id, dates, cfg, config_id,
                                            with_profiles, with_regime, log=context.log)
        if with_profiles and data.profiles.empty:
            context.log.warning(f"{market_id}: no profiles on these dates: the fundamental "
                                "component is missing (materialize profiles first)")
        if with_regime and data.regime_labels is None:
            context.log.warning(f"{market_id}: no regimes yet: volatility is judged without "
                                "the regime adjustment")
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
            refs = inputs.refs(market_id, lookback_sessions=stability_lookback(cfg))
            write_decisions(wh, context, ENGINE, market_id, dates,
                            stability_decisions(out, refs), mlflow_run_id=run_id)
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
