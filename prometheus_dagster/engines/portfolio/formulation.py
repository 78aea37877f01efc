"""The cvxpy formulation, shared by the factor-form optimiser, the dense baseline and the
feasibility checks of the infeasibility diagnosis.

Factor form: y = B'w and risk = ||sqrt(lambda) L'y||^2 + ||sqrt(lambda D) * w||^2 with
F = L L', so the quadratic term has k + n squares instead of a dense n x n matrix. Absolute
values use split variables: z >= |w - w_prev| (costs and turnover), g >= |w| (gross and the
budgeted names). In parametric mode every number that may change from date to date is a
``cp.Parameter`` (lambda is folded into the factors so the problem stays DPP), so a cached
problem is re-solved without being canonicalised again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import cvxpy as cp
import numpy as np

from prometheus_dagster.engines.portfolio.problem import PreparedProblem, present
from prometheus_dagster.engines.portfolio.qp import objective_scale

RiskForm = Literal["factor", "dense", "none"]
FAMILIES: tuple[str, ...] = ("budget", "bounds", "gross", "groups", "factor_limits",
                             "turnover", "budgeted")


@dataclass
class Formulation:
    problem: cp.Problem
    w: cp.Variable
    binders: list[tuple[cp.Parameter, Callable[[PreparedProblem], np.ndarray | float]]] = \
        field(default_factory=list)

    def assign(self, p: PreparedProblem) -> None:
        """Set every parameter from the problem's data (parametric builds only)."""
        for param, get in self.binders:
            param.value = get(p)


def structure_key(p: PreparedProblem, risk: RiskForm = "factor") -> tuple:
    """What fixes the shape of the cvxpy problem; problems with equal keys share one."""
    return (risk, p.n, p.k, p.budget is None,
            np.isfinite(p.lower).tobytes(), np.isfinite(p.upper).tobytes(),
            p.gross is None, p.turnover is None, p.has_costs, p.budgeted is None,
            tuple((np.isfinite(lo), np.isfinite(hi)) for _, _, lo, hi in p.groups),
            tuple((j, np.isfinite(lo), np.isfinite(hi)) for j, lo, hi in p.factor_limits))


def present_families(p: PreparedProblem) -> list[str]:
    """The constraint families this problem actually has."""
    have = {"budget": p.budget is not None,
            "bounds": bool(np.isfinite(p.lower).any() or np.isfinite(p.upper).any()),
            "gross": p.gross is not None, "groups": bool(p.groups),
            "factor_limits": bool(p.factor_limits), "turnover": p.turnover is not None,
            "budgeted": p.budgeted is not None}
    return [f for f in FAMILIES if have[f]]


def _entries(side: str, idx: np.ndarray) -> Callable[[PreparedProblem], np.ndarray]:
    return lambda q: getattr(q, side)[idx]


def _group_row(i: int) -> Callable[[PreparedProblem], np.ndarray]:
    return lambda q: q.groups[i][1]


def _group_floor(i: int) -> Callable[[PreparedProblem], float]:
    return lambda q: q.groups[i][2]


def _group_cap(i: int) -> Callable[[PreparedProblem], float]:
    return lambda q: q.groups[i][3]


def _factor_bound(pos: int, col: int) -> Callable[[PreparedProblem], float]:
    return lambda q: q.factor_limits[pos][col]


def build(p: PreparedProblem, risk: RiskForm = "factor", *, parametric: bool = True,
          drop: frozenset[str] = frozenset()) -> Formulation:
    """Build the problem. ``risk="none"`` gives a feasibility problem (objective 0);
    ``drop`` removes constraint families (``FAMILIES``) or single items ("group:<i>",
    "factor:<j>", by position in ``p.groups`` / column index)."""
    binders: list[tuple[cp.Parameter, Callable[[PreparedProblem], np.ndarray | float]]] = []

    def vector(get: Callable[[PreparedProblem], np.ndarray], shape: tuple[int, ...],
               **attrs: Any) -> cp.Parameter | np.ndarray:
        if not parametric:
            return get(p)
        param = cp.Parameter(shape, **attrs)
        binders.append((param, get))
        return param

    def scalar(get: Callable[[PreparedProblem], float]) -> cp.Parameter | float:
        if not parametric:
            return get(p)
        param = cp.Parameter(())
        binders.append((param, get))
        return param

    n, k = p.n, p.k
    w = cp.Variable(n, name="w")
    cons: list = []
    objective = 0
    exposure = None
    if risk == "factor":
        y = cp.Variable(k, name="y")
        cons.append(y == vector(lambda q: q.B, (n, k)).T @ w)
        exposure = y
        lf = vector(lambda q: np.sqrt(q.lam * objective_scale(q)) * q.L, (k, k))
        sd = vector(lambda q: np.sqrt(q.lam * objective_scale(q) * q.D), (n,), nonneg=True)
        objective = (vector(lambda q: objective_scale(q) * q.mu, (n,)) @ w
                     - cp.sum_squares(lf.T @ y) - cp.sum_squares(cp.multiply(sd, w)))
    elif risk == "dense":
        scale = objective_scale(p)
        sigma = p.B @ p.F @ p.B.T + np.diag(p.D)
        objective = scale * p.mu @ w - scale * p.lam * cp.quad_form(
            w, cp.psd_wrap((sigma + sigma.T) / 2))

    if "bounds" not in drop:
        for side, values in (("lower", p.lower), ("upper", p.upper)):
            idx = np.flatnonzero(np.isfinite(values))
            if idx.size == 0:
                continue
            lhs = w if idx.size == n else w[idx]
            rhs = vector(_entries(side, idx), (idx.size,))
            cons.append(lhs >= rhs if side == "lower" else lhs <= rhs)
    if p.budget is not None and "budget" not in drop:
        cons.append(cp.sum(w) == scalar(lambda q: present(q.budget, "budget")))

    use_turnover = p.turnover is not None and "turnover" not in drop
    use_costs = p.has_costs and risk != "none"
    if use_turnover or use_costs:
        z = cp.Variable(n, name="trade", nonneg=True)
        w_prev = vector(lambda q: q.w_prev, (n,))
        cons += [z >= w - w_prev, z >= w_prev - w]
        if use_turnover:
            cons.append(cp.sum(z) <= scalar(lambda q: present(q.turnover, "turnover")))
        if use_costs:
            objective = objective - vector(lambda q: objective_scale(q) * q.cost, (n,),
                                                nonneg=True) @ z

    use_gross = p.gross is not None and "gross" not in drop
    use_budgeted = p.budgeted is not None and "budgeted" not in drop
    if use_gross or use_budgeted:
        g = cp.Variable(n, name="gross", nonneg=True)
        cons += [g >= w, g >= -w]
        if use_gross:
            cons.append(cp.sum(g) <= scalar(lambda q: present(q.gross, "gross")))
        if use_budgeted:
            cons.append(vector(lambda q: present(q.budgeted, "budgeted")[0], (n,)) @ g
                        <= scalar(lambda q: present(q.budgeted, "budgeted")[1]))

    if "groups" not in drop:
        for i, (_, _, lo, hi) in enumerate(p.groups):
            if f"group:{i}" in drop:
                continue
            net = vector(_group_row(i), (n,)) @ w
            if np.isfinite(lo):
                cons.append(net >= scalar(_group_floor(i)))
            if np.isfinite(hi):
                cons.append(net <= scalar(_group_cap(i)))
    if "factor_limits" not in drop:
        for pos, (j, lo, hi) in enumerate(p.factor_limits):
            if f"factor:{j}" in drop:
                continue
            expo = exposure[j] if exposure is not None else p.B[:, j] @ w
            if np.isfinite(lo):
                cons.append(expo >= scalar(_factor_bound(pos, 1)))
            if np.isfinite(hi):
                cons.append(expo <= scalar(_factor_bound(pos, 2)))

    sense = cp.Minimize(0) if risk == "none" else cp.Maximize(objective)
    form = Formulation(cp.Problem(sense, cons), w, binders)
    if parametric:
        form.assign(p)
    return form
