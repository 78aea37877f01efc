"""The fragility model: per horizon, a LightGBM classifier of the tail outcome on the
fragility features, fitted only on dates whose whole horizon ended before the training cut.
FragilityAlpha = expected downside over the horizon = P(tail) x mean worst loss of the tail
cases + (1 - P(tail)) x that of the others (both from the training data), a return <= 0.

The model is saved as JSON (LightGBM's text format inside), deterministic for a seed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import PrometheusError
from prometheus_dagster.engines.fragility.components import feature_matrix
from prometheus_dagster.engines.fragility.config import FragilityConfig


class FragilityTrainingError(PrometheusError):
    """Too little history (rows or tail outcomes) to fit a fragility model."""


@dataclass
class HorizonModel:
    horizon: int
    booster: str                 # LightGBM model text
    tail_mean_worst: float
    other_mean_worst: float
    base_rate: float
    rows: int
    positives: int
    _booster: Any = field(default=None, repr=False, compare=False)  # lightgbm.Booster

    def probability(self, x: np.ndarray) -> np.ndarray:
        import lightgbm as lgb

        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.booster)
        if not len(x):
            return np.empty(0)
        return np.asarray(self._booster.predict(x, num_threads=1), dtype=float)

    def expected_downside(self, p: np.ndarray) -> np.ndarray:
        return p * self.tail_mean_worst + (1.0 - p) * self.other_mean_worst


@dataclass
class FragilityModel:
    model_id: str
    features: tuple[str, ...]
    trained_through: str
    first_training_date: str
    horizons: dict[int, HorizonModel]

    def predict(self, components: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """horizon -> (tail probability, FragilityAlpha) for each row; rows are scored one by
        one by the trees, so a row's output never depends on the batch."""
        x = feature_matrix(components, self.features)
        out = {}
        for h, m in self.horizons.items():
            p = m.probability(x)
            out[h] = (p, m.expected_downside(p))
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        body = {"model_id": self.model_id, "features": list(self.features),
                "trained_through": self.trained_through,
                "first_training_date": self.first_training_date,
                "horizons": {str(h): {k: getattr(m, k) for k in (
                    "horizon", "booster", "tail_mean_worst", "other_mean_worst", "base_rate",
                    "rows", "positives")} for h, m in self.horizons.items()}}
        path.write_text(json.dumps(body))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FragilityModel:
        body = json.loads(Path(path).read_text())
        return cls(body["model_id"], tuple(body["features"]), body["trained_through"],
                   body["first_training_date"],
                   {int(h): HorizonModel(**m) for h, m in body["horizons"].items()})


def training_frame(components: pd.DataFrame, outcomes: dict[int, pd.DataFrame],
                   cut: pd.Timestamp) -> dict[int, pd.DataFrame]:
    """horizon -> issuer component rows joined with their outcome, keeping only dates whose
    horizon ended on or before ``cut`` (the outcomes frames say which dates those are: they
    hold a row only when the horizon's last session is in the data)."""
    issuers = components[components["entity_type"] == "ISSUER"]
    out = {}
    for h, o in outcomes.items():
        o = o[pd.to_datetime(o["as_of_date"]) <= cut]
        out[h] = issuers.merge(o, on=["instrument_id", "as_of_date"], how="inner")
    return out


def fit_fragility_model(components: pd.DataFrame, outcomes: dict[int, pd.DataFrame],
                        cut: pd.Timestamp, config: FragilityConfig) -> FragilityModel:
    """Fit one classifier per horizon on issuer rows dated <= ``cut`` with known outcomes."""
    import lightgbm as lgb

    mc, rc = config.model, config.refit
    frames = training_frame(components, outcomes, cut)
    horizons, first = {}, None
    for h in config.horizons:
        df = frames.get(h, pd.DataFrame())
        if len(df) and mc.sample_every > 1:
            dates = np.sort(df["as_of_date"].unique())[::mc.sample_every]
            df = df[df["as_of_date"].isin(dates)]
        positives = int(df["tail_event"].sum()) if len(df) else 0
        if len(df) < rc.min_training_rows or positives < rc.min_positive:
            raise FragilityTrainingError(
                f"horizon {h}: {len(df)} issuer-days with a known outcome by {cut.date()} and "
                f"{positives} tail outcomes; need {rc.min_training_rows} and "
                f"{rc.min_positive} (refit.min_training_rows / refit.min_positive)")
        df = df.sort_values(["as_of_date", "entity_id"], kind="mergesort")
        y = df["tail_event"].astype(int).to_numpy()
        params = {"objective": "binary", "learning_rate": mc.learning_rate,
                  "num_leaves": mc.num_leaves, "min_child_samples": mc.min_child_samples,
                  "subsample": mc.subsample, "subsample_freq": 1,
                  "colsample_bytree": mc.colsample_bytree, "seed": mc.seed,
                  "deterministic": True, "num_threads": 1, "verbose": -1,
                  "force_row_wise": True}
        booster = lgb.train(params, lgb.Dataset(feature_matrix(df, mc.features), label=y,
                                                feature_name=list(mc.features)),
                            num_boost_round=mc.n_estimators)
        worst = df["forward_worst"].astype(float).to_numpy()
        horizons[h] = HorizonModel(h, booster.model_to_string(),
                                   float(worst[y == 1].mean()), float(worst[y == 0].mean()),
                                   float(y.mean()), int(len(y)), positives)
        d0 = pd.Timestamp(df["as_of_date"].min())
        first = d0 if first is None else min(first, d0)
    if first is None:
        raise FragilityTrainingError("no horizons configured: there is no model to fit")
    return FragilityModel(mc.model_id, tuple(mc.features), str(pd.Timestamp(cut).date()),
                          str(first.date()), horizons)
