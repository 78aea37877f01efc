"""The assessment combination model: per horizon, a LightGBM regressor of the forward excess
return on the family features, trained only on labels that ended at least
``embargo_sessions`` sessions before the date the model is valid from, with walk-forward
out-of-sample metrics of that same history. Saved as one JSON file (LightGBM's text format
inside); predictions are deterministic and row by row (a row's output never depends on the
batch)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.engines.assessment.config import AssessmentConfig
from prometheus_dagster.engines.assessment.evaluation import (
    evaluate_predictions,
    walk_forward_predictions,
)
from prometheus_dagster.engines.assessment.labels import return_scale
from prometheus_dagster.engines.assessment.training import (
    AssessmentTrainingError,
    check_size,
    labelled_rows,
    load_booster,
    matrix,
    session_grid,
    train_booster,
    training_cut,
)

BIAS = "bias"


@dataclass
class HorizonModel:
    horizon: int
    booster: str                  # LightGBM model text
    rows: int
    dates: int
    first_date: str
    last_label_end: str
    return_scale: float           # return units per unit of the training target
    oos: dict[str, Any]           # walk-forward metrics (evaluate_predictions)
    _booster: object = field(default=None, repr=False, compare=False)

    def _get(self):
        if self._booster is None:
            self._booster = load_booster(self.booster)
        return self._booster

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.empty(0)
        return self.return_scale * np.asarray(self._get().predict(x, num_threads=1),
                                              dtype=float)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows, features + 1): per-feature SHAP contributions, the bias last (in return
        units, like ``predict``)."""
        if not len(x):
            return np.empty((0, x.shape[1] + 1))
        return self.return_scale * np.asarray(
            self._get().predict(x, pred_contrib=True, num_threads=1), dtype=float)


@dataclass
class AssessmentModel:
    model_id: str
    features: tuple[str, ...]
    families: dict[str, tuple[str, ...]]
    valid_from: str
    trained_through: str          # last label end date used (any horizon)
    first_training_date: str
    horizons: dict[int, HorizonModel]
    # family -> why the model goes without it (no value of its features in the history)
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def oos_metrics(self) -> dict[int, dict[str, Any]]:
        return {h: m.oos for h, m in self.horizons.items()}

    def predict(self, features: pd.DataFrame) -> dict[int, np.ndarray]:
        """horizon -> expected excess return of each row of ``features``."""
        x = matrix(features, self.features)
        return {h: m.predict(x) for h, m in self.horizons.items()}

    def contributions(self, features: pd.DataFrame) -> dict[int, pd.DataFrame]:
        """horizon -> per-row contribution of each family (columns in family order, then
        ``bias``); a row's contributions sum to its prediction."""
        x = matrix(features, self.features)
        pos = {f: i for i, f in enumerate(self.features)}
        out = {}
        for h, m in self.horizons.items():
            c = m.contributions(x)
            cols = {fam: c[:, [pos[f] for f in names]].sum(axis=1)
                    for fam, names in self.families.items()}
            cols[BIAS] = c[:, -1]
            out[h] = pd.DataFrame(cols, index=features.index)
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        body = {"model_id": self.model_id, "features": list(self.features),
                "families": {k: list(v) for k, v in self.families.items()},
                "valid_from": self.valid_from, "trained_through": self.trained_through,
                "first_training_date": self.first_training_date,
                "left_out": self.left_out,
                "horizons": {str(h): {k: getattr(m, k) for k in (
                    "horizon", "booster", "rows", "dates", "first_date", "last_label_end",
                    "return_scale", "oos")} for h, m in self.horizons.items()}}
        path.write_text(json.dumps(_json_safe(body), allow_nan=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> AssessmentModel:
        body = json.loads(Path(path).read_text())
        horizons = {}
        for h, m in body["horizons"].items():
            m["oos"] = _json_restore(m["oos"])
            horizons[int(h)] = HorizonModel(**m)
        return cls(body["model_id"], tuple(body["features"]),
                   {k: tuple(v) for k, v in body["families"].items()}, body["valid_from"],
                   body["trained_through"], body["first_training_date"], horizons,
                   dict(body.get("left_out", {})))


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _json_restore(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_restore(x) for k, x in v.items()}
    if isinstance(v, list):
        return [float("nan") if x is None else _json_restore(x) for x in v]
    return float("nan") if v is None else v


def fit_assessment_model(features: pd.DataFrame, labels: pd.DataFrame, valid_from: object,
                         cfg: AssessmentConfig, *, sessions: Sequence[object] | None = None,
                         ) -> AssessmentModel:
    """One regressor per horizon on the rows whose label ended before the session
    ``walk_forward.embargo_sessions`` before ``valid_from`` (see ``training_cut``), plus the
    walk-forward metrics of that history. ``sessions`` is the calendar embargoes count in
    (default: the dates in ``features`` and ``labels``). A family none of whose features has a
    value in ``features`` (statements of a prices-only market) is left out of the model and
    named in ``left_out``. Raises AssessmentTrainingError when a horizon has fewer than
    ``refit.min_training_dates`` dates or ``min_training_rows`` rows, or no family has data."""
    left_out = families_without_data(features, cfg)
    if len(left_out) == len(cfg.families):
        raise AssessmentTrainingError(
            f"assessment model valid from {pd.Timestamp(valid_from).date()}: no family has a "
            f"feature value in the history ({'; '.join(left_out.values())})")
    cfg = cfg.model_copy(update={"families": {k: v for k, v in cfg.families.items()
                                              if k not in left_out}})
    names = list(cfg.feature_names)
    valid = pd.Timestamp(valid_from).normalize()
    grid = session_grid(features, labels, sessions)
    cut = training_cut(grid, valid, cfg.walk_forward.embargo_sessions)
    horizons: dict[int, HorizonModel] = {}
    for h in cfg.horizons:
        rows = labelled_rows(features, labels, h, names)
        rows = rows[rows["label_end_date"] < cut]
        check_size(rows, cfg, f"assessment model valid from {valid.date()}, horizon {h}")
        known = labels[(labels["horizon_days"] == h)
                       & (pd.to_datetime(labels["label_end_date"]) < cut)]
        preds = walk_forward_predictions(features, known, cfg, h, sessions=grid)
        horizons[h] = HorizonModel(
            h, train_booster(rows, names, cfg), int(len(rows)),
            int(rows["as_of_date"].nunique()), _day(rows["as_of_date"].min()),
            _day(rows["label_end_date"].max()), return_scale(rows, cfg.labels),
            evaluate_predictions(preds, min_names=cfg.walk_forward.min_names_per_date))
    if not horizons:
        raise AssessmentTrainingError("assessment config names no horizon")
    return AssessmentModel(
        cfg.model.model_id, tuple(names), {k: tuple(v) for k, v in cfg.families.items()},
        _day(valid), max(m.last_label_end for m in horizons.values()),
        min(m.first_date for m in horizons.values()), horizons, left_out)


def families_without_data(features: pd.DataFrame, cfg: AssessmentConfig) -> dict[str, str]:
    """family -> why it cannot be learnt: none of its features has a value in ``features``."""
    out = {}
    for family, names in cfg.families.items():
        present = [n for n in names if n in features.columns]
        if not present or not features[present].notna().to_numpy().any():
            out[family] = f"{family}: no value of {', '.join(names)} in the training history"
    return out


def _day(d: object) -> str:
    return str(pd.Timestamp(d).date())
