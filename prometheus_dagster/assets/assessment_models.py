"""The assessment combination model per market, refit on its cadence (``steps/assessment.py``
trains it on labels that ended before the refit partition): walk-forward out-of-sample metrics
logged in MLflow, the version registered with its last label date."""

import tempfile
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, asset

from prometheus_dagster.assets.common import register_config, train_refit_partitions
from prometheus_dagster.assets.lineage import refit_asset_args
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.engines.assessment import (
    AssessmentConfig,
    AssessmentModel,
    AssessmentTrainingError,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.assessment import (
    MODEL_ARTIFACT,
    MODEL_TYPE,
    MODELS_ASSET,
    registered_name,
    train_assessment_model,
    training_inputs,
)

GROUP = "assessment"


def assessment_training_asset(market_id: str, cfg: AssessmentConfig) -> AssetsDefinition:
    inputs = training_inputs()

    @asset(
        **refit_asset_args(market_id, MODELS_ASSET, inputs, cfg.refit.cadence,
                           cfg.refit.first_year, {"model_type": MODEL_TYPE,
                                                  "market_id": market_id}),
        group_name=GROUP,
        description=f"Assessment combination model of {market_id} ({cfg.refit.cadence} "
                    "refits): partition P learns forward excess returns (5 and 21 sessions) "
                    "whose horizon ended before P minus the embargo; walk-forward "
                    "out-of-sample rank IC and deciles logged in MLflow.",
    )
    def _models(context: AssetExecutionContext, warehouse: WarehouseResource,
                mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = load_engine_config("assessment")
        typed = loaded.typed(AssessmentConfig)
        config_id = register_config(wh, loaded)
        return train_refit_partitions(
            context, market_id, "assessment model",
            lambda valid_from: _train_one(context, wh, mlflow, market_id, valid_from, typed,
                                          config_id),
            AssessmentTrainingError,
            hint=f"; materialize {market_id}'s prices and features over more history")

    return _models


def oos_metrics(model: AssessmentModel) -> dict[str, float]:
    out: dict[str, float] = {}
    for h, m in model.oos_metrics.items():
        for k in ("mean_rank_ic", "ic_t_stat", "hit_rate", "decile_spearman", "n_dates"):
            v = m.get(k)
            # NaN (too little history for a fold) is logged too: absent would look like a bug
            out[f"h{h}_oos_{k}"] = float(v) if isinstance(v, int | float) else float("nan")
        for i, v in enumerate(m.get("decile_means") or []):
            out[f"h{h}_oos_decile_{i + 1}_mean"] = float(v)
    return out


def _train_one(context: AssetExecutionContext, wh, mlflow: MlflowTracking, market_id: str,
               valid_from: pd.Timestamp, cfg: AssessmentConfig, config_id: str) -> dict:
    model = train_assessment_model(wh, market_id, valid_from, cfg)
    name = registered_name(market_id, cfg)
    metrics = {**oos_metrics(model),
               **{f"h{h}_rows": float(m.rows) for h, m in model.horizons.items()}}
    with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                          params={"trained_through": model.trained_through,
                                  "valid_from": str(valid_from.date()),
                                  "first_training_date": model.first_training_date,
                                  "horizons": ",".join(map(str, cfg.horizons)),
                                  "embargo_sessions": cfg.walk_forward.embargo_sessions,
                                  "n_folds": cfg.walk_forward.n_folds,
                                  "features": ",".join(model.features),
                                  "families_left_out": ",".join(model.left_out) or "none"},
                          extra_tags={"refit_partition": str(valid_from.date())}) as run:
        run.log_metrics(metrics)
        run.log_dict({str(h): m for h, m in model.oos_metrics.items()}, "oos_metrics.json")
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifact(model.save(Path(tmp) / MODEL_ARTIFACT))
        source = run.artifact_uri(MODEL_ARTIFACT)
        version = mlflow.register_model_version(
            name, source, run.run_id, pd.Timestamp(model.trained_through),
            tags={"valid_from": str(valid_from.date()), "config_id": config_id})
        run.set_tags({f"registered:{name}": version})
    model_id = f"{name}/{version}"
    if model.left_out:
        context.log.warning(f"{market_id} assessment model {valid_from.date()}: families left "
                            f"out, {'; '.join(model.left_out.values())}")
    context.log.info(f"{market_id} assessment model {valid_from.date()}: {model_id}, "
                     + ", ".join(f"h{h}: {m.rows} rows, OOS rank IC "
                                 f"{model.oos_metrics[h].get('mean_rank_ic', float('nan')):.4f}"
                                 for h, m in model.horizons.items()))
    return {"model_id": model_id, "model_name": name, "version": version,
            "market_id": market_id, "model_type": MODEL_TYPE, "valid_from": valid_from,
            "trained_through": pd.Timestamp(model.trained_through), "artifact_uri": source,
            "training_spec": {"features": list(model.features),
                              "families": {k: list(v) for k, v in model.families.items()},
                              "families_left_out": model.left_out,
                              "horizons": list(cfg.horizons),
                              "first_training_date": model.first_training_date,
                              "embargo_sessions": cfg.walk_forward.embargo_sessions,
                              "cadence": cfg.refit.cadence},
            "metrics": metrics, "mlflow_run_id": run.run_id,
            "dagster_run_id": context.run.run_id, "config_id": config_id}
