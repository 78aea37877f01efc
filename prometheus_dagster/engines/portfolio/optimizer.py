"""The portfolio optimiser (docs/engines/portfolio.md): maximise
w'mu - lambda w'Sigma w - costs.

``optimize`` with Clarabel (the default) assembles the factor form as one sparse QP with
numpy (``qp.assemble``) and calls Clarabel directly: no modelling layer on the hot path.
Problems with the same structure (names, which bounds are finite, group and budgeted
membership, which limits exist; never the holdings) share one cached solver whose numbers are
updated in place, so successive dates skip the symbolic analysis. A long-only book of
``screening.MIN_NAMES`` names or more is first solved on a subset with a dual certificate
that the names left out belong at zero (``screening``); the optimum is the full problem's.
Clarabel is an interior-point solver: it has no warm start of its iterates, so
``warm_start`` is only checked there.

Any other solver name (e.g. ``OSQP``, or ``CVXPY:CLARABEL`` for Clarabel through cvxpy) goes
through the cached, parametrised cvxpy problem of ``formulation.build``: successive dates
only update parameter values, and ``warm_start`` keeps the solver instance, so OSQP restarts
from its last iterate.

Deterministic: identical inputs give identical weights with Clarabel (cached or not). With
OSQP and a warm start the result depends on the previous solve within solver tolerance.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import cvxpy as cp
import numpy as np

from prometheus_dagster.engines.portfolio.constraints import (
    binding_constraints,
    cheap_conflicts,
    diagnose_infeasibility,
)
from prometheus_dagster.engines.portfolio.formulation import Formulation, build, structure_key
from prometheus_dagster.engines.portfolio.problem import (
    InfeasibleProblemError,
    OptimizationError,
    OptimizationProblem,
    OptimizationResult,
    PreparedProblem,
    prepare,
)
from prometheus_dagster.engines.portfolio.qp import (
    INFEASIBLE,
    UNBOUNDED,
    ClarabelCache,
    assemble,
)
from prometheus_dagster.engines.portfolio.screening import screened_solve

CACHE_SIZE = 16
SOLVER_OPTIONS: dict[str, dict] = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9,
                 "max_iter": 500},
    "OSQP": {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iter": 200_000, "polishing": True},
}
_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)

_cache: OrderedDict[tuple, Formulation] = OrderedDict()
_clarabel = ClarabelCache(CACHE_SIZE)
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the cached problems (and their solver states)."""
    with _lock:
        _cache.clear()
        _clarabel.clear()


def _cached(p: PreparedProblem) -> Formulation:
    key = structure_key(p, "factor")
    form = _cache.get(key)
    if form is None:
        form = build(p, "factor", parametric=True)
        _cache[key] = form
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
        form.assign(p)
    return form


def _cvxpy_name(solver: str) -> str:
    name = solver.upper()
    return name.removeprefix("CVXPY:")


def _warm_weights(warm: OptimizationResult | np.ndarray | None, n: int) -> np.ndarray | None:
    if warm is None:
        return None
    w = np.asarray(warm.weights if isinstance(warm, OptimizationResult) else warm, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"warm_start has shape {w.shape}, expected ({n},)")
    return w


def _solve(form: Formulation, p: PreparedProblem, solver: str, warm: bool) -> tuple[float, str]:
    solver = _cvxpy_name(solver)
    opts = SOLVER_OPTIONS.get(solver, {})
    t0 = time.perf_counter()
    try:
        form.problem.solve(solver=solver, warm_start=warm, **opts)
    except cp.SolverError as exc:
        raise OptimizationError(f"solver {solver} failed: {exc}") from exc
    seconds = time.perf_counter() - t0
    status = form.problem.status
    if status in _INFEASIBLE:
        raise InfeasibleProblemError(diagnose_infeasibility(p) or [
            f"solver {solver} reported {status} but no conflicting constraint was found"])
    if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
        raise OptimizationError("unbounded portfolio problem: add finite bounds, a budget or "
                                "a gross limit")
    if status not in _SOLVED or form.w.value is None:
        raise OptimizationError(f"solver {solver} ended with status {status}")
    return seconds, status


def _result(p: PreparedProblem, w: np.ndarray, solver: str, status: str, seconds: float,
            iterations: int | None) -> OptimizationResult:
    expo = p.B.T @ w
    variance = float(np.sum((p.L.T @ expo) ** 2) + np.sum(p.D * w * w))
    trade = np.abs(w - p.w_prev)
    cost = float(p.cost @ trade)
    expected = float(p.mu @ w)
    return OptimizationResult(
        weights=w, objective=expected - p.lam * variance - cost, expected_return=expected,
        volatility=float(np.sqrt(max(variance, 0.0))), factor_exposures=expo,
        turnover=float(trade.sum()), cost=cost, binding=binding_constraints(p, w),
        status=status, solver=_cvxpy_name(solver), solve_seconds=seconds,
        iterations=iterations)


def _cvxpy_result(p: PreparedProblem, form: Formulation, solver: str, status: str,
                  seconds: float) -> OptimizationResult:
    stats = form.problem.solver_stats
    return _result(p, np.array(form.w.value, dtype=float), solver, status, seconds,
                   None if stats is None else stats.num_iters)


def _solve_direct(p: PreparedProblem) -> OptimizationResult:
    screened = screened_solve(p, _clarabel)
    if screened is not None:
        w, sol = screened
        status = cp.OPTIMAL if sol.status == "Solved" else cp.OPTIMAL_INACCURATE
        return _result(p, w, "CLARABEL", status, sol.solve_seconds, sol.iterations)
    sol = _clarabel.solve(assemble(p), p.n)
    if sol.status in INFEASIBLE:
        raise InfeasibleProblemError(diagnose_infeasibility(p) or [
            f"solver CLARABEL reported {sol.status} but no conflicting constraint was found"])
    if sol.status in UNBOUNDED:
        raise OptimizationError("unbounded portfolio problem: add finite bounds, a budget or "
                                "a gross limit")
    if sol.weights is None:
        raise OptimizationError(f"solver CLARABEL ended with status {sol.status}")
    status = cp.OPTIMAL if sol.status == "Solved" else cp.OPTIMAL_INACCURATE
    return _result(p, sol.weights, "CLARABEL", status, sol.solve_seconds, sol.iterations)


def optimize(problem: OptimizationProblem, *, solver: str = "CLARABEL",
             warm_start: OptimizationResult | np.ndarray | None = None) -> OptimizationResult:
    """Solve the problem in factor form (see the module docstring).

    Raises ``ProblemValidationError`` for bad inputs, ``InfeasibleProblemError`` (naming the
    conflicting constraints) when no portfolio satisfies the constraints, and
    ``OptimizationError`` when the solver fails.
    """
    p = prepare(problem)
    _warm_weights(warm_start, p.n)
    conflicts = cheap_conflicts(p)
    if conflicts:
        raise InfeasibleProblemError(conflicts)
    with _lock:
        if solver.upper() == "CLARABEL":
            return _solve_direct(p)
        form = _cached(p)
        seconds, status = _solve(form, p, solver, warm=warm_start is not None)
        return _cvxpy_result(p, form, solver, status, seconds)


def optimize_dense(problem: OptimizationProblem, *,
                   solver: str = "CLARABEL") -> OptimizationResult:
    """The same problem with the dense covariance w'Sigma w, built from scratch (baseline)."""
    p = prepare(problem)
    conflicts = cheap_conflicts(p)
    if conflicts:
        raise InfeasibleProblemError(conflicts)
    t0 = time.perf_counter()
    form = build(p, "dense", parametric=False)
    build_seconds = time.perf_counter() - t0
    seconds, status = _solve(form, p, solver, warm=False)
    return _cvxpy_result(p, form, solver, status, seconds + build_seconds)
