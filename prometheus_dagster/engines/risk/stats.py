"""Weighted (co)variance estimators behind the risk model. Each works on one window's array,
so a date's estimate depends only on that window's data (bit-identical under backfill)."""

from __future__ import annotations

import numpy as np


def ewma_weights(n: int, half_life: float | None) -> np.ndarray:
    """Unnormalised weights of ``n`` sessions ordered oldest to newest: the newest weighs 1,
    a session ``half_life`` sessions older weighs 1/2. ``None``: equal weights."""
    if half_life is None:
        return np.ones(n)
    age = np.arange(n - 1, -1, -1, dtype=float)
    return np.power(0.5, age / half_life)


def weighted_covariance(x: np.ndarray, weights: np.ndarray, demean: bool = True) -> np.ndarray:
    """Weighted covariance of the rows of ``x`` (sessions x variables, no NaN).

    With ``demean`` the weighted mean is removed and the result is divided by
    ``1 - sum(w^2)`` (normalised weights), the reliability-weights correction that reduces to
    ``ddof=1`` for equal weights."""
    w = weights / weights.sum()
    if demean:
        x = x - w @ x
        scale = 1.0 - float(np.sum(w * w))
    else:
        scale = 1.0
    return (x * w[:, None]).T @ x / scale


def weighted_column_variance(x: np.ndarray, weights: np.ndarray,
                             demean: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Weighted variance of each column of ``x`` (sessions x columns) over its non-NaN rows,
    with the same correction as :func:`weighted_covariance`. Returns (variance, count);
    the variance is NaN where a column has fewer than two observations."""
    valid = ~np.isnan(x)
    count = valid.sum(axis=0)
    w = np.where(valid, weights[:, None], 0.0)
    total = w.sum(axis=0)
    enough = count >= 2
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    xz = np.where(valid, x, 0.0)
    if demean:
        xz = np.where(valid, xz - (w * xz).sum(axis=0), 0.0)
        scale = 1.0 - (w * w).sum(axis=0)
    else:
        scale = np.ones(x.shape[1])
    raw = (w * xz * xz).sum(axis=0)
    var = np.full(x.shape[1], np.nan)
    np.divide(raw, scale, out=var, where=enough & (scale > 0))
    return var, count


def shrink_to_diagonal(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """(1 - s) * cov + s * diag(cov): keeps the variances, pulls correlations toward 0."""
    return (1.0 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))


def floor_eigenvalues(cov: np.ndarray, floor_ratio: float) -> tuple[np.ndarray, bool]:
    """Symmetric PSD version of ``cov``: eigenvalues below ``floor_ratio`` times the mean
    eigenvalue are raised to it. Returns (matrix, whether it was changed); a matrix already
    above the floor is returned symmetrised but otherwise untouched."""
    sym = (cov + cov.T) / 2.0
    values, vectors = np.linalg.eigh(sym)
    floor = floor_ratio * max(float(values.mean()), 0.0)
    if values.min() >= floor and values.min() >= 0.0:
        return sym, False
    fixed = (vectors * np.maximum(values, floor)) @ vectors.T
    return (fixed + fixed.T) / 2.0, True
