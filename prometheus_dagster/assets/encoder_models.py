"""Encoder refit assets per market: partition Y trains the numeric window encoder and the joint
encoder on data dated before 1 January Y (``steps/encoder_models.py``) and registers both in
MLflow with that last date."""

import tempfile
import time
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, asset

from prometheus_dagster.assets.common import register_config
from prometheus_dagster.assets.lineage import refit_asset_args
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.engines.encoders import EncodersConfig
from prometheus_dagster.engines.features import FeaturesConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.encoder_models import (
    ENCODER_MODEL_INPUTS,
    read_training_data,
    train_encoders,
    training_span,
)
from prometheus_dagster.steps.encoders import model_row_id, registered_name

GROUP = "encoders"
BUNDLE_ARTIFACT = "encoder_bundle"


def encoder_training_asset(market_id: str, first_year: int) -> AssetsDefinition:
    @asset(
        **refit_asset_args(market_id, "encoder_models", ENCODER_MODEL_INPUTS, "yearly",
                           first_year, {"model_type": ["numeric_window_encoder",
                                                       "joint_encoder"]}),
        group_name=GROUP,
        description=f"Numeric window encoder and joint text <-> window encoder for "
                    f"{market_id}: partition Y is trained on data before 1 January Y and "
                    "registered in MLflow with that last date.",
    )
    def _encoder_models(context: AssetExecutionContext, warehouse: WarehouseResource,
                        mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = load_engine_config("encoders")
        cfg = loaded.typed(EncodersConfig)
        fcfg = load_engine_config("features").typed(FeaturesConfig)
        config_id = register_config(wh, loaded)
        rows = []
        for key in context.partition_keys:
            rows.extend(_train_one(context, wh, mlflow, market_id, pd.Timestamp(key), cfg,
                                   fcfg, config_id))
        return pd.DataFrame(rows)

    return _encoder_models


def _train_one(context: AssetExecutionContext, wh, mlflow: MlflowTracking, market_id: str,
               year_start: pd.Timestamp, cfg: EncodersConfig, fcfg: FeaturesConfig,
               config_id: str) -> list[dict]:
    first, cut = training_span(market_id, year_start, cfg)
    data = read_training_data(wh, market_id, first, cut, cfg)
    context.log.info(f"{market_id} encoders for {year_start.year}: {len(data.sessions)} "
                     f"sessions through {cut.date()}, {len(data.texts)} embedded texts")
    started = time.perf_counter()
    bundle, metrics = train_encoders(data, cut, cfg, fcfg, log=context.log.info)
    metrics = {**metrics, "training_seconds": time.perf_counter() - started}
    bundle.meta.update({"market_id": market_id, "valid_from": str(year_start.date()),
                        "config_id": config_id})
    names = [registered_name(market_id, cfg.numeric.model_id),
             registered_name(market_id, cfg.joint.model_id)]
    with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                          params={"trained_through": str(cut.date()),
                                  "valid_from": str(year_start.date()),
                                  "window": cfg.numeric.window,
                                  "first_session": str(data.sessions[0].date())},
                          extra_tags={"model_year": year_start.year}) as run:
        run.log_metrics(metrics)
        run.log_figure(_loss_figure(bundle.meta), "training_loss.png")
        with tempfile.TemporaryDirectory() as tmp:
            bundle.save(Path(tmp) / BUNDLE_ARTIFACT)
            run.log_artifact(Path(tmp) / BUNDLE_ARTIFACT)
        source = run.artifact_uri(BUNDLE_ARTIFACT)
        versions = {n: mlflow.register_model_version(
            n, source, run.run_id, cut, tags={"valid_from": str(year_start.date()),
                                              "config_id": config_id}) for n in names}
        run.set_tags({f"registered:{n}": v for n, v in versions.items()})
        lineage = run.metadata()
    k = cfg.joint.recall_k
    context.log.info(
        f"{market_id} {year_start.year}: held-out recall@{k} "
        f"{metrics[f'heldout_recall_at_{k}']:.3f} vs random "
        f"{metrics[f'random_recall_at_{k}']:.3f} ({metrics[f'recall_at_{k}_vs_random']:.2f}x); "
        + ", ".join(f"{n} v{v}" for n, v in versions.items()))
    context.add_output_metadata({
        **lineage, **{n: MetadataValue.int(v) for n, v in versions.items()},
        f"heldout_recall_at_{k}": metrics[f"heldout_recall_at_{k}"],
        f"recall_at_{k}_vs_random": metrics[f"recall_at_{k}_vs_random"]})
    model_type = {names[0]: "numeric_window_encoder", names[1]: "joint_encoder"}
    return [{
        "model_id": model_row_id(n, v), "model_name": n, "version": v, "market_id": market_id,
        "model_type": model_type[n], "valid_from": year_start, "trained_through": cut,
        "artifact_uri": source, "training_spec": {**bundle.meta, "metrics": metrics},
        "metrics": metrics, "mlflow_run_id": run.run_id,
        "dagster_run_id": context.run.run_id, "config_id": config_id,
    } for n, v in versions.items()]


def _loss_figure(meta: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for a, key, title in ((ax[0], "numeric_loss_per_epoch", "numeric encoder"),
                          (ax[1], "joint_loss_per_epoch", "joint encoder")):
        a.plot(range(1, len(meta[key]) + 1), meta[key], marker="o")
        a.set_title(f"{title}: InfoNCE loss")
        a.set_xlabel("epoch")
    fig.suptitle(f"trained through {meta['trained_through']}")
    fig.tight_layout()
    return fig
