"""Risk model assets per market: the point-in-time factor risk model (factor covariance F,
exposures B and specific risk D) of every date, from the feature engine's factor returns,
instrument betas and returns dated on or before the date."""

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

from prometheus_dagster.assets.common import lookback_start, register_config, run_dates
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.risk import (
    RISK_TABLES,
    FactorRiskModel,
    RiskModelConfig,
    RiskModelInputs,
    estimate_risk_models,
    risk_model_frames,
    risk_model_from_frames,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "risk"
INPUTS = ("returns_daily", "factors_daily", "instrument_factors_daily")


def read_risk_inputs(wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                     cfg: RiskModelConfig) -> RiskModelInputs:
    """Factor returns, returns and exposures the models of ``dates`` read (nothing after the
    last date)."""
    start = lookback_start(dates[0], max(cfg.factor_window, cfg.specific_window) + 5)
    end = dates[-1]
    return RiskModelInputs(
        returns=wh.read_partitions("returns_daily", market_id=market_id, start=start, end=end,
                                   columns=["instrument_id", "date", "ret_1d"]),
        factor_returns=wh.read_partitions("factors_daily", market_id=market_id, start=start,
                                          end=end, columns=["factor_id", "date", "value"]),
        exposures=wh.read_partitions("instrument_factors_daily", market_id=market_id,
                                     dates=dates,
                                     columns=["instrument_id", "date", "factor_id",
                                              "exposure"]))


def load_risk_models(wh: Warehouse, market_id: str, dates: list[pd.Timestamp]
                     ) -> dict[pd.Timestamp, FactorRiskModel]:
    """The stored risk model of each date that has one."""
    factors = wh.read_partitions("risk_factor_covariance", market_id=market_id, dates=dates)
    specific = wh.read_partitions("risk_specific", market_id=market_id, dates=dates)
    out: dict[pd.Timestamp, FactorRiskModel] = {}
    for d, f in factors.groupby("as_of_date", sort=True):
        s = specific[specific["as_of_date"] == d]
        if len(s):
            out[pd.Timestamp(d)] = risk_model_from_frames(f, s)
    return out


def risk_model_asset(market_id: str) -> AssetsDefinition:
    outs = {f"{market_id}__{t}": AssetOut(
        key=AssetKey([market_id, t]), group_name=GROUP, metadata={"table": t},
        is_required=False, tags={"prometheus/tier": "1"},
        description=RISK_TABLES[t].description) for t in RISK_TABLES}

    @multi_asset(
        name=f"{market_id}_risk_model",
        outs=outs,
        deps=[AssetKey([market_id, t]) for t in INPUTS],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        can_subset=True,
    )
    def _risk(context: AssetExecutionContext, warehouse: WarehouseResource,
              mlflow: MlflowTracking):
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = load_engine_config("risk")
        cfg: RiskModelConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        models = estimate_risk_models(market_id, dates, read_risk_inputs(wh, market_id, dates,
                                                                        cfg), cfg)
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
