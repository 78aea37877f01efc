"""Online assignment: each session's features -> the prototypes valid on that session (trained
strictly before it) -> raw label and posterior -> causal smoothing over the whole modelled
history -> confidence, next-regime probabilities, early-warning level, embedding."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from prometheus_dagster.engines.regime.config import RISK_OFF_LABELS, RISK_ON_LABELS, RegimeConfig
from prometheus_dagster.engines.regime.model import RegimeModel
from prometheus_dagster.engines.regime.smoothing import next_regime_probabilities, smooth_labels
from prometheus_dagster.engines.regime.warnings import early_warnings

DRIVERS = 3


def out_of_range_confidence(min_distance: np.ndarray, dims: int) -> np.ndarray:
    """Confidence of a label a day takes from its own characteristics because no prototype
    describes it: the probability that a day of the nearest prototype lies closer than this
    one (chi-square with ``dims`` degrees of freedom). Beyond the outlier distance it is at
    least ``outlier_probability``: the farther a crash from anything seen, the surer."""
    from scipy.stats import chi2

    return chi2.cdf(np.square(min_distance), dims)


def assign_regimes(region: str, features: pd.DataFrame,
                   models: Mapping[pd.Timestamp, tuple[str, RegimeModel] | None],
                   config: RegimeConfig, config_id: str) -> pd.DataFrame:
    """``regimes`` rows for every session of ``features`` that has a model (``models`` maps a
    session to (model row id, model) or None). Sessions are processed in date order from the
    first modelled one, so the smoothed label of a session depends only on sessions up to it."""
    chosen = {d: m for d in features.index if (m := models.get(d)) is not None}
    dates = list(chosen)
    if not dates:
        return pd.DataFrame()
    feats = features.loc[dates]
    n = len(dates)
    raw = np.empty(n, dtype=object)
    info: list[dict] = [{} for _ in range(n)]
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(dates):
        groups.setdefault(chosen[d][0], []).append(i)
    for mid, idx in groups.items():
        model = chosen[dates[idx[0]]][1]
        sub = feats.iloc[idx]
        z, missing = model.standardise(sub)
        post, dist = model.cluster_posterior(z)
        soft, _ = model.cluster_posterior(z, model.temperature)
        lab_post = model.label_posterior(post)
        lab_soft = model.label_posterior(soft)
        emb = model.embedding(z)
        best = np.argmax(lab_post, axis=1)
        nearest = np.min(dist, axis=1)
        far = nearest > model.outlier_distance
        far_confidence = out_of_range_confidence(nearest, z.shape[1])
        own = model.label_days(sub)
        # far from every prototype and named otherwise by its own characteristics (a crash
        # after calm years): the day's own label; far but alike (a very calm day): the model's
        outside = np.array([bool(far[j]) and own[j] != model.labels[best[j]]
                            for j in range(len(idx))], dtype=bool)
        # a correction is risk-off even when its prototype is calm (a quiet, shallow sell-off)
        correction = model.correction_days(sub) & np.array(
            [model.labels[best[j]] not in RISK_OFF_LABELS for j in range(len(idx))], dtype=bool)
        for j, i in enumerate(idx):
            raw[i] = own[j] if outside[j] or correction[j] else model.labels[best[j]]
            order = np.argsort(-np.abs(z[j]), kind="stable")[:DRIVERS]
            by_label: dict[str, float] = {}
            for k, lab in enumerate(model.cluster_labels):
                by_label[lab] = min(by_label.get(lab, np.inf), float(dist[j, k]))
            info[i] = {
                "own_risk_off": own[j] in RISK_OFF_LABELS,
                "model_id": mid, "model": model, "soft": lab_soft[j], "embedding": emb[j],
                "far_confidence": float(far_confidence[j]),
                "cluster": int(np.argmax(post[j])), "out_of_range": bool(outside[j]),
                "correction": bool(correction[j]),
                "far_from_prototypes": bool(far[j]),
                "distances": {k: round(v, 4) for k, v in by_label.items()},
                "drivers": {model.features[k]: round(float(z[j, k]), 3) for k in order},
                "missing": [model.features[k] for k in np.flatnonzero(missing[j])],
                "label_probabilities": {lab: round(float(lab_soft[j, k]), 4)
                                        for k, lab in enumerate(model.labels)},
            }
    # stress beyond every prototype: switch without waiting for confirmation; a risk-off
    # prototype on a day whose own stress level is risk-off too: the same, unless the current
    # regime is calm (a one-day spike in a calm market still needs confirming)
    urgent = [bool(it["out_of_range"]) and raw[i] in RISK_OFF_LABELS
              for i, it in enumerate(info)]
    prompt = [raw[i] in RISK_OFF_LABELS and it["own_risk_off"] for i, it in enumerate(info)]
    smoothed = smooth_labels(list(raw), config.min_regime_duration_days,
                             config.confirmation_days, urgent, prompt, ("RISK_ON_LOW_VOL",),
                             RISK_ON_LABELS, config.risk_on_confirmation)
    warn = early_warnings(features, config.early_warning).loc[dates]
    rows = []
    for i, d in enumerate(dates):
        it = info[i]
        day_model: RegimeModel = it["model"]
        label = smoothed[i]
        tomorrow: dict[str, float] = {}
        after: dict[str, float] = {}
        if it["out_of_range"] and label == raw[i]:  # no prototype describes the day
            confidence = it["far_confidence"]
            expected = float("nan")
            if label is not None and label in day_model.labels:
                tomorrow, after, expected = next_regime_probabilities(
                    np.asarray(day_model.transition), day_model.labels, label)
        elif label is not None and label in day_model.labels:
            confidence = float(it["soft"][day_model.labels.index(label)])
            tomorrow, after, expected = next_regime_probabilities(
                np.asarray(day_model.transition), day_model.labels, label)
        else:  # a label the version of this date cannot produce (held from an older one)
            confidence, tomorrow, after, expected = 0.0, {}, {}, float("nan")
        w = warn.iloc[i]
        rows.append({
            "market_id": region, "as_of_date": d, "regime_label": label,
            "confidence": round(confidence, 6), "raw_label": raw[i],
            "label_probabilities": it["label_probabilities"],
            "next_day_probabilities": {k: round(v, 4) for k, v in tomorrow.items()},
            "next_regime_probabilities": {k: round(v, 4) for k, v in after.items()},
            "expected_remaining_days": expected if np.isfinite(expected) else None,
            "alert_level": w["alert_level"], "warning_count": int(w["warning_count"]),
            "warning_domains": w["warning_domains"], "warnings": w["warnings"],
            "regime_embedding": it["embedding"].astype(np.float32),
            "diagnostics": {"cluster": it["cluster"], "out_of_range": it["out_of_range"],
                            "own_risk_off": bool(it["own_risk_off"]),
                            "correction": it["correction"],
                            "distances": it["distances"],
                            "drivers": it["drivers"], "missing_features": it["missing"],
                            "features": {f: (None if pd.isna(v) else round(float(v), 6))
                                         for f, v in feats.iloc[i].items()}},
            "model_id": it["model_id"], "config_id": config_id,
        })
    return pd.DataFrame(rows)


def regime_path_summary(regimes: pd.DataFrame) -> dict[str, float]:
    """Metrics of a label path: share of sessions per label, number of switches, mean
    confidence."""
    if regimes.empty:
        return {}
    labels = regimes.sort_values("as_of_date")["regime_label"].astype(str)
    out = {f"share_{k}": float(v) for k, v in labels.value_counts(normalize=True).items()}
    out["switches"] = float((labels != labels.shift()).sum() - 1)
    out["mean_confidence"] = float(regimes["confidence"].mean())
    return out
