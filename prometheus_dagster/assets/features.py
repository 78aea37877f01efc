"""Feature assets: per market, the six feature tables computed in one step from the warehouse
history (prices, corporate actions, fundamentals), vectorised over the run's dates."""

import pandas as pd
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
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.features import (
    FEATURE_TABLES,
    FeatureInputs,
    compute_features,
    warmup_sessions,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking

GROUP = "features"
INPUT_TABLES = ("prices_daily", "corporate_actions", "fundamentals")


def load_feature_inputs(warehouse, market_id: str, dates: list[pd.Timestamp],
                        warmup: int) -> FeatureInputs:
    """History for the run: ``warmup`` sessions before the first date through the last date;
    statements reported on or before the last date. Nothing dated after the run is read."""
    first, last = dates[0], dates[-1]
    start = trading_calendar(market_id).previous_trading_day(first, warmup)
    return FeatureInputs(
        prices=warehouse.read_partitions("prices_daily", market_id=market_id, start=start,
                                         end=last),
        corporate_actions=warehouse.read_partitions("corporate_actions", market_id=market_id,
                                                    start=start, end=last),
        fundamentals=warehouse.read_partitions("fundamentals", market_id=market_id, end=last),
        instruments=warehouse.read("instruments", where={"market_id": market_id}),
    )


def features_asset(market_id: str) -> AssetsDefinition:
    deps = [AssetKey([market_id, t]) for t in (*INPUT_TABLES, "instruments")]
    outs = {
        f"{market_id}__{table}": AssetOut(
            key=AssetKey([market_id, table]), group_name=GROUP, metadata={"table": table},
            is_required=False,
            tags={"prometheus/tier": "1"},
            description=f"{table} of {market_id} (split- and dividend-adjusted).")
        for table in FEATURE_TABLES
    }

    @multi_asset(
        name=f"{market_id}_features",
        outs=outs,
        deps=deps,
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        can_subset=True,
    )
    def _features(context: AssetExecutionContext, warehouse: WarehouseResource,
                  mlflow: MlflowTracking):
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, list(INPUT_TABLES))
        loaded = load_engine_config("features")
        config_id = register_config(wh, loaded)
        warmup = max(warmup_sessions(t, loaded.config) for t in FEATURE_TABLES)
        inputs = load_feature_inputs(wh, market_id, dates, warmup)
        tables = compute_features(inputs, dates, loaded.config, config_id=config_id)
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                              params={"warmup_sessions": warmup,
                                      "input_price_rows": len(inputs.prices)}) as run:
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
