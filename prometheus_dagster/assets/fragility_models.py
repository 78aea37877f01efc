"""The fragility tail model of each market, refitted on its cadence: partition P is fitted on
the issuer-days whose whole horizon ended before P (``steps/fragility_alpha.py``), logged and
registered in MLflow with that last date."""

import tempfile
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, asset

from prometheus_dagster.assets.common import register_config, train_refit_partitions
from prometheus_dagster.assets.lineage import refit_asset_args
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.engines.fragility import FragilityConfig, FragilityTrainingError
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse
from prometheus_dagster.steps.fragility_alpha import (
    MODEL_ARTIFACT,
    MODEL_ASSET,
    MODEL_TYPE,
    model_inputs,
    registered_name,
    train_fragility_model,
)

GROUP = "fragility"


def fragility_training_asset(market_id: str, cfg: FragilityConfig) -> AssetsDefinition:
    inputs = model_inputs(cfg)

    @asset(
        **refit_asset_args(market_id, MODEL_ASSET, inputs, cfg.refit.cadence,
                           cfg.refit.first_year, {"model_type": MODEL_TYPE,
                                                  "market_id": market_id}),
        group_name=GROUP,
        description=f"Fragility tail model of {market_id} ({cfg.refit.cadence} refits): "
                    "partition P is fitted on issuer-days whose whole horizon ended before P "
                    "and registered in MLflow with that last date.",
    )
    def _models(context: AssetExecutionContext, warehouse: WarehouseResource,
                mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = load_engine_config("fragility")
        config_id = register_config(wh, loaded)
        return train_refit_partitions(
            context, market_id, "fragility model",
            lambda valid_from: _train_one(context, wh, mlflow, market_id, valid_from,
                                          loaded.typed(FragilityConfig), config_id),
            FragilityTrainingError,
            hint=f"; materialize {market_id}/stability_vectors .. soft_target_classes over "
                 "more history")

    return _models


def _train_one(context: AssetExecutionContext, wh: Warehouse, mlflow: MlflowTracking,
               market_id: str, valid_from: pd.Timestamp, cfg: FragilityConfig,
               config_id: str) -> dict:
    trained = train_fragility_model(wh, market_id, valid_from, cfg)
    model = trained.model
    name = registered_name(market_id, cfg)
    with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                          params={"trained_through": model.trained_through,
                                  "valid_from": str(valid_from.date()),
                                  "first_training_date": model.first_training_date,
                                  "horizons": ",".join(map(str, cfg.horizons)),
                                  "features": ",".join(model.features),
                                  "tail_drawdown": cfg.tail_outcome.drawdown},
                          extra_tags={"refit_partition": str(valid_from.date())}) as run:
        run.log_metrics(trained.metrics)
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifact(model.save(Path(tmp) / MODEL_ARTIFACT))
        source = run.artifact_uri(MODEL_ARTIFACT)
        version = mlflow.register_model_version(
            name, source, run.run_id, pd.Timestamp(model.trained_through),
            tags={"valid_from": str(valid_from.date()), "config_id": config_id})
        run.set_tags({f"registered:{name}": version})
    model_id = f"{name}/{version}"
    context.log.info(f"{market_id} fragility model {valid_from.date()}: {model_id}, "
                     + ", ".join(f"h{h}: {m.rows} rows, {m.positives} tail outcomes"
                                 for h, m in model.horizons.items()))
    return {"model_id": model_id, "model_name": name, "version": version,
            "market_id": market_id, "model_type": MODEL_TYPE, "valid_from": valid_from,
            "trained_through": pd.Timestamp(model.trained_through), "artifact_uri": source,
            "training_spec": {"features": list(model.features), "horizons": list(cfg.horizons),
                              "first_training_date": model.first_training_date,
                              "tail_outcome": cfg.tail_outcome.model_dump(),
                              "cadence": cfg.refit.cadence},
            "metrics": trained.metrics, "mlflow_run_id": run.run_id,
            "dagster_run_id": context.run.run_id, "config_id": config_id}
