"""Path arithmetic shared by the generators: block bootstrap indices, spreading a total move over
the horizon, the factor correlation-stress transform, bounds and path statistics.

Paths are float64 arrays of shape (num_paths, horizon, n_instruments) of simple step returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def circular_block_indices(rng: np.random.Generator, n_pool: int, num_paths: int,
                           horizon: int, block_min: int, block_max: int) -> np.ndarray:
    """(num_paths, horizon) row indices into a pool of ``n_pool`` consecutive rows: each path
    is a run of blocks, each block ``L ~ U{block_min..block_max}`` consecutive rows from a
    uniform start. Blocks wrap around the end of the pool (circular bootstrap), so every pool
    row is drawn with the same probability and the path moments match the pool's in
    expectation; a plain block bootstrap under-samples the rows near both ends."""
    n_blocks = -(-horizon // block_min)
    lengths = rng.integers(block_min, block_max + 1, size=(num_paths, n_blocks))
    starts = rng.integers(0, n_pool, size=(num_paths, n_blocks))
    begins = np.cumsum(lengths, axis=1) - lengths
    marks = np.zeros((num_paths, horizon), dtype=np.int64)
    rows, cols = np.nonzero(begins < horizon)
    marks[rows, begins[rows, cols]] = 1
    block = np.cumsum(marks, axis=1) - 1
    offset = np.arange(horizon)[None, :] - np.take_along_axis(begins, block, axis=1)
    return (np.take_along_axis(starts, block, axis=1) + offset) % n_pool


def spread_total(total: np.ndarray | float, horizon: int) -> np.ndarray:
    """The constant step return that compounds to ``total`` over ``horizon`` steps."""
    return np.power(1.0 + np.asarray(total, dtype=float), 1.0 / horizon) - 1.0


@dataclass(frozen=True)
class CorrelationStress:
    """Maps factor rows f to ``mu + ((f - mu) / sd) @ A * sd`` with
    ``A = S^(-1/2) C^(1/2)``, S the factors' correlation matrix in the pool and
    ``C = (1 - s) S + s 11'``: the correlation of the transformed pool rows is exactly C, each
    factor keeps its mean and volatility, and the average pairwise factor correlation rises
    from rho to ``rho + s (1 - rho)``. s = 1 leaves one common component. Factors without
    variance are left as they are; with fewer than two the transform is the identity."""

    mean: np.ndarray
    sd: np.ndarray
    matrix: np.ndarray
    active: np.ndarray
    avg_corr_before: float | None
    avg_corr_after: float | None

    def apply(self, rows: np.ndarray) -> np.ndarray:
        out = rows.copy()
        a = self.active
        z = (rows[..., a] - self.mean[a]) / self.sd[a]
        out[..., a] = self.mean[a] + (z @ self.matrix) * self.sd[a]
        return out


def correlation_stress(pool: np.ndarray, stress: float) -> CorrelationStress:
    """The stress transform for the (T, K) factor rows ``pool`` (see CorrelationStress)."""
    mean = pool.mean(axis=0)
    sd = pool.std(axis=0, ddof=1) if len(pool) > 1 else np.zeros(pool.shape[1])
    active = sd > 0
    k = int(active.sum())
    if k < 2:
        return CorrelationStress(mean, sd, np.eye(k), active, None, None)
    corr = np.corrcoef(pool[:, active], rowvar=False)
    target = (1.0 - stress) * corr + stress * np.ones((k, k))
    matrix = _sqrt_psd(corr, inverse=True) @ _sqrt_psd(target)
    return CorrelationStress(mean, sd, matrix, active, _avg_offdiag(corr), _avg_offdiag(target))


def _sqrt_psd(m: np.ndarray, inverse: bool = False) -> np.ndarray:
    vals, vecs = np.linalg.eigh(m)
    vals = np.clip(vals, 0.0, None)
    if inverse:
        # pseudo-inverse square root: directions without variance stay without variance
        keep = vals > 1e-12 * max(vals.max(), 1.0)
        vals = np.where(keep, 1.0 / np.sqrt(np.where(keep, vals, 1.0)), 0.0)
    else:
        vals = np.sqrt(vals)
    return (vecs * vals) @ vecs.T


def _avg_offdiag(m: np.ndarray) -> float:
    k = len(m)
    return float((m.sum() - np.trace(m)) / (k * (k - 1)))


def clip_to_bounds(paths: np.ndarray, low: float, high: float) -> tuple[np.ndarray, int]:
    """The paths clipped into [low, high] and how many step returns were moved."""
    clipped = int(np.count_nonzero((paths < low) | (paths > high)))
    return np.clip(paths, low, high), clipped


def cumulative_returns(paths: np.ndarray) -> np.ndarray:
    """(num_paths, n_instruments) step returns compounded over the horizon."""
    return np.prod(1.0 + paths, axis=1) - 1.0


def path_statistics(paths: np.ndarray) -> dict:
    """Statistics of step returns pooled over paths and steps: ``mean`` (of all step returns),
    ``vol`` (root mean of the instruments' variances, so a daily standard deviation) and
    ``avg_corr`` (mean pairwise correlation between instruments; None with fewer than two
    instruments that move). Applied to a (1, T, N) base window it gives the calibration."""
    x = np.asarray(paths, dtype=float).reshape(-1, paths.shape[-1])
    n = len(x)
    if n < 2:
        return {"mean": float(x.mean()), "vol": None, "avg_corr": None}
    var = x.var(axis=0, ddof=1)
    sd = np.sqrt(var)
    active = sd > 1e-15
    m = int(active.sum())
    avg_corr = None
    if m >= 2:
        z = (x[:, active] - x[:, active].mean(axis=0)) / sd[active]
        # sum of all entries of the correlation matrix = sum over rows of (row sum)^2 / (n-1)
        total = float(np.square(z.sum(axis=1)).sum() / (n - 1))
        avg_corr = (total - m) / (m * (m - 1))
    return {"mean": float(x.mean()), "vol": float(np.sqrt(var.mean())), "avg_corr": avg_corr}
