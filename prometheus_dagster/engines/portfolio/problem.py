"""The optimisation problem, its result, and validation of the inputs.

``prepare`` turns an ``OptimizationProblem`` into a ``PreparedProblem``: every array
broadcast to its full shape as float64, defaults filled in (no current weights = all cash),
and a square-root factor of the factor covariance. Bad inputs raise ``ProblemValidationError``
naming the field (and the name or index) at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from prometheus_dagster.core.errors import PrometheusError

_PSD_TOL = 1e-10
_SYM_TOL = 1e-8


class ProblemValidationError(PrometheusError, ValueError):
    """An ``OptimizationProblem`` field has the wrong shape, a NaN, or an impossible value."""


class InfeasibleProblemError(PrometheusError):
    """No portfolio satisfies all constraints; ``conflicts`` names the constraints that clash."""

    def __init__(self, conflicts: list[str]):
        self.conflicts = list(conflicts)
        super().__init__("infeasible portfolio problem: " + "; ".join(self.conflicts))


class OptimizationError(PrometheusError):
    """The solver failed or the problem is unbounded (it is not an infeasibility)."""


@dataclass(frozen=True)
class RiskModel:
    """Factor risk model: Sigma = B F B' + diag(D)."""

    exposures: np.ndarray      # B (n x k)
    factor_cov: np.ndarray     # F (k x k), symmetric PSD
    specific_var: np.ndarray   # D (n,), >= 0

    def covariance(self) -> np.ndarray:
        """The dense n x n covariance (for reports and tests; the optimiser never forms it)."""
        b = np.asarray(self.exposures, dtype=float)
        return b @ np.asarray(self.factor_cov, dtype=float) @ b.T + np.diag(
            np.asarray(self.specific_var, dtype=float))


@dataclass(frozen=True)
class OptimizationProblem:
    """maximise w'mu - lambda w'Sigma w - costs(w - w_prev) subject to the given limits.

    ``budget``: sum(w) == budget (1 long-only, 0 market-neutral), None for no budget.
    ``lower``/``upper``: per-name bounds (scalars broadcast; +-inf allowed for no bound).
    ``groups``: name -> (0/1 membership, min, max) of the group's net weight (sectors,
    countries); +-inf for a missing side. ``factor_limits``: factor column -> (min, max) of
    B'w. ``budgeted``: (0/1 membership, max gross weight in those names), e.g. the
    soft-target / fragility budget. ``w_prev`` None means no current holdings (all cash).
    """

    mu: np.ndarray
    risk: RiskModel
    risk_aversion: float
    w_prev: np.ndarray | None = None
    cost_bps: np.ndarray | float = 0.0
    budget: float | None = 1.0
    lower: np.ndarray | float = 0.0
    upper: np.ndarray | float = 1.0
    gross_limit: float | None = None
    groups: dict[str, tuple[np.ndarray, float, float]] = field(default_factory=dict)
    factor_limits: dict[int, tuple[float, float]] = field(default_factory=dict)
    turnover_limit: float | None = None
    budgeted: tuple[np.ndarray, float] | None = None
    names: tuple[str, ...] | None = None


@dataclass
class OptimizationResult:
    weights: np.ndarray
    objective: float             # w'mu - lambda w'Sigma w - cost
    expected_return: float       # w'mu
    volatility: float            # sqrt(w'Sigma w)
    factor_exposures: np.ndarray  # B'w
    turnover: float              # sum |w - w_prev|
    cost: float                  # sum cost_bps / 1e4 * |w - w_prev|
    binding: list[str]           # constraints active at the optimum
    status: str
    solver: str
    solve_seconds: float
    iterations: int | None


@dataclass(frozen=True)
class PreparedProblem:
    """Validated, broadcast inputs. ``L`` satisfies F = L L'."""

    n: int
    k: int
    mu: np.ndarray
    B: np.ndarray
    F: np.ndarray
    L: np.ndarray
    D: np.ndarray
    lam: float
    w_prev: np.ndarray
    cost: np.ndarray             # fraction per unit traded (cost_bps / 1e4)
    budget: float | None
    lower: np.ndarray
    upper: np.ndarray
    gross: float | None
    groups: tuple[tuple[str, np.ndarray, float, float], ...]
    factor_limits: tuple[tuple[int, float, float], ...]
    turnover: float | None
    budgeted: tuple[np.ndarray, float] | None
    names: tuple[str, ...]

    @property
    def has_costs(self) -> bool:
        return bool(np.any(self.cost > 0))


T = TypeVar("T")


def present(value: T | None, name: str) -> T:
    """A field of a PreparedProblem that the caller has already found set (its family is in
    the problem); None here means the problem and the caller's structure disagree."""
    if value is None:
        raise ValueError(f"PreparedProblem.{name} is None where it is required")
    return value


def _bad(msg: str) -> ProblemValidationError:
    return ProblemValidationError(f"OptimizationProblem.{msg}")


def _vector(value, n: int, name: str, *, allow_inf: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise _bad(f"{name} has shape {arr.shape}, expected ({n},)")
    if np.isnan(arr).any():
        raise _bad(f"{name}[{int(np.flatnonzero(np.isnan(arr))[0])}] is NaN")
    if not allow_inf and not np.isfinite(arr).all():
        raise _bad(f"{name}[{int(np.flatnonzero(~np.isfinite(arr))[0])}] is not finite")
    return arr.copy()


def _scalar(value, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(f"{name} = {value!r} is not a number") from None
    if not np.isfinite(x):
        raise _bad(f"{name} = {x} is not finite")
    if minimum is not None and (x <= minimum if strict else x < minimum):
        raise _bad(f"{name} = {x} must be {'>' if strict else '>='} {minimum}")
    return x


def _membership(value, n: int, name: str) -> np.ndarray:
    mask = _vector(value, n, name)
    if not np.isin(mask, (0.0, 1.0)).all():
        raise _bad(f"{name} must be a 0/1 membership vector")
    return mask


def _range(lo, hi, name: str) -> tuple[float, float]:
    lo, hi = float(lo), float(hi)
    if np.isnan(lo) or np.isnan(hi):
        raise _bad(f"{name} has a NaN limit")
    if lo == np.inf or hi == -np.inf or lo > hi:
        raise _bad(f"{name} = ({lo}, {hi}): min must not exceed max")
    return lo, hi


def _risk(risk: RiskModel, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    B = np.asarray(risk.exposures, dtype=float)
    if B.ndim != 2 or B.shape[0] != n or B.shape[1] < 1:
        raise _bad(f"risk.exposures has shape {B.shape}, expected ({n}, k) with k >= 1")
    if not np.isfinite(B).all():
        raise _bad("risk.exposures has NaN or infinite entries")
    k = B.shape[1]
    F = np.asarray(risk.factor_cov, dtype=float)
    if F.shape != (k, k):
        raise _bad(f"risk.factor_cov has shape {F.shape}, expected ({k}, {k})")
    if not np.isfinite(F).all():
        raise _bad("risk.factor_cov has NaN or infinite entries")
    scale = max(1.0, float(np.abs(F).max()))
    if np.abs(F - F.T).max() > _SYM_TOL * scale:
        raise _bad("risk.factor_cov is not symmetric")
    F = (F + F.T) / 2
    eig, vec = np.linalg.eigh(F)
    if eig[0] < -_PSD_TOL * max(1.0, float(eig[-1])):
        raise _bad(f"risk.factor_cov is not positive semidefinite "
                   f"(smallest eigenvalue {eig[0]:.3g})")
    L = vec * np.sqrt(np.clip(eig, 0.0, None))
    D = _vector(risk.specific_var, n, "risk.specific_var")
    if (D < 0).any():
        raise _bad(f"risk.specific_var[{int(np.flatnonzero(D < 0)[0])}] is negative")
    return B.copy(), F, L, D


def prepare(problem: OptimizationProblem) -> PreparedProblem:
    """Validate and broadcast a problem (raises ``ProblemValidationError``)."""
    mu = np.asarray(problem.mu, dtype=float)
    if mu.ndim != 1 or mu.size == 0:
        raise _bad(f"mu has shape {mu.shape}, expected a non-empty vector")
    n = mu.size
    mu = _vector(mu, n, "mu")
    B, F, L, D = _risk(problem.risk, n)
    names = tuple(str(i) for i in range(n)) if problem.names is None else tuple(problem.names)
    if len(names) != n:
        raise _bad(f"names has {len(names)} entries, expected {n}")
    lam = _scalar(problem.risk_aversion, "risk_aversion", minimum=0.0, strict=True)
    w_prev = np.zeros(n) if problem.w_prev is None else _vector(problem.w_prev, n, "w_prev")
    cost_bps = _vector(problem.cost_bps, n, "cost_bps")
    if (cost_bps < 0).any():
        raise _bad(f"cost_bps[{names[int(np.flatnonzero(cost_bps < 0)[0])]}] is negative")
    lower = _vector(problem.lower, n, "lower", allow_inf=True)
    upper = _vector(problem.upper, n, "upper", allow_inf=True)
    bad = np.flatnonzero((lower > upper) | (lower == np.inf) | (upper == -np.inf))
    if bad.size:
        i = int(bad[0])
        raise _bad(f"lower[{names[i]}] = {lower[i]} > upper[{names[i]}] = {upper[i]}")
    budget = None if problem.budget is None else _scalar(problem.budget, "budget")
    gross = (None if problem.gross_limit is None
             else _scalar(problem.gross_limit, "gross_limit", minimum=0.0))
    turnover = (None if problem.turnover_limit is None
                else _scalar(problem.turnover_limit, "turnover_limit", minimum=0.0))
    groups = []
    for gname in sorted(problem.groups):
        try:
            mask, lo, hi = problem.groups[gname]
        except (TypeError, ValueError):
            raise _bad(f"groups[{gname!r}] must be (membership, min, max)") from None
        label = f"groups[{gname!r}]"
        groups.append((str(gname), _membership(mask, n, label), *_range(lo, hi, label)))
    factor_limits = []
    for j in sorted(problem.factor_limits):
        if not isinstance(j, int | np.integer) or not 0 <= int(j) < B.shape[1]:
            raise _bad(f"factor_limits key {j!r} is not a factor column in [0, {B.shape[1]})")
        lo, hi = problem.factor_limits[j]
        factor_limits.append((int(j), *_range(lo, hi, f"factor_limits[{j}]")))
    budgeted = None
    if problem.budgeted is not None:
        mask, cap = problem.budgeted
        budgeted = (_membership(mask, n, "budgeted membership"),
                    _scalar(cap, "budgeted cap", minimum=0.0))
    return PreparedProblem(
        n=n, k=B.shape[1], mu=mu, B=B, F=F, L=L, D=D, lam=lam, w_prev=w_prev,
        cost=cost_bps / 1e4, budget=budget, lower=lower, upper=upper, gross=gross,
        groups=tuple(groups), factor_limits=tuple(factor_limits), turnover=turnover,
        budgeted=budgeted, names=names)
