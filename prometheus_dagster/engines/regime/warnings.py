"""Early-warning layer: each leading indicator's percentile in its own trailing history; a value
beyond its threshold is a warning; warnings counted across domains give the alert level."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from prometheus_dagster.engines.regime.config import ALERT_LEVELS, EarlyWarning

_CHUNK = 2048


def trailing_percentile(x: np.ndarray, history: int, min_history: int) -> np.ndarray:
    """Share of the last ``history`` values (the current one included) at or below each value;
    NaN with fewer than ``min_history`` values or a missing value."""
    n = len(x)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    padded = np.concatenate([np.full(history - 1, np.nan), x])
    view = sliding_window_view(padded, history)
    for i in range(0, n, _CHUNK):
        w = view[i:i + _CHUNK]
        cur = x[i:i + _CHUNK]
        ok = ~np.isnan(w)
        cnt = ok.sum(axis=1)
        below = np.sum(ok & (w <= cur[:, None]), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = below / cnt
        out[i:i + _CHUNK] = np.where((cnt >= min_history) & ~np.isnan(cur), pct, np.nan)
    return out


def alert_level(count: int, domains: int, cfg: EarlyWarning) -> str:
    """GREEN / YELLOW / ORANGE / RED from the warning count, each level needing warnings in
    enough domains (else it drops one level until it does)."""
    lv = cfg.levels
    level = 0
    if count >= lv.red:
        level = 3
    elif count >= lv.orange:
        level = 2
    elif count >= lv.yellow:
        level = 1
    need = {1: lv.yellow_min_domains, 2: lv.orange_min_domains, 3: lv.red_min_domains}
    while level > 0 and domains < need[level]:
        level -= 1
    return ALERT_LEVELS[level]


def early_warnings(features: pd.DataFrame, cfg: EarlyWarning) -> pd.DataFrame:
    """Per date: alert_level, warning_count, warning_domains (domain -> count), warnings
    (indicator -> percentile) and the indicators that could not be evaluated."""
    pcts: dict[str, np.ndarray] = {}
    unavailable = []
    for ind in cfg.indicators:
        if ind.feature not in features.columns:
            unavailable.append(ind.feature)
            continue
        pcts[ind.feature] = trailing_percentile(features[ind.feature].to_numpy(dtype=float),
                                                cfg.history_sessions, cfg.min_history_sessions)
    rows = []
    for t in range(len(features)):
        warns: dict[str, float] = {}
        domains: dict[str, int] = {}
        for ind in cfg.indicators:
            p = pcts.get(ind.feature)
            if p is None or np.isnan(p[t]):
                continue
            hit = p[t] >= ind.percentile if ind.direction == "high" else p[t] <= ind.percentile
            if hit:
                warns[ind.feature] = round(float(p[t]), 4)
                domains[ind.domain] = domains.get(ind.domain, 0) + 1
        rows.append({"alert_level": alert_level(len(warns), len(domains), cfg),
                     "warning_count": len(warns), "warning_domains": domains,
                     "warnings": warns})
    out = pd.DataFrame(rows, index=features.index)
    out.attrs["unavailable_indicators"] = unavailable
    return out
