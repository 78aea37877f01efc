"""The factor risk model of one market and date: Sigma = B F B' + diag(d), all annualised."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.engines.features.schemas import FACTOR_IDS


def factor_order(factor_ids: list[str] | set[str]) -> list[str]:
    """The order factors take in every model: the feature engine's order (MARKET, SIZE, ...),
    then any other factor alphabetically."""
    rank = {f: i for i, f in enumerate(FACTOR_IDS)}
    return sorted(factor_ids, key=lambda f: (rank.get(f, len(rank)), f))


@dataclass(frozen=True)
class RiskModelInputs:
    """Long frames: ``returns`` (instrument_id, date, ret_1d) from ``returns_daily``,
    ``factor_returns`` (factor_id, date, value) from ``factors_daily`` and ``exposures``
    (instrument_id, date, factor_id, exposure) from ``instrument_factors_daily``."""

    returns: pd.DataFrame
    factor_returns: pd.DataFrame
    exposures: pd.DataFrame


@dataclass
class FactorRiskModel:
    """Rows of ``exposures`` and entries of ``specific_var`` follow ``instrument_ids`` (sorted
    ascending); rows and columns of ``factor_cov`` and columns of ``exposures`` follow
    ``factor_ids`` (see :func:`factor_order`). Covariances and variances are annualised."""

    market_id: str
    as_of_date: pd.Timestamp
    instrument_ids: list[str]
    factor_ids: list[str]
    exposures: np.ndarray
    factor_cov: np.ndarray
    specific_var: np.ndarray
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, k = len(self.instrument_ids), len(self.factor_ids)
        if self.exposures.shape != (n, k):
            raise ValueError(f"exposures has shape {self.exposures.shape}, expected {(n, k)}")
        if self.factor_cov.shape != (k, k):
            raise ValueError(f"factor_cov has shape {self.factor_cov.shape}, expected {(k, k)}")
        if self.specific_var.shape != (n,):
            raise ValueError(f"specific_var has shape {self.specific_var.shape}, "
                             f"expected {(n,)}")

    def as_arrays(self, instrument_ids: list[str] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(exposures (n, k), factor_cov (k, k), specific_var (n,)) as an optimizer takes
        them, rows in ``instrument_ids`` order (default: the model's own). Raises KeyError
        naming instruments the model does not cover."""
        if instrument_ids is None:
            return self.exposures, self.factor_cov, self.specific_var
        pos = {i: p for p, i in enumerate(self.instrument_ids)}
        missing = [i for i in instrument_ids if i not in pos]
        if missing:
            raise KeyError(f"risk model {self.market_id} {self.as_of_date.date()} has no "
                           f"instrument(s) {', '.join(missing)}")
        idx = np.array([pos[i] for i in instrument_ids], dtype=int)
        return self.exposures[idx], self.factor_cov, self.specific_var[idx]

    def covariance(self) -> np.ndarray:
        """The full (n, n) covariance B F B' + diag(d)."""
        cov = self.exposures @ self.factor_cov @ self.exposures.T + np.diag(self.specific_var)
        return (cov + cov.T) / 2.0

    def total_vols(self) -> np.ndarray:
        """Annualised model volatility of each instrument, sqrt(b_i' F b_i + d_i)."""
        factor_var = np.einsum("ij,jk,ik->i", self.exposures, self.factor_cov, self.exposures)
        return np.sqrt(factor_var + self.specific_var)

    def _weights(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, dtype=float)
        if w.shape != (len(self.instrument_ids),):
            raise ValueError(f"weights have shape {w.shape}, expected "
                             f"({len(self.instrument_ids)},) in instrument_ids order")
        return w

    def factor_exposures(self, w: np.ndarray) -> np.ndarray:
        """Portfolio factor exposures B' w, in ``factor_ids`` order."""
        return self.exposures.T @ self._weights(w)

    def portfolio_variance(self, w: np.ndarray) -> float:
        """Annualised variance w' B F B' w + sum(d w^2), computed in factor form."""
        w = self._weights(w)
        x = self.exposures.T @ w
        return float(x @ self.factor_cov @ x + np.sum(self.specific_var * w * w))

    def risk_decomposition(self, w: np.ndarray) -> dict[str, Any]:
        """Factor vs specific variance of the portfolio. ``factor_contributions`` are the
        Euler contributions x_k (F x)_k, which sum to ``factor_variance``; factor plus
        specific variance is ``total_variance``."""
        w = self._weights(w)
        x = self.exposures.T @ w
        contrib = x * (self.factor_cov @ x)
        factor_var = float(x @ self.factor_cov @ x)
        specific_var = float(np.sum(self.specific_var * w * w))
        total = factor_var + specific_var
        return {
            "total_variance": total,
            "total_vol": float(np.sqrt(max(total, 0.0))),
            "factor_variance": factor_var,
            "specific_variance": specific_var,
            "factor_share": factor_var / total if total > 0 else float("nan"),
            "factor_exposures": dict(zip(self.factor_ids, x.tolist(), strict=True)),
            "factor_contributions": dict(zip(self.factor_ids, contrib.tolist(), strict=True)),
        }
