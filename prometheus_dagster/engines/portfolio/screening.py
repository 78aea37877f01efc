"""Solving a large book on the names that matter, with a certificate that the rest stay out.

In a long-only book most names are not held and end at weight 0. ``screened_solve`` solves
the QP on the held names, the names whose bounds do not pin them at zero, and the most
attractive of the others (``attractiveness``: the marginal utility of buying a little on top
of the current book), then proves the left-out names optimal at
w = 0 with the reduced problem's duals: for such a name (lower bound 0, not held) the
optimality conditions of the full problem hold with w_i = t_i = 0 exactly when

    g_i + c_i >= 0,   g_i = s (-mu_i) + B_i' z_factor + z_budget + z_gross + z_budgeted
                            + sum over its groups (z_max - z_min),
                      c_i = s cost_i + z_turnover (0 without trade variables),

(z the duals of the rows every name enters, s the objective scale; Clarabel's convention
P x + q + A'z = 0); for a name still holding a sliver (0 < w_prev <= ``NOT_HELD``), whose
trade to zero counts against the turnover, c_i changes sign. Names that fail are added (and
when the subset cannot meet the limits at all, twice as many) and the reduced problem solved
again; after ``MAX_ROUNDS`` or any solver trouble the caller
solves the full problem. The optimum is the full problem's, not an approximation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from prometheus_dagster.engines.portfolio.problem import PreparedProblem, present
from prometheus_dagster.engines.portfolio.qp import (
    INFEASIBLE,
    QP,
    ClarabelCache,
    QPSolution,
    assemble,
)

MIN_NAMES = 150        # below this the full problem is solved directly
KEEP_FRACTION = 0.1    # share of the screenable names kept by attractiveness
MAX_ROUNDS = 4
CERTIFICATE_TOL = 1e-8  # in the scaled objective's units (coefficients of order one)
NOT_HELD = 1e-6         # |w_prev| below this: a name the solver left at zero last time


def restrict(p: PreparedProblem, keep: np.ndarray) -> PreparedProblem:
    """The problem on the names ``keep`` (sorted positions); the others held at zero (what
    they still trade to get there counts against the turnover limit)."""
    groups = tuple((g, m[keep], lo, hi) for g, m, lo, hi in p.groups)
    budgeted = None if p.budgeted is None else (p.budgeted[0][keep], p.budgeted[1])
    turnover = p.turnover
    if turnover is not None:
        out = np.ones(p.n, dtype=bool)
        out[keep] = False
        turnover = turnover - float(np.abs(p.w_prev[out]).sum())
    return replace(p, n=keep.size, mu=p.mu[keep], B=p.B[keep], D=p.D[keep],
                   w_prev=p.w_prev[keep], cost=p.cost[keep], lower=p.lower[keep],
                   upper=p.upper[keep], groups=groups, budgeted=budgeted, turnover=turnover,
                   names=tuple(p.names[i] for i in keep))


def screenable(p: PreparedProblem) -> np.ndarray:
    """Names that may stay out: lower bound exactly 0, a positive upper bound, not held
    (|w_prev| at most ``NOT_HELD``)."""
    return (p.lower == 0.0) & (p.upper > 0.0) & (np.abs(p.w_prev) <= NOT_HELD)


def attractiveness(p: PreparedProblem) -> np.ndarray:
    """Marginal utility of buying a little of each name on top of the current book:
    mu - cost - 2 lambda (Sigma w_prev), the constraints' prices left out."""
    marginal_risk = p.B @ (p.F @ (p.B.T @ p.w_prev)) + p.D * p.w_prev
    return p.mu - p.cost - 2.0 * p.lam * marginal_risk


def _ranked(p: PreparedProblem, out: np.ndarray) -> np.ndarray:
    candidates = np.flatnonzero(out)
    return candidates[np.argsort(-attractiveness(p)[candidates], kind="stable")]


def _first_keep(p: PreparedProblem, out: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    keep = ~out
    keep[ranked[:max(int(np.ceil(KEEP_FRACTION * ranked.size)), 20)]] = True
    for _, mask, lo, _ in p.groups:  # a group floor needs members to meet it
        if lo > 0:
            keep[ranked[mask[ranked] > 0][:5]] = True
    return keep


def violations(p: PreparedProblem, left_out: np.ndarray, qp: QP, sol: QPSolution
               ) -> np.ndarray:
    """Positions (in ``left_out``) of names whose optimality at zero the duals disprove."""
    z = sol.duals
    if z is None:
        raise ValueError("violations needs the duals of a solved reduced problem")
    s = qp.scale
    g = -s * p.mu[left_out] + p.B[left_out] @ z[:p.k]
    for key in ("budget", "gross"):
        if key in qp.shared:
            g = g + z[qp.shared[key]]
    if "budgeted" in qp.shared:
        g = g + present(p.budgeted, "budgeted")[0][left_out] * z[qp.shared["budgeted"]]
    for (_, mask, _, _), (hi_row, lo_row) in zip(p.groups, qp.group_rows, strict=True):
        dual = (z[hi_row] if hi_row >= 0 else 0.0) - (z[lo_row] if lo_row >= 0 else 0.0)
        g = g + mask[left_out] * dual
    c = np.zeros(left_out.size)
    if qp.has_trades:
        c = s * p.cost[left_out] + (z[qp.shared["turnover"]] if "turnover" in qp.shared
                                    else 0.0)
        # a name still holding a sliver sells it to reach 0: buying back saves that trade
        c = np.where(p.w_prev[left_out] > 0, -c, c)
    return np.flatnonzero(g + c < -CERTIFICATE_TOL)


def screened_solve(p: PreparedProblem, cache: ClarabelCache
                   ) -> tuple[np.ndarray, QPSolution] | None:
    """(full weights, the last reduced solution) proven optimal, or None (solve it whole)."""
    out = screenable(p)
    if p.n < MIN_NAMES or out.sum() < p.n // 4:
        return None
    ranked = _ranked(p, out)
    keep = _first_keep(p, out, ranked)
    iterations = 0
    for _ in range(MAX_ROUNDS):
        idx = np.flatnonzero(keep)
        sub = restrict(p, idx)
        qp = assemble(sub)
        sol = cache.solve(qp, sub.n)
        iterations += sol.iterations
        if sol.status in INFEASIBLE:
            # the subset cannot meet the limits the full book can: twice as many names
            extra = ranked[~keep[ranked]]
            keep[extra[:max(int(keep.sum()), 1)]] = True
            continue
        if sol.weights is None or sol.duals is None:
            return None
        left_out = np.flatnonzero(~keep)
        bad = violations(p, left_out, qp, sol)
        if bad.size == 0:
            w = np.zeros(p.n)
            w[idx] = sol.weights
            sol.iterations = iterations
            return w, sol
        keep[left_out[bad]] = True
    return None
