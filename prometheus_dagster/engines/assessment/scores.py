"""``instrument_scores`` rows: expected return with the long-side fragility penalty,
cross-sectional score, confidence, signal label and alpha components.

* ``raw_expected_return``: the model's forecast of the forward excess return.
* ``fragility_penalty``: for a long candidate (raw > 0), weight x fragility measure
  (soft_target_score x tail_probability, both in [0, 1]; 0 when unknown), capped at raw: a
  fragile name stops being a long candidate but the penalty alone never makes it a short
  one, and shorts keep the model's number. ``expected_return`` = raw - penalty.
* ``score``: (average rank - 1) / (n - 1) of expected_return among the date's names for the
  horizon (0.5 for a lone name); ``signal_label`` from the ``signals`` cut-offs.
* ``confidence`` = (2 Phi(|z|) - 1) x clip(OOS mean rank IC / full_ic, 0, 1), z the name's
  cross-sectional z-score of expected_return: how far from the crowd the forecast is, times
  how skilled the model proved out of sample (0 without OOS evidence)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import erf

from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.assessment.config import (
    SIGNAL_LABELS,
    AssessmentConfig,
    SignalConfig,
)
from prometheus_dagster.engines.assessment.model import BIAS, AssessmentModel
from prometheus_dagster.engines.assessment.schemas import INSTRUMENT_SCORES


def long_penalty(raw: np.ndarray, measure: np.ndarray, weight: float) -> np.ndarray:
    m = np.nan_to_num(np.clip(measure, 0.0, 1.0), nan=0.0)
    return np.where(raw > 0, np.minimum(weight * m, raw), 0.0)


def signal_labels(score: np.ndarray, signals: SignalConfig) -> np.ndarray:
    cuts = [signals.strong_sell, signals.sell, signals.hold, signals.buy]
    return np.asarray(SIGNAL_LABELS, dtype=object)[np.searchsorted(cuts, score, side="right")]


def cross_sectional_score(values: pd.Series, by: pd.Series) -> pd.Series:
    g = values.groupby(by)
    r = g.rank(method="average")
    n = g.transform("count")
    return ((r - 1) / (n - 1)).where(n > 1, 0.5)


def confidence(values: pd.Series, by: pd.Series, ic: float | None, full_ic: float
               ) -> np.ndarray:
    g = values.groupby(by)
    sd = g.transform(lambda s: s.std(ddof=0)).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd > 0, (values.to_numpy() - g.transform("mean").to_numpy()) / sd, 0.0)
    skill = 0.0 if ic is None or not math.isfinite(ic) else min(max(ic / full_ic, 0.0), 1.0)
    return erf(np.abs(z) / math.sqrt(2.0)) * skill


ModelOutputs = tuple[dict[int, np.ndarray], dict[int, pd.DataFrame]]


def model_outputs(features: pd.DataFrame, model: AssessmentModel) -> ModelOutputs:
    """(predictions, family contributions) per horizon of every row of ``features``: one
    predict call for all of its dates and names, shared by every strategy scored with it."""
    f = features.reset_index(drop=True)
    return model.predict(f), model.contributions(f)


def instrument_score_rows(features: pd.DataFrame, model: AssessmentModel, *, strategy_id: str,
                          market_id: str, config_id: str, model_id: str,
                          fragility_penalty: float | None = None,
                          config: AssessmentConfig | None = None,
                          outputs: ModelOutputs | None = None) -> pd.DataFrame:
    """One validated ``instrument_scores`` row per feature row and model horizon
    (``fragility_penalty``: the weight; default the config's; ``outputs``: the model's
    ``model_outputs`` of ``features`` when already computed). Scores and confidence are
    cross-sectional per date, so one call for many dates equals one call per date."""
    cfg = config or AssessmentConfig()
    weight = cfg.fragility_penalty if fragility_penalty is None else float(fragility_penalty)
    if features.empty:
        return validate_frame(INSTRUMENT_SCORES, pd.DataFrame(
            columns=INSTRUMENT_SCORES.column_names))
    f = features.reset_index(drop=True)
    measure = (f["fragility_measure"].to_numpy(dtype=float) if "fragility_measure" in f
               else np.full(len(f), np.nan))
    preds, contrib = outputs if outputs is not None else model_outputs(f, model)
    families = [*model.families, BIAS]
    frames = []
    for h, raw in preds.items():
        pen = long_penalty(raw, measure, weight)
        exp = pd.Series(raw - pen)
        score = cross_sectional_score(exp, f["as_of_date"]).to_numpy(dtype=float)
        c = contrib[h][families].to_numpy()
        frames.append(pd.DataFrame({
            "market_id": market_id, "strategy_id": strategy_id, "as_of_date": f["as_of_date"],
            "instrument_id": f["instrument_id"],
            "issuer_id": f["issuer_id"] if "issuer_id" in f else None, "horizon_days": h,
            "expected_return": exp.to_numpy(), "raw_expected_return": raw,
            "fragility_penalty": pen, "score": score,
            "confidence": confidence(exp, f["as_of_date"],
                                     model.horizons[h].oos.get("mean_rank_ic"),
                                     cfg.confidence.full_ic),
            "signal_label": signal_labels(score, cfg.signals),
            "alpha_components": [dict(zip(families, map(float, row), strict=True))
                                 for row in c],
            "model_id": model_id, "config_id": config_id,
            "notes": f["notes"] if "notes" in f else None}))
    out = pd.concat(frames, ignore_index=True).sort_values(
        ["as_of_date", "instrument_id", "horizon_days"], kind="stable", ignore_index=True)
    return validate_frame(INSTRUMENT_SCORES, out)
