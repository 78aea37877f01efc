"""Risk model assets per market: the point-in-time factor risk model of every date
(``steps/risk.py``), with its MLflow run and metadata."""

import numpy as np
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

from prometheus_dagster.assets.common import register_config, run_dates
from prometheus_dagster.assets.lineage import asset_deps, declare
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.risk import RISK_TABLES, RiskModelConfig, risk_model_frames
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.risk import (  # noqa: F401  (load_risk_models: re-exported)
    compute_risk_models,
    load_risk_models,
    risk_inputs,
)

GROUP = "risk"


def risk_model_asset(market_id: str) -> AssetsDefinition:
    name = f"{market_id}_risk_model"
    inputs = risk_inputs(load_engine_config("risk").typed(RiskModelConfig))
    outs = {f"{market_id}__{t}": AssetOut(
        key=AssetKey([market_id, t]), group_name=GROUP,
        metadata={"table": t, **declare(name, inputs, market_id)},
        is_required=False, tags={"prometheus/tier": "1"},
        description=RISK_TABLES[t].description) for t in RISK_TABLES}

    @multi_asset(
        name=name,
        outs=outs,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        can_subset=True,
    )
    def _risk(context: AssetExecutionContext, warehouse: WarehouseResource,
              mlflow: MlflowTracking):
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = load_engine_config("risk")
        cfg = loaded.typed(RiskModelConfig)
        config_id = register_config(wh, loaded)
        models = compute_risk_models(wh, market_id, dates, cfg)
        missing = sorted(set(dates) - {m.as_of_date for m in models})
        if missing:
            context.log.warning(f"{market_id}: no risk model on {len(missing)} date(s) (first "
                                f"{missing[0].date()}): too little factor history or no "
                                "exposures that day")
        factor_rows, specific_rows = risk_model_frames(models, config_id)
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            if models:
                ew = [float(np.sqrt(m.portfolio_variance(np.full(len(m.instrument_ids),
                                                                  1 / len(m.instrument_ids)))))
                      for m in models]
                run.log_metric_series("equal_weight_vol", pd.Series(
                    ew, index=[m.as_of_date for m in models]))
            run.log_metrics({"models": len(models), "dates_without_model": len(missing),
                             "instruments": int(specific_rows["instrument_id"].nunique())})
            lineage = run.metadata()
        meta = {**lineage, "config_id": config_id, "models": len(models)}
        tables = {"risk_factor_covariance": factor_rows, "risk_specific": specific_rows}
        for t, frame in tables.items():
            if f"{market_id}__{t}" in context.selected_output_names:
                yield Output(frame, output_name=f"{market_id}__{t}",
                             metadata={**meta, "rows": len(frame)})

    return _risk


def risk_assets(market_ids: list[str]) -> list[AssetsDefinition]:
    return [risk_model_asset(m) for m in market_ids]
