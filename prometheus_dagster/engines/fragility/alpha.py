"""``fragility_alpha`` rows: components, SoftTargetScore, the model's tail probability and
FragilityAlpha per horizon, FragilityClass and position templates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_dagster.engines.fragility.classes import fragility_classes, position_templates
from prometheus_dagster.engines.fragility.config import COMPONENTS, FragilityConfig
from prometheus_dagster.engines.fragility.model import FragilityModel


def fragility_alpha_rows(components: pd.DataFrame, models: dict[pd.Timestamp, tuple[str,
                         FragilityModel]], config: FragilityConfig,
                         config_id: str) -> pd.DataFrame:
    """One row per entity, date and horizon. ``models`` maps a date to (model_id, model)
    trained strictly before it; issuers on dates with a model get a tail probability and
    FragilityAlpha, everything else gets the components, score and class alone."""
    if components.empty:
        return pd.DataFrame()
    comp = components.reset_index(drop=True)
    prob = {h: np.full(len(comp), np.nan) for h in config.horizons}
    alpha = {h: np.full(len(comp), np.nan) for h in config.horizons}
    model_ids = np.full(len(comp), None, dtype=object)
    issuers = (comp["entity_type"] == "ISSUER").to_numpy()
    by_model: dict[str, list[int]] = {}
    for k, d in enumerate(comp["as_of_date"]):
        entry = models.get(pd.Timestamp(d))
        if entry is not None and issuers[k]:
            by_model.setdefault(entry[0], []).append(k)
    for mid, rows in by_model.items():
        model = models[pd.Timestamp(comp.loc[rows[0], "as_of_date"])][1]
        scored = model.predict(comp.loc[rows])
        for h in config.horizons:
            if h in scored:
                prob[h][rows], alpha[h][rows] = scored[h]
        model_ids[rows] = mid
    features = _feature_records(comp, [f for f in config.model.features if f in comp])
    score = comp["soft_target_score"].astype(float).to_numpy()
    soft = comp["soft_target_class"].astype(str).to_numpy()
    parts = {c: comp[c].astype(float).to_numpy() for c in COMPONENTS}
    instruments = comp["instrument_id"].tolist() if "instrument_id" in comp \
        else [None] * len(comp)
    etypes = comp["entity_type"].astype(str).tolist()
    eids = comp["entity_id"].astype(str).tolist()
    frames = []
    for h in config.horizons:
        classes = fragility_classes(score, soft, prob[h], config)
        templates: list[list[dict]] = [[] for _ in range(len(comp))]
        for k in np.flatnonzero(classes != "NONE").tolist():  # NONE has no templates
            instrument = instruments[k]
            templates[k] = position_templates(
                etypes[k], eids[k], instrument if isinstance(instrument, str) else None,
                str(classes[k]), float(score[k]), {c: float(parts[c][k]) for c in COMPONENTS},
                config)
        classes = classes.tolist()
        frames.append(pd.DataFrame({
            "market_id": comp["market_id"], "entity_type": comp["entity_type"],
            "entity_id": comp["entity_id"],
            "instrument_id": comp["instrument_id"] if "instrument_id" in comp else None,
            "as_of_date": comp["as_of_date"], "horizon_days": h,
            **{c: comp[c].astype(float) for c in COMPONENTS},
            "soft_target_score": comp["soft_target_score"].astype(float),
            "soft_target_class": comp["soft_target_class"],
            "tail_probability": prob[h], "fragility_alpha": alpha[h],
            "fragility_class": classes, "position_templates": templates,
            "features": features, "model_id": model_ids, "config_id": config_id}))
    return pd.concat(frames, ignore_index=True).sort_values(
        ["as_of_date", "entity_type", "entity_id", "horizon_days"], ignore_index=True)


def _feature_records(comp: pd.DataFrame, features: list[str]) -> list[dict]:
    """Per row, feature -> value (None where missing or not a finite number)."""
    columns = []
    for f in features:
        x = pd.to_numeric(comp[f], errors="coerce").to_numpy(dtype=float)
        values: list[float | None] = x.tolist()
        for k in np.flatnonzero(~np.isfinite(x)):
            values[k] = None
        columns.append(values)
    return [dict(zip(features, row, strict=True)) for row in zip(*columns, strict=True)] \
        if columns else [{} for _ in range(len(comp))]
