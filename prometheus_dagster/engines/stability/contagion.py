"""Stress exposures learned from the trailing contagion window of each scored session.

Stress days are the sessions of the window whose stress series (the market index, or a
sector's equal-weighted return without the scored name) is at or below its
``stress_quantile`` quantile within the window. Slopes are fitted through the origin over
stress days only: they measure how far a name falls when the market (or its sector) falls
hard, which an intercept fitted on a one-sided tail sample would blur into noise.
Co-movement is measured about zero too (no demeaning), so it says whether names fall together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prometheus_dagster.engines.stability.config import StabilityConfig


def column_quantile(x: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each column of ``x`` (rows: observations) over its non-NaN values,
    linearly interpolated as ``numpy.quantile``; NaN for an empty column. A 1-d ``x`` is one
    column."""
    a = np.sort(np.asarray(x, dtype=float), axis=0)  # NaN sorts last
    n = (~np.isnan(a)).sum(axis=0)
    last = np.maximum(n - 1, 0)
    pos = q * last
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, last)
    lo_v = np.take_along_axis(a, np.expand_dims(lo, 0), axis=0)[0]
    hi_v = np.take_along_axis(a, np.expand_dims(hi, 0), axis=0)[0]
    out = lo_v + (pos - lo) * (hi_v - lo_v)
    return np.where(n > 0, out, np.nan)


def stress_days(x: np.ndarray, q: float) -> np.ndarray:
    """True where ``x`` is at or below its (column's) ``q`` quantile; NaN is never stress."""
    with np.errstate(invalid="ignore"):
        return np.asarray(x) <= column_quantile(x, q)


def origin_slope(y: np.ndarray, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``y``: sum(x y) / sum(x^2) over the rows where ``mask`` holds and both
    are present, and how many rows that was. ``x`` and ``mask`` are one column or one per
    column of ``y``."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 1:
        m = m[:, None]
    valid = m & ~np.isnan(y) & ~np.isnan(x)
    xf = np.where(valid, x, 0.0)
    num = (xf * np.where(valid, y, 0.0)).sum(axis=0)
    den = (xf * xf).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(den > 0, num / den, np.nan)
    return beta, valid.sum(axis=0)


def average_comovement(y: np.ndarray, rows: np.ndarray, min_obs: int) -> tuple[float, int]:
    """Average pairwise correlation about zero (cosine similarity) of the columns of ``y``
    over ``rows``, among the columns with at least ``min_obs`` values there (missing values
    count as 0), and how many columns entered; NaN with fewer than two."""
    z = np.asarray(y, dtype=float)[np.asarray(rows, dtype=bool)]
    valid = ~np.isnan(z)
    z = np.where(valid, z, 0.0)[:, valid.sum(axis=0) >= min_obs]
    norms = np.sqrt((z * z).sum(axis=0))
    z = z[:, norms > 0] / norms[norms > 0]
    m = z.shape[1]
    if m < 2:
        return float("nan"), m
    s = z.sum(axis=1)
    return float((s @ s - m) / (m * (m - 1))), m


def _group_sums(a: np.ndarray, group_of: np.ndarray, groups: int) -> np.ndarray:
    # row sums rather than a matrix product, whose summation order may depend on the number
    # of rows: a session's value must not depend on how much history was passed
    out = np.zeros((a.shape[0], groups))
    for g in range(groups):
        out[:, g] = a[:, group_of == g].sum(axis=1)
    return out


@dataclass(frozen=True)
class StressExposure:
    """Per scored session (rows, in the order of ``positions``)."""

    market_beta: np.ndarray  # (P, N) slope on the index over its stress days
    market_days: np.ndarray  # (P, N) index stress days with the instrument's return
    sector_beta: np.ndarray  # (P, N) slope on the sector without it, over that series' stress
    sector_days: np.ndarray  # (P, N)
    basket_beta: np.ndarray  # (P, K) each basket's slope on the index over its stress days
    basket_days: np.ndarray  # (P, K)
    index_days: np.ndarray  # (P,) index returns in the window
    index_stress_days: np.ndarray  # (P,)
    rho_stress: np.ndarray  # (P,) members' co-movement on index stress days
    rho_all: np.ndarray  # (P,) members' co-movement on all days of the window
    comovement_members: np.ndarray  # (P,)


def stress_exposure(ret: np.ndarray, index: np.ndarray, sector_of: np.ndarray,
                    baskets: np.ndarray, members: np.ndarray, positions: np.ndarray,
                    config: StabilityConfig) -> StressExposure:
    """Stress betas and co-movement for each session in ``positions`` (rows of ``ret``).

    ``ret`` (T, N) returns, ``index`` (T,) index returns, ``sector_of`` (N,) the sector
    number of each column (-1: none), ``baskets`` (T, K) basket returns, ``members`` (T, N)
    the columns that enter the market's co-movement on each session. Slopes with fewer than
    ``min_stress_days`` stress days are NaN (their day counts are kept)."""
    ret = np.asarray(ret, dtype=float)
    n = ret.shape[1]
    present = ~np.isnan(ret)
    filled = np.where(present, ret, 0.0)
    sectors = int(sector_of.max()) + 1 if len(sector_of) and sector_of.max() >= 0 else 0
    has_sector = np.flatnonzero(sector_of >= 0)
    sec_sum = _group_sums(filled, sector_of, sectors)
    sec_cnt = _group_sums(present.astype(float), sector_of, sectors)
    q, w_len, k = config.stress_quantile, config.contagion_window, baskets.shape[1]
    p = len(positions)
    out = {name: np.full(shape, np.nan) for name, shape in (
        ("market_beta", (p, n)), ("market_days", (p, n)), ("sector_beta", (p, n)),
        ("sector_days", (p, n)), ("basket_beta", (p, k)), ("basket_days", (p, k)),
        ("index_days", (p,)), ("index_stress_days", (p,)), ("rho_stress", (p,)), ("rho_all", (p,)),
        ("comovement_members", (p,)))}
    for row, t in enumerate(positions):
        window = slice(max(0, t - w_len + 1), t + 1)
        x = index[window]
        stress = stress_days(x, q)
        y = ret[window]
        out["index_days"][row] = np.count_nonzero(~np.isnan(x))
        out["index_stress_days"][row] = np.count_nonzero(stress)
        out["market_beta"][row], out["market_days"][row] = origin_slope(y, x, stress)
        out["basket_beta"][row], out["basket_days"][row] = origin_slope(baskets[window], x,
                                                                        stress)
        if len(has_sector):
            own = present[window][:, has_sector]
            sec = sector_of[has_sector]
            with np.errstate(invalid="ignore", divide="ignore"):
                peers = ((sec_sum[window][:, sec] - filled[window][:, has_sector])
                         / (sec_cnt[window][:, sec] - own))
            peers[~np.isfinite(peers)] = np.nan
            beta, days = origin_slope(y[:, has_sector], peers, stress_days(peers, q))
            out["sector_beta"][row, has_sector] = beta
            out["sector_days"][row, has_sector] = days
        cols = np.asarray(members[t], dtype=bool)
        out["rho_stress"][row], m = average_comovement(y[:, cols], stress,
                                                       config.min_stress_days)
        out["rho_all"][row], _ = average_comovement(y[:, cols], np.ones(len(x), bool),
                                                    config.min_history_sessions)
        out["comovement_members"][row] = m
    for beta_col, days_col in (("market_beta", "market_days"), ("sector_beta", "sector_days"),
                               ("basket_beta", "basket_days")):
        with np.errstate(invalid="ignore"):
            out[beta_col] = np.where(out[days_col] >= config.min_stress_days, out[beta_col],
                                     np.nan)
    return StressExposure(**out)
