"""Constraint bookkeeping: which constraints bind at a solution, how far a weight vector
violates each one, and why a problem is infeasible.

Constraint names used in messages and in ``OptimizationResult.binding``: ``lower[NAME]``,
``upper[NAME]``, ``budget``, ``gross``, ``group[G].min`` / ``.max``, ``factor[j].min`` /
``.max``, ``turnover``, ``budgeted``.
"""

from __future__ import annotations

from itertools import combinations

import cvxpy as cp
import numpy as np

from prometheus_dagster.engines.portfolio.formulation import build, present_families
from prometheus_dagster.engines.portfolio.problem import (
    OptimizationProblem,
    PreparedProblem,
    prepare,
)

BINDING_TOL = 1e-6


def _active(value: float, bound: float, tol: float) -> bool:
    return abs(value - bound) <= tol * max(1.0, abs(bound))


def binding_constraints(p: PreparedProblem, w: np.ndarray,
                        tol: float = BINDING_TOL) -> list[str]:
    """Constraints active at ``w`` (within ``tol``, relative to bounds above 1)."""
    out: list[str] = []
    with np.errstate(invalid="ignore"):
        at_lower = np.isfinite(p.lower) & (
            np.abs(w - p.lower) <= tol * np.maximum(1.0, np.abs(p.lower)))
        at_upper = np.isfinite(p.upper) & (
            np.abs(w - p.upper) <= tol * np.maximum(1.0, np.abs(p.upper)))
    for i in np.flatnonzero(at_lower | at_upper).tolist():
        if at_lower[i]:
            out.append(f"lower[{p.names[i]}]")
        if at_upper[i]:
            out.append(f"upper[{p.names[i]}]")
    if p.budget is not None:
        out.append("budget")
    if p.gross is not None and _active(np.abs(w).sum(), p.gross, tol):
        out.append("gross")
    for gname, mask, lo, hi in p.groups:
        net = mask @ w
        if np.isfinite(lo) and _active(net, lo, tol):
            out.append(f"group[{gname}].min")
        if np.isfinite(hi) and _active(net, hi, tol):
            out.append(f"group[{gname}].max")
    expo = p.B.T @ w
    for j, lo, hi in p.factor_limits:
        if np.isfinite(lo) and _active(expo[j], lo, tol):
            out.append(f"factor[{j}].min")
        if np.isfinite(hi) and _active(expo[j], hi, tol):
            out.append(f"factor[{j}].max")
    if p.turnover is not None and _active(np.abs(w - p.w_prev).sum(), p.turnover, tol):
        out.append("turnover")
    if p.budgeted is not None and _active(p.budgeted[0] @ np.abs(w), p.budgeted[1], tol):
        out.append("budgeted")
    return out


def constraint_violations(problem: OptimizationProblem | PreparedProblem,
                          w: np.ndarray) -> dict[str, float]:
    """Largest violation (>= 0) of each constraint family by the weights ``w``."""
    p = problem if isinstance(problem, PreparedProblem) else prepare(problem)
    w = np.asarray(w, dtype=float)
    out = {"bounds": float(max(0.0, np.max(p.lower - w), np.max(w - p.upper)))}
    if p.budget is not None:
        out["budget"] = float(abs(w.sum() - p.budget))
    if p.gross is not None:
        out["gross"] = float(max(0.0, np.abs(w).sum() - p.gross))
    if p.groups:
        out["groups"] = float(max(max(0.0, lo - m @ w, m @ w - hi) for _, m, lo, hi in p.groups))
    if p.factor_limits:
        expo = p.B.T @ w
        out["factor_limits"] = float(max(max(0.0, lo - expo[j], expo[j] - hi)
                                         for j, lo, hi in p.factor_limits))
    if p.turnover is not None:
        out["turnover"] = float(max(0.0, np.abs(w - p.w_prev).sum() - p.turnover))
    if p.budgeted is not None:
        out["budgeted"] = float(max(0.0, p.budgeted[0] @ np.abs(w) - p.budgeted[1]))
    return out


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _min_abs_in_box(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Smallest |w_i| with lower_i <= w_i <= upper_i."""
    return np.maximum(0.0, np.maximum(lower, -upper))


def cheap_conflicts(p: PreparedProblem) -> list[str]:
    """Necessary conditions for feasibility that can be checked without a solver; each
    failed one is returned as a message naming the constraints involved."""
    out: list[str] = []
    lo_sum, up_sum = p.lower.sum(), p.upper.sum()
    if p.budget is not None:
        if lo_sum > p.budget + 1e-9:
            out.append(f"budget vs lower bounds: sum of lower bounds {_fmt(lo_sum)} > "
                       f"budget {_fmt(p.budget)}")
        if up_sum < p.budget - 1e-9:
            out.append(f"budget vs upper bounds: sum of upper bounds {_fmt(up_sum)} < "
                       f"budget {_fmt(p.budget)}")
    for gname, mask, lo, hi in p.groups:
        inside = mask > 0
        g_up, g_lo = p.upper[inside].sum(), p.lower[inside].sum()
        if lo > g_up + 1e-9:
            out.append(f"group[{gname}].min {_fmt(lo)} > sum of its members' upper bounds "
                       f"{_fmt(g_up)}")
        if hi < g_lo - 1e-9:
            out.append(f"group[{gname}].max {_fmt(hi)} < sum of its members' lower bounds "
                       f"{_fmt(g_lo)}")
        if p.budget is not None:
            most = p.budget - p.lower[~inside].sum()
            least = p.budget - p.upper[~inside].sum()
            if lo > most + 1e-9:
                out.append(f"group[{gname}].min {_fmt(lo)} vs budget and lower bounds: the "
                           f"group can hold at most {_fmt(most)}")
            if hi < least - 1e-9:
                out.append(f"group[{gname}].max {_fmt(hi)} vs budget and upper bounds: the "
                           f"group must hold at least {_fmt(least)}")
    min_abs = _min_abs_in_box(p.lower, p.upper)
    if p.gross is not None:
        if min_abs.sum() > p.gross + 1e-9:
            out.append(f"gross vs bounds: the bounds force gross weight >= "
                       f"{_fmt(min_abs.sum())} > gross limit {_fmt(p.gross)}")
        if p.budget is not None and abs(p.budget) > p.gross + 1e-9:
            out.append(f"gross vs budget: |budget| {_fmt(abs(p.budget))} > gross limit "
                       f"{_fmt(p.gross)}")
    if p.budgeted is not None:
        forced = p.budgeted[0] @ min_abs
        if forced > p.budgeted[1] + 1e-9:
            out.append(f"budgeted vs bounds: the bounds force {_fmt(forced)} gross weight in "
                       f"the budgeted names > cap {_fmt(p.budgeted[1])}")
    if p.turnover is not None:
        clipped = np.clip(p.w_prev, p.lower, p.upper)
        to_box = np.abs(p.w_prev - clipped).sum()
        if to_box > p.turnover + 1e-9:
            out.append(f"turnover vs bounds: reaching the bounds from w_prev needs turnover "
                       f"{_fmt(to_box)} > limit {_fmt(p.turnover)}")
        elif p.budget is not None and np.isfinite(clipped).all():
            # Moving the clipped weights to the budget costs at least the change of their sum.
            needed = to_box + abs(p.budget - clipped.sum())
            if needed > p.turnover + 1e-9 and lo_sum <= p.budget <= up_sum:
                out.append(f"turnover vs budget and bounds: reaching the budget from w_prev "
                           f"needs turnover {_fmt(needed)} > limit {_fmt(p.turnover)}")
    for j, lo, hi in p.factor_limits:
        b = p.B[:, j]
        with np.errstate(invalid="ignore"):
            best = np.nansum(np.maximum(b * p.lower, b * p.upper))
            worst = np.nansum(np.minimum(b * p.lower, b * p.upper))
        if lo > best + 1e-9:
            out.append(f"factor[{j}].min {_fmt(lo)} > largest exposure the bounds allow "
                       f"{_fmt(best)}")
        if hi < worst - 1e-9:
            out.append(f"factor[{j}].max {_fmt(hi)} < smallest exposure the bounds allow "
                       f"{_fmt(worst)}")
    return out


def is_feasible(p: PreparedProblem, drop: frozenset[str] = frozenset()) -> bool:
    """Solve the feasibility problem (constraints only), optionally with some dropped."""
    form = build(p, "none", parametric=False, drop=drop)
    try:
        form.problem.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        return False
    return form.problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


def _labels(p: PreparedProblem, family: str) -> str:
    if family == "groups":
        return "groups (" + ", ".join(f"group[{g}]" for g, *_ in p.groups) + ")"
    if family == "factor_limits":
        return "factor limits (" + ", ".join(f"factor[{j}]" for j, *_ in p.factor_limits) + ")"
    return family


def diagnose_infeasibility(problem: OptimizationProblem | PreparedProblem) -> list[str]:
    """Which constraints conflict; empty when the problem is feasible.

    First the cheap necessary conditions of ``cheap_conflicts``. When none fails, the
    feasibility problem is re-solved with one constraint family dropped at a time (then
    single groups / factor limits, then pairs of families): each family whose removal
    restores feasibility is reported as part of the conflict.
    """
    p = problem if isinstance(problem, PreparedProblem) else prepare(problem)
    cheap = cheap_conflicts(p)
    if cheap:
        return cheap
    if is_feasible(p):
        return []
    families = present_families(p)
    culprits = [f for f in families if is_feasible(p, frozenset({f}))]
    if culprits:
        out = []
        for fam in culprits:
            items: list[str] = []
            if fam == "groups":
                items = [f"group[{g}]" for i, (g, *_) in enumerate(p.groups)
                         if is_feasible(p, frozenset({f"group:{i}"}))]
            elif fam == "factor_limits":
                items = [f"factor[{j}]" for j, *_ in p.factor_limits
                         if is_feasible(p, frozenset({f"factor:{j}"}))]
            label = ", ".join(items) if items else _labels(p, fam)
            out.append(f"{label}: feasible once dropped")
        others = [f for f in families if f not in culprits]
        if len(culprits) == 1 and others:
            out[0] += " (conflicts with " + ", ".join(others) + ")"
        return out
    pairs = [f"{a} + {b}" for a, b in combinations(families, 2)
             if is_feasible(p, frozenset({a, b}))]
    if pairs:
        return [f"{pair}: feasible once both are dropped" for pair in pairs]
    return ["the constraints conflict jointly: no one or two of " + ", ".join(families)
            + " explain it"]
