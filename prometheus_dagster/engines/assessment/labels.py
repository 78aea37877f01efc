"""Forward-return labels and the model's training target.

For an instrument with a return row on session D and horizon h, ``forward_return`` compounds
its one-session returns of sessions D+1 .. D+h (a return spanning missing rows covers them; a
name delisted within the horizon keeps the returns it printed, its crash included) and
``excess_return`` subtracts the equal-weighted mean forward return of the date's labelled
names. ``label_end_date`` is session D+h; a label exists only when that session is in the
data. Labels look ahead by construction: they are for training and evaluation only, and the
model fit purges them by ``label_end_date``."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.special import ndtri

from prometheus_dagster.engines.assessment.config import LabelSettings
from prometheus_dagster.engines.assessment.inputs import clean_table
from prometheus_dagster.engines.assessment.panel import wide

LABEL_COLUMNS = ["instrument_id", "as_of_date", "horizon_days", "label_end_date",
                 "forward_return", "excess_return"]


def forward_labels(returns: pd.DataFrame, horizons: Iterable[int],
                   dates: Iterable[object] | None = None,
                   instruments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Labels (``LABEL_COLUMNS``) for ``dates`` (every session when None); with
    ``instruments``, only EQUITY names count (in the rows and the cross-sectional mean)."""
    r = clean_table("returns", returns)
    if instruments is not None:
        inst = clean_table("instruments", instruments)
        eq = inst.loc[inst["asset_class"].astype(str).str.upper() == "EQUITY", "instrument_id"]
        r = r[r["instrument_id"].isin(set(eq))]
    sessions = pd.DatetimeIndex(np.unique(r["date"].to_numpy()))
    names = pd.Index(sorted(r["instrument_id"].unique()))
    ret = wide(r, "ret_1d", sessions, names)
    present = ~np.isnan(wide(r.assign(one=1.0), "one", sessions, names))
    if dates is None:
        t_all = np.arange(len(sessions))
    else:
        want = pd.DatetimeIndex(sorted({pd.Timestamp(d).normalize() for d in dates}))
        t_all = sessions.get_indexer(want)
        t_all = t_all[t_all >= 0]
    parts = []
    for h in horizons:
        t_idx = t_all[t_all + h < len(sessions)]
        acc = np.ones((len(t_idx), len(names)))
        count = np.zeros_like(acc)
        for k in range(1, h + 1):
            x = ret[t_idx + k]
            ok = ~np.isnan(x)
            acc = np.where(ok, acc * (1.0 + np.where(ok, x, 0.0)), acc)
            count += ok
        fwd = np.where(present[t_idx] & (count > 0), acc - 1.0, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # dates without any label
            mean = np.nanmean(fwd, axis=1, keepdims=True)
        di, ni = np.nonzero(~np.isnan(fwd))
        parts.append(pd.DataFrame({
            "instrument_id": names.to_numpy()[ni], "as_of_date": sessions[t_idx].to_numpy()[di],
            "horizon_days": h, "label_end_date": sessions[t_idx + h].to_numpy()[di],
            "forward_return": fwd[di, ni], "excess_return": (fwd - mean)[di, ni]}))
    if not parts:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["horizon_days"] = out["horizon_days"].astype(int)
    return out.sort_values(["horizon_days", "as_of_date", "instrument_id"],
                           ignore_index=True)[LABEL_COLUMNS]


def _winsorized(labels: pd.DataFrame, q: float) -> pd.Series:
    x = labels["excess_return"].astype(float)
    if q <= 0 or x.empty:
        return x
    by = labels["as_of_date"]
    g = x.groupby(by)
    lo = by.map(g.quantile(q)).to_numpy(dtype=float)
    hi = by.map(g.quantile(1 - q)).to_numpy(dtype=float)
    return pd.Series(np.clip(x.to_numpy(), lo, hi), index=x.index)


def training_target(labels: pd.DataFrame, settings: LabelSettings) -> pd.Series:
    """The model's regression target (``LabelSettings``): per-date normal scores of the
    excess return, ndtri((rank - 0.5) / n), or the winsorised excess return."""
    if settings.target == "excess":
        return _winsorized(labels, settings.winsorize)
    x = labels["excess_return"].astype(float)
    g = x.groupby(labels["as_of_date"])
    return pd.Series(ndtri((g.rank().to_numpy() - 0.5) / g.transform("count").to_numpy()),
                     index=x.index)


def return_scale(labels: pd.DataFrame, settings: LabelSettings) -> float:
    """Return units per unit of target: 1 for ``excess``; for ``rank_gauss`` the median over
    dates of the cross-sectional sd of the winsorised excess return."""
    if settings.target == "excess" or labels.empty:
        return 1.0
    sd = _winsorized(labels, settings.winsorize).groupby(labels["as_of_date"]).std(ddof=0)
    return float(np.nanmedian(sd.to_numpy())) if len(sd) else 1.0
