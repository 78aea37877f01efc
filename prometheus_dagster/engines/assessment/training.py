"""Training primitives shared by the model fit and the walk-forward validation: the purge and
embargo cut, the training rows and a deterministic LightGBM regressor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import PrometheusError
from prometheus_dagster.engines.assessment.config import AssessmentConfig, ModelSettings
from prometheus_dagster.engines.assessment.inputs import AssessmentInputError
from prometheus_dagster.engines.assessment.labels import training_target


class AssessmentTrainingError(PrometheusError):
    """Too little labelled history (dates or rows) to fit an assessment model."""


def session_grid(features: pd.DataFrame, labels: pd.DataFrame,
                 sessions: Sequence[object] | None = None) -> pd.DatetimeIndex:
    """The sessions embargoes are counted in: ``sessions`` when given, else every date that
    appears in the features and labels (as-of dates and label end dates)."""
    if sessions is not None:
        return pd.DatetimeIndex(sorted({pd.Timestamp(s).normalize() for s in sessions}))
    parts = [pd.to_datetime(features["as_of_date"]).to_numpy(),
             pd.to_datetime(labels["as_of_date"]).to_numpy(),
             pd.to_datetime(labels["label_end_date"]).to_numpy()]
    return pd.DatetimeIndex(np.unique(np.concatenate(parts)))


def training_cut(grid: pd.DatetimeIndex, valid_from: object, embargo: int) -> pd.Timestamp:
    """Labels used for a model valid from ``valid_from`` must end strictly before the returned
    date: the session ``embargo`` sessions before valid_from (valid_from itself when the
    embargo is 0). So every training label ended before valid_from (purge) and at least
    ``embargo`` sessions separate the last one from it."""
    v = pd.Timestamp(valid_from).normalize()
    if embargo <= 0:
        return v
    k = int(np.searchsorted(grid.values, v.to_datetime64(), side="left")) - embargo
    return pd.Timestamp(grid[k]) if k >= 0 else pd.Timestamp(grid[0]) if len(grid) else v


def labelled_rows(features: pd.DataFrame, labels: pd.DataFrame, horizon: int,
                  feature_names: Sequence[str]) -> pd.DataFrame:
    """Feature rows joined with their ``horizon`` label, sorted by date and instrument."""
    missing = [c for c in feature_names if c not in features.columns]
    if missing:
        raise AssessmentInputError(f"assessment: features lack column(s) {', '.join(missing)}")
    lab = labels[labels["horizon_days"] == horizon]
    lab = lab[["instrument_id", "as_of_date", "label_end_date", "forward_return",
               "excess_return"]]
    extra = [c for c in ("issuer_id", "regime_label") if c in features.columns]
    rows = features[["instrument_id", "as_of_date", *extra, *feature_names]].merge(
        lab, on=["instrument_id", "as_of_date"], how="inner")
    rows = rows[rows["excess_return"].notna()]
    return rows.sort_values(["as_of_date", "instrument_id"], kind="stable", ignore_index=True)


def matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise AssessmentInputError(f"assessment: features lack column(s) {', '.join(missing)}")
    return frame[list(feature_names)].to_numpy(dtype=float)


def check_size(rows: pd.DataFrame, cfg: AssessmentConfig, what: str) -> None:
    n_dates = int(rows["as_of_date"].nunique()) if len(rows) else 0
    rc = cfg.refit
    if n_dates < rc.min_training_dates or len(rows) < rc.min_training_rows:
        raise AssessmentTrainingError(
            f"{what}: {len(rows)} labelled rows on {n_dates} dates; need "
            f"{rc.min_training_rows} rows and {rc.min_training_dates} dates "
            "(refit.min_training_rows / refit.min_training_dates)")


def train_booster(rows: pd.DataFrame, feature_names: Sequence[str],
                  cfg: AssessmentConfig) -> str:
    """A LightGBM regressor of the training target (``LabelSettings``); its model text."""
    import lightgbm as lgb

    ms: ModelSettings = cfg.model
    y = training_target(rows, cfg.labels).to_numpy(dtype=float)
    params = {"objective": "regression", "learning_rate": ms.learning_rate,
              "num_leaves": ms.num_leaves, "min_child_samples": ms.min_child_samples,
              "subsample": ms.subsample, "subsample_freq": 1 if ms.subsample < 1 else 0,
              "colsample_bytree": ms.colsample_bytree, "reg_lambda": ms.reg_lambda,
              "seed": ms.seed, "deterministic": ms.deterministic, "num_threads": ms.n_jobs,
              "force_row_wise": True, "verbose": -1}
    monotone = [int(ms.monotone.get(f, 0)) for f in feature_names]
    if any(monotone):
        params["monotone_constraints"] = monotone
    data = lgb.Dataset(matrix(rows, feature_names), label=y, feature_name=list(feature_names),
                       free_raw_data=True)
    booster = lgb.train(params, data, num_boost_round=ms.n_estimators)
    return booster.model_to_string()


def load_booster(text: str):
    import lightgbm as lgb

    return lgb.Booster(model_str=text)
