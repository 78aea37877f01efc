"""Feature assets: per market, the six feature tables computed in one step from the warehouse
history (prices, corporate actions, fundamentals), a range at a time (``steps/features.py``)."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    BackfillPolicy,
    Output,
    multi_asset,
)

from prometheus_dagster.assets.common import register_config, require_quality_passed, run_dates
from prometheus_dagster.assets.lineage import asset_deps, declare
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.features import FEATURE_TABLES, FeaturesConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.features import (
    GATED_TABLES,
    compute_feature_tables,
    feature_inputs,
    feature_warmup,
)

GROUP = "features"


def features_asset(market_id: str) -> AssetsDefinition:
    name = f"{market_id}_features"
    inputs = feature_inputs(load_engine_config("features").typed(FeaturesConfig))
    outs = {
        f"{market_id}__{table}": AssetOut(
            key=AssetKey([market_id, table]), group_name=GROUP,
            metadata={"table": table, **declare(name, inputs, market_id)},
            is_required=False,
            tags={"prometheus/tier": "1"},
            description=f"{table} of {market_id} (split- and dividend-adjusted).")
        for table in FEATURE_TABLES
    }

    @multi_asset(
        name=name,
        outs=outs,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        can_subset=True,
    )
    def _features(context: AssetExecutionContext, warehouse: WarehouseResource,
                  mlflow: MlflowTracking):
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, list(GATED_TABLES))
        loaded = load_engine_config("features")
        cfg = loaded.typed(FeaturesConfig)
        config_id = register_config(wh, loaded)
        tables, data = compute_feature_tables(wh, market_id, dates, cfg, config_id,
                                              log=context.log)
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                              params={"warmup_sessions": feature_warmup(cfg),
                                      "input_price_rows": len(data.prices)}) as run:
            run.log_metrics({f"rows_{t}": len(df) for t, df in tables.items()})
            corr = tables["market_correlation_daily"]
            if len(corr):
                run.log_metric_series("avg_pairwise_corr_63d",
                                      corr.set_index("date")["avg_pairwise_corr_63d"])
            lineage = run.metadata()
        context.log.info(
            f"{market_id} features for {len(dates)} date(s): "
            + ", ".join(f"{t} {len(df)}" for t, df in tables.items())
        )
        selected = context.selected_output_names
        for table in FEATURE_TABLES:
            if f"{market_id}__{table}" not in selected:
                continue
            yield Output(tables[table], output_name=f"{market_id}__{table}",
                         metadata={**lineage, "rows": len(tables[table]), "config_id": config_id})

    return _features


def features_assets(market_ids: list[str]) -> list[AssetsDefinition]:
    return [features_asset(m) for m in market_ids]
