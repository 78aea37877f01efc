"""Fragility assets per market: scenario-loss measures and soft-target classes
(``steps/fragility.py``); the tail model refits (``assets/fragility_models.py``) and fragility
alpha (``assets/fragility_alpha.py``) for the markets with profiles."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import register_config, run_dates, write_decisions
from prometheus_dagster.assets.fragility_alpha import fragility_alpha_asset
from prometheus_dagster.assets.fragility_models import fragility_training_asset
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.fragility import FragilityConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.fragility import (  # noqa: F401  (entity_members, read_paths_by_date: re-exported)
    MEASURES_INPUTS,
    SOFT_TARGET_INPUTS,
    class_decisions,
    compute_fragility_measures,
    compute_soft_target_classes,
    entity_members,
    read_paths_by_date,
)

GROUP = "fragility"


def fragility_config() -> LoadedConfig:
    return load_engine_config("fragility")


def measures_asset(market_id: str) -> AssetsDefinition:
    table = "fragility_measures"

    @asset(
        key=AssetKey([market_id, table]),
        group_name=GROUP,
        deps=asset_deps(MEASURES_INPUTS, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": table, **declare(step_name(market_id, table), MEASURES_INPUTS,
                                            market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Scenario losses of {market_id}'s entities: per set mean, ES and worst "
                    "loss; pooled expected shortfall, worst case, HighFragility in [0, 1].",
    )
    def _measures(context: AssetExecutionContext, warehouse: WarehouseResource,
                  mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = fragility_config()
        config_id = register_config(wh, loaded)
        out, without = compute_fragility_measures(wh, market_id, run_dates(context),
                                                  loaded.typed(FragilityConfig), config_id,
                                                  log=context.log)
        if without:
            context.log.warning(f"{market_id}: no fragility measures on {len(without)} date(s) "
                                f"(first {without[0].date()}): no scenario paths or stability "
                                "vectors that day")
        if out.empty:
            out = empty_frame(table)
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            if len(out):
                run.log_metric_series("median_issuer_es", out[out["entity_type"] == "ISSUER"]
                                      .groupby("as_of_date")["expected_shortfall"].median())
            run.log_metrics({"rows": len(out), "dates_without_measures": len(without)})
            lineage = run.metadata()
        context.add_output_metadata({**lineage, "rows": len(out), "config_id": config_id})
        return out

    return _measures


def soft_targets_asset(market_id: str) -> AssetsDefinition:
    table = "soft_target_classes"

    @asset(
        key=AssetKey([market_id, table]),
        group_name=GROUP,
        deps=asset_deps(SOFT_TARGET_INPUTS, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": table, **declare(step_name(market_id, table), SOFT_TARGET_INPUTS,
                                            market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Soft-target class of {market_id}'s entities (NONE, WATCHLIST, "
                    "SOFT_TARGET) with the thresholds crossed.",
    )
    def _soft(context: AssetExecutionContext, warehouse: WarehouseResource,
              mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = fragility_config()
        config_id = register_config(wh, loaded)
        out = compute_soft_target_classes(wh, market_id, dates, loaded.typed(FragilityConfig),
                                          config_id)
        if out.empty:
            context.log.warning(f"{market_id}: no stability vectors on these dates")
            return empty_frame(table)
        counts = out["soft_target_class"].value_counts().to_dict()
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            for c in ("WATCHLIST", "SOFT_TARGET"):
                run.log_metric_series(f"{c.lower()}_count", out.groupby("as_of_date")[
                    "soft_target_class"].apply(lambda s, c=c: float((s == c).sum())))
            run.log_metrics({"rows": len(out), **{f"rows_{k}": v for k, v in counts.items()}})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, "soft_targets", market_id, dates,
                        class_decisions(out, "soft_target_class", ("SOFT_TARGET", "WATCHLIST"),
                                        SOFT_TARGET_INPUTS.refs(market_id)),
                        mlflow_run_id=run_id)
        context.add_output_metadata({**lineage, "rows": len(out), "config_id": config_id,
                                     **{k: int(v) for k, v in counts.items()}})
        return out

    return _soft


def fragility_assets(data_markets: list[str], profile_markets: list[str]
                     ) -> list[AssetsDefinition]:
    cfg = fragility_config().typed(FragilityConfig)
    out: list[AssetsDefinition] = []
    for m in data_markets:
        out += [measures_asset(m), soft_targets_asset(m)]
        if m in profile_markets:
            out += [fragility_training_asset(m, cfg), fragility_alpha_asset(m)]
    return out
