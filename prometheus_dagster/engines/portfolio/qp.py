"""The factor-form problem as one sparse QP, assembled with numpy and handed to Clarabel
directly (no modelling layer on the hot path).

Variables x = [w (n), y (k), t (trades of the free names), g (gross)]. |w_i| is linear
wherever the bounds fix its sign (w_i when lower_i >= 0, -w_i when upper_i <= 0), so only the
names whose bounds straddle zero get g_i >= |w_i|: a long-only book has no g at all. A name
whose bounds are equal is fixed by an equality row (its trade is a constant).

    minimise  s (lambda (y'F y + sum D w^2) - mu'w + cost't)
    subject to  B'w - y = 0, sum w = budget, w_i = l_i (fixed names)          (zero cone)
                l <= w <= u, |w - w_prev| <= t, sum t <= turnover, groups,
                factor limits on y, gross and budgeted sums of |w|            (nonneg cone)

``s`` (``objective_scale``) brings the objective's coefficients to order one; it never
changes the optimal weights. The sparsity pattern depends only on the structure (names,
which bounds are finite or fixed, group and budgeted membership, which limits exist), never
on the current holdings, so consecutive dates of one book reuse one solver
(``ClarabelCache``). Clarabel is an interior-point method: it has no warm start of its
iterates.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.sparse as sp

from prometheus_dagster.engines.portfolio.problem import PreparedProblem, present

CLARABEL_SETTINGS: dict[str, float | int | bool] = {
    "tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 200,
    "verbose": False, "presolve_enable": False}

FAST: dict[str, bool] = {"iterative_refinement_enable": False, "equilibrate_enable": False}
SOLVED = ("Solved", "AlmostSolved")
INFEASIBLE = ("PrimalInfeasible", "AlmostPrimalInfeasible")
UNBOUNDED = ("DualInfeasible", "AlmostDualInfeasible")


def objective_scale(p: PreparedProblem) -> float:
    """Positive factor the objective is multiplied by so its coefficients are of order one
    (daily returns and variances of 1e-4 would otherwise sit at the solvers' tolerances).
    It changes the objective's value inside the solver, never the optimal weights."""
    diag = np.sum((p.B @ p.L) ** 2, axis=1) + p.D
    size = max(float(np.abs(p.mu).max()), p.lam * float(diag.max()), float(p.cost.max()))
    return 1.0 / size if size > 0 else 1.0


class _Rows:
    """COO triplets of the constraint matrix, appended block by block."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.rhs: list[np.ndarray] = []
        self.count = 0

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float,
            rhs: np.ndarray | float, n_rows: int) -> None:
        self.rows.append(rows + self.count)
        self.cols.append(cols)
        self.vals.append(vals if isinstance(vals, np.ndarray) else np.full(rows.size, vals))
        self.rhs.append(rhs if isinstance(rhs, np.ndarray) else np.full(n_rows, rhs))
        self.count += n_rows

    def sum_rows(self, masks: np.ndarray, signs: np.ndarray, rhs: np.ndarray) -> None:
        """One row sign_r * sum(x[masks[r]]) <= rhs_r per row of the 0/1 matrix ``masks``
        (columns of w)."""
        rows, cols = np.nonzero(masks)
        self.add(rows, cols, signs[rows], rhs, masks.shape[0])

    def sum_row(self, cols: np.ndarray, vals: np.ndarray | float, rhs: float) -> None:
        self.add(np.zeros(cols.size, dtype=np.int64), cols, vals, rhs, 1)


@dataclass
class QP:
    """The assembled problem: minimise x'Px/2 + q'x s.t. Ax + s = b, s in the cones."""

    P: sp.csc_matrix
    q: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    n_zero: int
    n_nonneg: int
    n_vars: int
    scale: float
    shared: dict[str, int]       # row of the budget, turnover, gross and budgeted sums
    group_rows: np.ndarray       # per group: row of its max, row of its min (-1: none)
    has_trades: bool             # trade variables exist (a turnover limit or costs)

    def cones(self) -> list:
        out = []
        if self.n_zero:
            out.append(clarabel.ZeroConeT(self.n_zero))
        if self.n_nonneg:
            out.append(clarabel.NonnegativeConeT(self.n_nonneg))
        return out


def _abs_terms(lower: np.ndarray, upper: np.ndarray, anchor: np.ndarray, split: np.ndarray,
               first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(columns, coefficients, constant) with |w_i - anchor_i| = coef_i x[col_i] + const_i
    for every name in name order: w's own column where the bounds fix the sign, the split
    variable (columns from ``first``) for the names in ``split``. The constants are summed."""
    cols = np.arange(lower.size, dtype=np.int64)
    coef = np.where(lower >= anchor, 1.0, -1.0)
    const = -coef * anchor
    cols[split] = first + np.arange(split.size)
    coef[split] = 1.0
    const[split] = 0.0
    return cols, coef, const


def _straddling(lower: np.ndarray, upper: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Names whose bounds leave the sign of w open."""
    return np.flatnonzero((lower < 0) & (upper > 0) & ~fixed)


def _split_rows(rows: _Rows, split: np.ndarray, first: int, anchor: np.ndarray) -> None:
    """v_i >= |w_i - anchor_i| for the split names: w - v <= anchor, -w - v <= -anchor."""
    m = split.size
    r = np.arange(m)
    v = first + r
    rows.add(np.r_[r, r], np.r_[split, v], np.r_[np.ones(m), -np.ones(m)], anchor[split], m)
    rows.add(np.r_[r, r], np.r_[split, v], -1.0, -anchor[split], m)


def assemble(p: PreparedProblem) -> QP:
    """The QP of ``p`` (see the module docstring)."""
    n, k = p.n, p.k
    fixed = np.isfinite(p.lower) & (p.lower == p.upper)
    use_turnover = p.turnover is not None
    use_costs = p.has_costs
    use_gross = p.gross is not None
    use_budgeted = p.budgeted is not None
    none = np.empty(0, dtype=np.int64)
    zeros = np.zeros(n)
    # Every free name gets a trade variable (with a turnover limit; else every free name
    # with a cost), whatever it holds now: the structure, and so the cached solver, does not
    # change with the holdings.
    t_split = none
    if use_turnover:
        t_split = np.flatnonzero(~fixed)
    elif use_costs:
        t_split = np.flatnonzero(~fixed & (p.cost > 0))
    g_split = _straddling(p.lower, p.upper, fixed) if (use_gross or use_budgeted) else none
    t0 = n + k
    g0 = t0 + t_split.size
    n_vars = g0 + g_split.size
    ids = np.arange(n)

    shared: dict[str, int] = {}  # rows every name enters (see ``screened``)
    zero = _Rows()
    zero.add(np.r_[np.repeat(np.arange(k), n), np.arange(k)],
             np.r_[np.tile(ids, k), n + np.arange(k)], np.r_[p.B.T.ravel(), -np.ones(k)],
             0.0, k)
    if p.budget is not None:
        shared["budget"] = zero.count
        zero.sum_row(ids, 1.0, p.budget)
    if fixed.any():
        idx = np.flatnonzero(fixed)
        zero.add(np.arange(idx.size), idx, 1.0, p.lower[idx], idx.size)

    ineq = _Rows()
    for values, sign in ((p.upper, 1.0), (p.lower, -1.0)):
        idx = np.flatnonzero(np.isfinite(values) & ~fixed)
        if idx.size:
            ineq.add(np.arange(idx.size), idx, sign, sign * values[idx], idx.size)
    _split_rows(ineq, t_split, t0, p.w_prev)
    trade = _abs_terms(p.lower, p.upper, p.w_prev, t_split, t0)
    if use_turnover:
        cols, coef, const = trade
        shared["turnover"] = ineq.count
        ineq.sum_row(cols, coef, present(p.turnover, "turnover") - const.sum())
    if use_gross or use_budgeted:
        _split_rows(ineq, g_split, g0, zeros)
        cols, coef, _ = _abs_terms(p.lower, p.upper, zeros, g_split, g0)
        if use_gross:
            shared["gross"] = ineq.count
            ineq.sum_row(cols, coef, present(p.gross, "gross"))
        if use_budgeted:
            budget_mask, budget_cap = present(p.budgeted, "budgeted")
            inside = budget_mask > 0
            shared["budgeted"] = ineq.count
            ineq.sum_row(cols[inside], coef[inside], budget_cap)
    group_rows = np.full((len(p.groups), 2), -1, dtype=np.int64)  # (max row, min row)
    if p.groups:
        masks = np.array([m for _, m, _, _ in p.groups])
        lo = np.array([g[2] for g in p.groups])
        hi = np.array([g[3] for g in p.groups])
        up, down = np.isfinite(hi), np.isfinite(lo)
        first = ineq.count
        group_rows[up, 0] = first + np.arange(up.sum())
        group_rows[down, 1] = first + up.sum() + np.arange(down.sum())
        ineq.sum_rows(np.concatenate([masks[up], masks[down]]),
                      np.r_[np.ones(up.sum()), -np.ones(down.sum())], np.r_[hi[up], -lo[down]])
    if p.factor_limits:
        cols = np.array([j for j, _, _ in p.factor_limits]) + n
        lo = np.array([f[1] for f in p.factor_limits])
        hi = np.array([f[2] for f in p.factor_limits])
        up, down = np.isfinite(hi), np.isfinite(lo)
        c = np.r_[cols[up], cols[down]]
        ineq.add(np.arange(c.size), c, np.r_[np.ones(up.sum()), -np.ones(down.sum())],
                 np.r_[hi[up], -lo[down]], c.size)

    n_zero, n_ineq = zero.count, ineq.count
    rows = np.concatenate(zero.rows + [r + n_zero for r in ineq.rows])
    cols = np.concatenate(zero.cols + ineq.cols)
    vals = np.concatenate(zero.vals + ineq.vals)
    A = sp.csc_matrix((vals, (rows, cols)), shape=(n_zero + n_ineq, n_vars))
    b = np.concatenate(zero.rhs + ineq.rhs) if n_zero + n_ineq else np.empty(0)

    scale = objective_scale(p)
    two_ls = 2.0 * scale * p.lam
    fr, fc = np.triu_indices(k)
    P = sp.csc_matrix((np.r_[two_ls * p.D, two_ls * p.F[fr, fc]],
                       (np.r_[ids, n + fr], np.r_[ids, n + fc])), shape=(n_vars, n_vars))
    q = np.zeros(n_vars)
    q[:n] = -scale * p.mu
    if use_costs:
        # a fixed name's cost is a constant; a name without a trade variable has no cost
        cols, coef, _ = trade
        priced = cols >= t0
        q[cols[priced]] += scale * p.cost[priced] * coef[priced]
    ineq_shared = {key: row + n_zero for key, row in shared.items() if key != "budget"}
    if "budget" in shared:
        ineq_shared["budget"] = shared["budget"]
    group_rows[group_rows >= 0] += n_zero
    return QP(P, q, A, b, n_zero, n_ineq, n_vars, scale, ineq_shared, group_rows,
              bool(use_turnover or use_costs))


@dataclass
class QPSolution:
    weights: np.ndarray | None
    status: str
    iterations: int
    solve_seconds: float
    reused: bool
    duals: np.ndarray | None = None


def _settings(extra: dict) -> clarabel.DefaultSettings:
    opts = clarabel.DefaultSettings()
    for key, value in {**CLARABEL_SETTINGS, **extra}.items():
        setattr(opts, key, value)
    return opts


def pattern_key(qp: QP) -> bytes:
    """Digest of the sparsity patterns and cone sizes: equal keys mean the solver built for
    one problem can take the other's numbers in place."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (qp.A.indptr, qp.A.indices, qp.P.indptr, qp.P.indices):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(np.array([qp.n_zero, qp.n_nonneg, qp.n_vars]).tobytes())
    return h.digest()


class ClarabelCache:
    """Clarabel solvers by sparsity pattern, least recently used first out. A problem with
    the pattern of a cached solver updates its P, q, A and b in place, which skips the
    symbolic analysis of the KKT system (a third of a fresh solve at 500 names).

    Solves run without iterative refinement of the KKT solutions (a third of each
    iteration's time; the optimum agrees within 1e-8 on the benchmark problems) and without
    Clarabel's equilibration (the objective is already scaled; an updated solver would keep
    the scaling of the first problem it was built for, so cached and fresh solves would
    differ in the last digits). A solve that does not end Solved is repeated with a fresh
    solver, refinement and equilibration on, before its status is believed."""

    def __init__(self, size: int = 16):
        self.size = size
        self._solvers: OrderedDict[bytes, clarabel.DefaultSolver] = OrderedDict()

    def clear(self) -> None:
        self._solvers.clear()

    def solve(self, qp: QP, n: int) -> QPSolution:
        key = pattern_key(qp)
        t0 = time.perf_counter()
        solver = self._solvers.get(key)
        reused = solver is not None
        if solver is not None:
            self._solvers.move_to_end(key)
            solver.update(P=qp.P.data, q=qp.q, A=qp.A.data, b=qp.b)
        else:
            solver = clarabel.DefaultSolver(qp.P, qp.q, qp.A, qp.b, qp.cones(),
                                            _settings(FAST))
            self._solvers[key] = solver
            while len(self._solvers) > self.size:
                self._solvers.popitem(last=False)
        sol = solver.solve()
        status = str(sol.status)
        iterations = int(sol.iterations)
        if status != "Solved":
            solver = clarabel.DefaultSolver(qp.P, qp.q, qp.A, qp.b, qp.cones(), _settings({}))
            sol = solver.solve()
            status = str(sol.status)
            iterations += int(sol.iterations)
        solved = status in SOLVED
        weights = np.array(sol.x[:n], dtype=float) if solved else None
        duals = np.array(sol.z, dtype=float) if solved else None
        return QPSolution(weights, status, iterations, time.perf_counter() - t0, reused,
                          duals)
