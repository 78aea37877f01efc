"""Fragility alpha per market: components, SoftTargetScore, the tail probability of the model
version trained strictly before each date, FragilityClass and position templates
(``steps/fragility_alpha.py``)."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    asset,
)

from prometheus_dagster.assets.common import register_config, run_dates, write_decisions
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.fragility import FRAGILITY_CLASSES, FragilityConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.fragility import class_decisions
from prometheus_dagster.steps.fragility_alpha import (
    alpha_inputs,
    compute_fragility_alpha,
    dates_without_model,
)

GROUP = "fragility"


def fragility_alpha_asset(market_id: str) -> AssetsDefinition:
    table = "fragility_alpha"
    inputs = alpha_inputs()

    @asset(
        key=AssetKey([market_id, table]),
        group_name=GROUP,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": table, **declare(step_name(market_id, table), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Fragility alpha of {market_id}'s entities per horizon: WeakProfile, "
                    "Instability, HighFragility, ComplacentPricing, SoftTargetScore, tail "
                    "probability and expected downside, FragilityClass, position templates.",
    )
    def _alpha(context: AssetExecutionContext, warehouse: WarehouseResource,
               mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = load_engine_config("fragility")
        cfg = loaded.typed(FragilityConfig)
        config_id = register_config(wh, loaded)
        out = compute_fragility_alpha(wh, mlflow, market_id, dates, cfg, config_id,
                                      log=context.log)
        if out.empty:
            context.log.warning(f"{market_id}: no stability vectors on these dates: no "
                                "fragility alpha")
            return empty_frame(table)
        no_model = dates_without_model(out)
        if no_model:
            context.log.warning(
                f"{market_id}: no fragility model trained before {no_model[0].date()} "
                f"({len(no_model)} date(s)): components, score and class without tail "
                f"probability; materialize {market_id}/fragility_models for the period")
        first = out[out["horizon_days"] == cfg.horizons[0]]
        counts = first["fragility_class"].value_counts().to_dict()
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            issuers = out[(out["entity_type"] == "ISSUER")]
            for h, g in issuers.groupby("horizon_days"):
                run.log_metric_series(f"h{h}_mean_tail_probability",
                                      g.groupby("as_of_date")["tail_probability"].mean())
            run.log_metric_series("mean_soft_target_score",
                                  issuers.groupby("as_of_date")["soft_target_score"].mean())
            run.log_metrics({"rows": len(out), "dates_without_model": len(no_model),
                             **{f"rows_{k}": int(counts.get(k, 0)) for k in FRAGILITY_CLASSES}})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, "fragility_alpha", market_id, dates, class_decisions(
            first, "fragility_class", ("CRISIS", "SHORT_CANDIDATE", "WATCHLIST"),
            inputs.refs(market_id),
            extra=lambda day: {"position_templates": [t for ts in day["position_templates"]
                                                      for t in ts
                                                      if t["direction"] != "FLAT"]}),
            mlflow_run_id=run_id)
        latest = first[first["as_of_date"] == first["as_of_date"].max()]
        top = latest.nlargest(5, "soft_target_score")
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "models": ", ".join(sorted(set(out["model_id"].dropna()))) or "none",
            "dates_without_model": len(no_model),
            "top_soft_target_scores": MetadataValue.md("\n".join(
                f"- {r.entity_id}: {r.soft_target_score:.2f} ({r.fragility_class})"
                for r in top.itertuples()) or "none")})
        return out

    return _alpha
