"""Regime prototype refits per region on the configured cadence (``steps/regime.py``): partition
P is fitted on data dated before P and registered in MLflow with the last date of its data."""

import tempfile
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, asset

from prometheus_dagster.assets.common import register_config, train_refit_partitions
from prometheus_dagster.assets.lineage import refit_asset_args
from prometheus_dagster.engines.regime import RegimeConfig, RegimeTrainingError
from prometheus_dagster.engines.regime.config import RegionConfig
from prometheus_dagster.engines.regime.plots import regime_figure
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.regime import (
    MODEL_ARTIFACT,
    MODEL_ASSET,
    MODEL_TYPE,
    fit_prototypes,
    history_assignments,
    index_returns,
    regime_config,
    region_inputs,
    registered_name,
)

GROUP = "regime"
PLOT_SESSIONS = 504


def regime_training_asset(region: str, rc: RegionConfig, cfg: RegimeConfig) -> AssetsDefinition:
    inputs = region_inputs(region, rc)

    @asset(
        **refit_asset_args(region, MODEL_ASSET, inputs, cfg.refit.cadence,
                           cfg.refit.first_year, {"model_type": MODEL_TYPE,
                                                  "market_id": region}, rc.members),
        group_name=GROUP,
        description=f"Regime prototypes of {region} ({cfg.refit.cadence} refits): partition P "
                    "is fitted on data dated before P and registered in MLflow with that last "
                    "date.",
    )
    def _regime_models(context: AssetExecutionContext, warehouse: WarehouseResource,
                       mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = regime_config()
        cfg = loaded.typed(RegimeConfig)
        config_id = register_config(wh, loaded)
        return train_refit_partitions(
            context, region, "regime model",
            lambda valid_from: _train_one(context, wh, mlflow, region, rc, valid_from, cfg,
                                          config_id),
            RegimeTrainingError)

    return _regime_models


def _train_one(context: AssetExecutionContext, wh, mlflow: MlflowTracking, region: str,
               rc: RegionConfig, valid_from: pd.Timestamp, cfg: RegimeConfig,
               config_id: str) -> dict:
    fitted = fit_prototypes(wh, region, rc, valid_from, cfg)
    model, cut = fitted.model, fitted.trained_through
    name = registered_name(region, cfg)
    shares = pd.Series(model.cluster_labels).value_counts().to_dict()
    metrics = {"training_rows": model.training_rows, "clusters": len(model.cluster_labels),
               "labels": len(model.labels),
               **{f"clusters_{k}": v for k, v in shares.items()}}
    with mlflow.asset_run(context, GROUP, market_id=region, config_id=config_id,
                          params={"trained_through": str(cut.date()),
                                  "valid_from": str(valid_from.date()),
                                  "first_training_date": model.first_training_date,
                                  "window": cfg.window, "features": ",".join(model.features),
                                  "num_clusters": len(model.cluster_labels),
                                  "covariance_type": cfg.model.covariance_type},
                          extra_tags={"refit_partition": str(valid_from.date())}) as run:
        run.log_metrics(metrics)
        run.log_dict({"clusters": [{"label": lab, **ch} for lab, ch in zip(
            model.cluster_labels, model.cluster_characteristics, strict=True)],
            "labels": model.labels, "transition": model.transition}, "prototypes.json")
        history = history_assignments(region, fitted, cfg, config_id)
        if len(history):
            run.log_figure(regime_figure(region, history.tail(PLOT_SESSIONS),
                                         index_returns(fitted.inputs)), "training_history.png")
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifact(model.save(Path(tmp) / MODEL_ARTIFACT))
        source = run.artifact_uri(MODEL_ARTIFACT)
        version = mlflow.register_model_version(
            name, source, run.run_id, cut, tags={"valid_from": str(valid_from.date()),
                                                 "config_id": config_id})
        run.set_tags({f"registered:{name}": version})
    model_id = f"{name}/{version}"
    context.log.info(f"{region} regime prototypes {valid_from.date()}: {model_id}, "
                     f"{model.training_rows} sessions {model.first_training_date}.."
                     f"{cut.date()}, clusters {model.cluster_labels}")
    return {"model_id": model_id, "model_name": name, "version": version, "market_id": region,
            "model_type": MODEL_TYPE, "valid_from": valid_from, "trained_through": cut,
            "artifact_uri": source,
            "training_spec": {"features": model.features, "window": cfg.window,
                              "first_training_date": model.first_training_date,
                              "cadence": cfg.refit.cadence},
            "metrics": metrics, "mlflow_run_id": run.run_id,
            "dagster_run_id": context.run.run_id, "config_id": config_id}
