"""Portfolio optimiser: analytic optima, brute force, factor vs dense form, random feasible
problems, determinism and warm starts, infeasibility diagnosis, binding constraints."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_dagster.engines.portfolio import (
    InfeasibleProblemError,
    OptimizationProblem,
    ProblemValidationError,
    RiskModel,
    clear_cache,
    constraint_violations,
    diagnose_infeasibility,
    optimize,
    optimize_dense,
    prepare,
)
from prometheus_dagster.engines.portfolio.formulation import build


def random_risk(rng: np.random.Generator, n: int, k: int) -> RiskModel:
    a = rng.normal(size=(k, k)) * 0.1
    return RiskModel(exposures=rng.normal(size=(n, k)), factor_cov=a @ a.T + 0.001 * np.eye(k),
                     specific_var=rng.uniform(0.01, 0.06, n))


def objective(p, w: np.ndarray) -> float:
    sigma = p.B @ p.F @ p.B.T + np.diag(p.D)
    return float(p.mu @ w - p.lam * w @ sigma @ w - p.cost @ np.abs(w - p.w_prev))


# --- analytic optima --------------------------------------------------------------------

def test_unconstrained_matches_closed_form():
    rng = np.random.default_rng(1)
    risk = random_risk(rng, 8, 3)
    mu = rng.normal(0, 0.05, 8)
    lam = 3.0
    res = optimize(OptimizationProblem(mu, risk, lam, budget=None, lower=-np.inf,
                                       upper=np.inf))
    expected = np.linalg.solve(risk.covariance(), mu) / (2 * lam)
    np.testing.assert_allclose(res.weights, expected, rtol=1e-6, atol=1e-9)
    assert res.binding == []


def test_budget_equality_matches_lagrangian():
    rng = np.random.default_rng(2)
    risk = random_risk(rng, 10, 2)
    mu = rng.normal(0, 0.05, 10)
    lam, budget = 2.5, 1.0
    res = optimize(OptimizationProblem(mu, risk, lam, budget=budget, lower=-np.inf,
                                       upper=np.inf))
    inv = np.linalg.inv(risk.covariance())
    ones = np.ones(10)
    nu = (ones @ inv @ mu - 2 * lam * budget) / (ones @ inv @ ones)
    expected = inv @ (mu - nu * ones) / (2 * lam)
    np.testing.assert_allclose(res.weights, expected, rtol=1e-6, atol=1e-9)
    assert res.binding == ["budget"]
    assert res.objective == pytest.approx(objective(prepare(
        OptimizationProblem(mu, risk, lam, budget=1.0, lower=-np.inf, upper=np.inf)),
        expected), rel=1e-9)


# --- brute force ------------------------------------------------------------------------

def batch_objective(p, w: np.ndarray) -> np.ndarray:
    sigma = p.B @ p.F @ p.B.T + np.diag(p.D)
    return (w @ p.mu - p.lam * np.einsum("ij,jk,ik->i", w, sigma, w)
            - np.abs(w - p.w_prev) @ p.cost)


def batch_feasible(p, w: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    ok = ((w >= p.lower - tol) & (w <= p.upper + tol)).all(axis=1)
    for _, mask, lo, hi in p.groups:
        ok &= (w @ mask >= lo - tol) & (w @ mask <= hi + tol)
    if p.turnover is not None:
        ok &= np.abs(w - p.w_prev).sum(axis=1) <= p.turnover + tol
    return ok


def brute_force_3(p, steps: int = 201, zooms: int = 30) -> tuple[float, np.ndarray]:
    """Best feasible point over (w0, w1) with w2 = budget - w0 - w1 (concave objective on a
    convex set: a grid, then grids zoomed around the best point)."""
    centre, half = np.array([0.5, 0.5]), 1.0
    best_val, best_w = -np.inf, None
    for _ in range(zooms):
        a, b = np.meshgrid(*(np.linspace(c - half, c + half, steps) for c in centre))
        w = np.column_stack([a.ravel(), b.ravel(), p.budget - a.ravel() - b.ravel()])
        vals = np.where(batch_feasible(p, w), batch_objective(p, w), -np.inf)
        i = int(np.argmax(vals))
        if vals[i] > best_val:
            best_val, best_w = float(vals[i]), w[i]
        centre, half = best_w[:2], half * 4 / steps
    return best_val, best_w


@pytest.mark.parametrize("case", ["group", "turnover", "costs"])
def test_three_names_match_brute_force(case):
    rng = np.random.default_rng({"group": 3, "turnover": 4, "costs": 5}[case])
    risk = random_risk(rng, 3, 2)
    mu = np.array([0.08, 0.05, 0.03])
    kwargs = dict(lower=0.0, upper=0.7)
    if case == "group":
        kwargs["groups"] = {"AB": (np.array([1.0, 1.0, 0.0]), 0.0, 0.6)}
    elif case == "turnover":
        kwargs.update(w_prev=np.array([0.1, 0.2, 0.7]), turnover_limit=0.3)
    else:
        kwargs.update(w_prev=np.array([0.2, 0.5, 0.3]), cost_bps=np.array([300.0, 50, 10]),
                      groups={"BC": (np.array([0.0, 1.0, 1.0]), 0.45, 1.0)})
    problem = OptimizationProblem(mu, risk, 1.5, **kwargs)
    p = prepare(problem)
    res = optimize(problem)
    best_val, best_w = brute_force_3(p, steps=201, zooms=14)
    assert res.objective == pytest.approx(best_val, rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(res.weights, best_w, atol=1e-5)


def test_two_names_budget_line_search():
    risk = RiskModel(np.array([[1.0], [0.5]]), np.array([[0.04]]), np.array([0.02, 0.03]))
    problem = OptimizationProblem(np.array([0.3, 0.0]), risk, 4.0, lower=0.1, upper=0.65,
                                  w_prev=np.array([0.5, 0.5]), turnover_limit=0.2)
    p = prepare(problem)
    a = np.linspace(0.0, 1.0, 1_000_001)
    w = np.column_stack([a, 1 - a])
    vals = np.where(batch_feasible(p, w), batch_objective(p, w), -np.inf)
    res = optimize(problem)
    assert res.objective == pytest.approx(vals.max(), rel=1e-6)
    assert res.weights[0] == pytest.approx(0.6, abs=1e-6)  # the turnover limit binds
    assert "turnover" in res.binding


# --- factor vs dense --------------------------------------------------------------------

@pytest.mark.parametrize("seed", [10, 11, 12])
def test_factor_form_equals_dense(seed):
    rng = np.random.default_rng(seed)
    n, k = 40, 4
    w_prev = rng.dirichlet(np.ones(n))
    problem = OptimizationProblem(
        rng.normal(0, 0.05, n), random_risk(rng, n, k), 2.0, w_prev=w_prev, cost_bps=15.0,
        upper=0.08, turnover_limit=0.6,
        groups={"g0": ((np.arange(n) % 3 == 0).astype(float), 0.2, 0.4)},
        factor_limits={1: (-0.3, 0.3)},
        budgeted=((np.arange(n) < 5).astype(float), 0.1))
    fac, den = optimize(problem), optimize_dense(problem)
    np.testing.assert_allclose(fac.weights, den.weights, atol=1e-6)
    assert fac.objective == pytest.approx(den.objective, rel=1e-7)


def test_cached_problem_is_dpp():
    rng = np.random.default_rng(0)
    problem = OptimizationProblem(rng.normal(0, 0.05, 6), random_risk(rng, 6, 2), 1.0,
                                  w_prev=np.full(6, 1 / 6), cost_bps=5.0, turnover_limit=0.5,
                                  gross_limit=1.0, groups={"a": (np.ones(6), 0.5, 1.0)},
                                  factor_limits={0: (-1, 1)}, budgeted=(np.ones(6), 1.0))
    assert build(prepare(problem), "factor").problem.is_dpp()


# --- random feasible problems -----------------------------------------------------------

@st.composite
def feasible_problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    n, k = draw(st.integers(5, 30)), draw(st.integers(2, 4))
    rng = np.random.default_rng(seed)
    long_only = draw(st.booleans())
    w0 = rng.dirichlet(np.ones(n)) if long_only else rng.normal(0, 0.05, n)
    slack = lambda: rng.uniform(0.0, 0.05)  # noqa: E731
    lower = w0 - rng.uniform(0, 0.05, n) if not long_only else np.zeros(n)
    upper = w0 + rng.uniform(0, 0.1, n)
    risk = random_risk(rng, n, k)
    kwargs: dict = {"budget": float(w0.sum()) if draw(st.booleans()) else None}
    if draw(st.booleans()):
        kwargs["gross_limit"] = float(np.abs(w0).sum() + slack())
    groups = {}
    for g in range(draw(st.integers(0, 3))):
        mask = (rng.random(n) < 0.4).astype(float)
        groups[f"g{g}"] = (mask, float(mask @ w0 - slack()), float(mask @ w0 + slack()))
    kwargs["groups"] = groups
    expo = risk.exposures.T @ w0
    kwargs["factor_limits"] = {j: (float(expo[j] - slack()), float(expo[j] + slack()))
                               for j in range(k) if rng.random() < 0.5}
    if draw(st.booleans()):
        w_prev = w0 + rng.normal(0, 0.02, n)
        kwargs.update(w_prev=w_prev, cost_bps=rng.uniform(0, 30, n),
                      turnover_limit=float(np.abs(w0 - w_prev).sum() + slack()))
    if draw(st.booleans()):
        mask = (rng.random(n) < 0.3).astype(float)
        kwargs["budgeted"] = (mask, float(mask @ np.abs(w0) + slack()))
    return OptimizationProblem(rng.normal(0, 0.05, n), risk, float(rng.uniform(0.5, 10)),
                               lower=lower, upper=upper, **kwargs)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feasible_problems())
def test_random_feasible_problems_respect_constraints(problem):
    res = optimize(problem)
    violations = constraint_violations(problem, res.weights)
    assert max(violations.values()) <= 1e-6, violations
    assert res.objective == pytest.approx(objective(prepare(problem), res.weights), rel=1e-9,
                                          abs=1e-12)


# --- determinism and warm starts --------------------------------------------------------

def _dated_problems(dates: int = 4, n: int = 60, k: int = 3):
    rng = np.random.default_rng(7)
    risk = random_risk(rng, n, k)
    sectors = np.arange(n) % 5
    groups = {f"s{s}": ((sectors == s).astype(float), 0.0, 0.3) for s in range(5)}
    mu = rng.normal(0, 0.05, n)
    for _ in range(dates):
        mu = 0.9 * mu + rng.normal(0, 0.02, n)
        yield lambda w_prev, mu=mu: OptimizationProblem(
            mu, risk, 3.0, w_prev=w_prev, cost_bps=10.0, upper=0.05, turnover_limit=0.2,
            groups=groups)


def test_repeated_solves_are_identical():
    problem = next(_dated_problems())(np.full(60, 1 / 60))
    first = optimize(problem)
    clear_cache()
    second = optimize(problem)
    third = optimize(problem)
    assert np.array_equal(first.weights, second.weights)
    assert np.array_equal(second.weights, third.weights)


@pytest.mark.parametrize("solver", ["OSQP", "CLARABEL"])
def test_warm_started_dates_equal_cold_solves(solver):
    w_prev, warm = np.full(60, 1 / 60), None
    for make in _dated_problems():
        problem = make(w_prev)
        warm = optimize(problem, solver=solver, warm_start=warm)
        clear_cache()
        cold = optimize_dense(problem)
        np.testing.assert_allclose(warm.weights, cold.weights, atol=1e-6)
        assert warm.objective == pytest.approx(cold.objective, rel=1e-6)
        w_prev = warm.weights


def test_cached_solver_updated_in_place_equals_fresh_solves():
    # successive dates reuse one Clarabel solver (same structure, new numbers); each date's
    # weights must be bit-identical to a solve on a fresh solver
    w_prev, cached = np.full(60, 1 / 60), []
    clear_cache()
    problems = []
    for make in _dated_problems(dates=5):
        problems.append(make(w_prev))
        res = optimize(problems[-1])
        cached.append(res)
        w_prev = res.weights
    assert sum(r.iterations > 0 for r in cached) == len(cached)
    for problem, res in zip(problems, cached, strict=True):
        clear_cache()
        assert np.array_equal(optimize(problem).weights, res.weights)


def test_direct_qp_agrees_with_the_cvxpy_formulation_long_short():
    # names straddling zero get split variables for the gross and budgeted sums
    rng = np.random.default_rng(11)
    n = 40
    problem = OptimizationProblem(
        rng.normal(0, 0.05, n), random_risk(rng, n, 3), 2.0, w_prev=rng.normal(0, 0.02, n),
        cost_bps=rng.uniform(0, 20, n), budget=0.0, lower=-0.1, upper=0.1, gross_limit=1.5,
        groups={"g": ((np.arange(n) % 3 == 0).astype(float), -0.1, 0.1)},
        factor_limits={0: (-0.05, 0.05)}, turnover_limit=1.0,
        budgeted=((np.arange(n) < 8).astype(float), 0.2))
    direct = optimize(problem)
    via_cvxpy = optimize(problem, solver="CVXPY:CLARABEL")
    assert via_cvxpy.solver == "CLARABEL"
    assert direct.objective == pytest.approx(optimize_dense(problem).objective, rel=1e-7)
    assert direct.objective == pytest.approx(via_cvxpy.objective, rel=1e-7)
    # the optimum is nearly flat along some directions: weights agree less tightly
    np.testing.assert_allclose(direct.weights, via_cvxpy.weights, atol=1e-4)
    assert max(constraint_violations(problem, direct.weights).values()) <= 1e-7
    assert "budget" in direct.binding


# --- infeasibility ----------------------------------------------------------------------

def _small(**kwargs) -> OptimizationProblem:
    rng = np.random.default_rng(0)
    names = tuple("ABCDE")
    return OptimizationProblem(rng.normal(0, 0.05, 5), random_risk(rng, 5, 2), 1.0,
                               names=names, **kwargs)


def test_lower_bounds_above_budget():
    with pytest.raises(InfeasibleProblemError, match="lower bounds") as err:
        optimize(_small(lower=0.3))
    assert "budget" in str(err.value)


def test_group_min_above_member_uppers():
    problem = _small(upper=0.3, groups={"Tech": (np.array([1.0, 1, 0, 0, 0]), 0.7, 1.0)})
    with pytest.raises(InfeasibleProblemError, match=r"group\[Tech\]\.min"):
        optimize(problem)


def test_turnover_too_small():
    problem = _small(upper=0.3, w_prev=np.array([0.6, 0.1, 0.1, 0.1, 0.1]), turnover_limit=0.2)
    with pytest.raises(InfeasibleProblemError, match="turnover") as err:
        optimize(problem)
    assert err.value.conflicts == diagnose_infeasibility(problem)


def test_conflict_found_by_dropping_families():
    # Each check alone passes; together a group max and a factor floor clash.
    risk = RiskModel(np.array([[1.0], [1.0], [0.0], [0.0]]), np.array([[0.04]]),
                     np.full(4, 0.02))
    problem = OptimizationProblem(np.full(4, 0.05), risk, 1.0, upper=0.6,
                                  groups={"AB": (np.array([1.0, 1, 0, 0]), 0.0, 0.3)},
                                  factor_limits={0: (0.5, 1.0)})
    with pytest.raises(InfeasibleProblemError) as err:
        optimize(problem)
    text = str(err.value)
    assert "group[AB]" in text and "factor[0]" in text


def test_feasible_problem_has_no_conflicts():
    assert diagnose_infeasibility(_small(upper=0.5)) == []


# --- binding constraints and validation -------------------------------------------------

def test_binding_names_the_active_bound():
    risk = RiskModel(np.zeros((3, 1)), np.array([[0.01]]), np.full(3, 0.04))
    problem = OptimizationProblem(np.array([0.20, 0.01, 0.0]), risk, 1.0, upper=0.5,
                                  names=("AAPL", "MSFT", "XOM"))
    res = optimize(problem)
    assert res.weights[0] == pytest.approx(0.5, abs=1e-7)
    assert "upper[AAPL]" in res.binding and "budget" in res.binding
    assert not any(b.endswith("[MSFT]") for b in res.binding)


@pytest.mark.parametrize("kwargs, field", [
    ({"lower": np.array([0.0, 0.5, 0, 0, 0]), "upper": 0.4}, "lower[B]"),
    ({"mu": np.array([0.1, np.nan, 0, 0, 0])}, "mu[1]"),
    ({"w_prev": np.ones(4)}, "w_prev"),
    ({"risk_factor_cov": np.array([[1.0, 0], [0, -1.0]])}, "positive semidefinite"),
    ({"groups": {"G": (np.ones(5), 0.5, 0.2)}}, "groups['G']"),
    ({"factor_limits": {5: (0, 1)}}, "factor_limits key 5"),
])
def test_bad_inputs_name_the_field(kwargs, field):
    rng = np.random.default_rng(0)
    risk = random_risk(rng, 5, 2)
    if "risk_factor_cov" in kwargs:
        risk = RiskModel(risk.exposures, kwargs.pop("risk_factor_cov"), risk.specific_var)
    base = {"mu": rng.normal(0, 0.05, 5), "risk": risk, "risk_aversion": 1.0,
            "names": tuple("ABCDE")}
    with pytest.raises(ProblemValidationError) as err:
        optimize(OptimizationProblem(**{**base, **kwargs}))
    assert field in str(err.value)
    assert isinstance(err.value, ValueError)


def test_validation_is_not_confused_by_itertools():
    # groups iterate in sorted order so group names in messages are stable
    masks = {name: (np.ones(5), 0.0, 1.0) for name in ("b", "a")}
    p = prepare(_small(groups=masks))
    assert [g[0] for g in p.groups] == ["a", "b"]
    assert list(itertools.islice(p.names, 2)) == ["A", "B"]


# --- screening large books ----------------------------------------------------------------

def _large_book(n: int = 320, k: int = 4, seed: int = 21):
    """A long-only book holding 40 names (some others at a sliver left by the solver),
    sectors with floors, a soft-target budget and a binding turnover limit."""
    rng = np.random.default_rng(seed)
    risk = RiskModel(rng.normal(size=(n, k)) * 0.3 + np.r_[1.0, np.zeros(k - 1)],
                     np.diag(rng.uniform(0.01, 0.04, k)), rng.uniform(0.02, 0.2, n))
    w_prev = np.zeros(n)
    held = rng.choice(n, 40, replace=False)
    w_prev[held] = rng.uniform(0.5, 1.5, 40) / 40
    w_prev[held] /= w_prev[held].sum()
    slivers = rng.choice(np.setdiff1d(np.arange(n), held), 10, replace=False)
    w_prev[slivers] = 5e-7
    sectors = rng.integers(0, 6, n)
    return OptimizationProblem(
        rng.normal(0.05, 0.1, n), risk, 4.0, w_prev=w_prev, cost_bps=30.0, upper=0.05,
        groups={f"s{s}": ((sectors == s).astype(float), 0.05, 0.4) for s in range(6)},
        factor_limits={1: (-0.2, 0.2)}, turnover_limit=0.3,
        budgeted=(((rng.random(n) < 0.1) & (w_prev == 0)).astype(float), 0.02))


@pytest.mark.parametrize("seed", [21, 8, 13])
def test_screened_solve_is_the_full_optimum(seed):
    from prometheus_dagster.engines.portfolio.qp import ClarabelCache
    from prometheus_dagster.engines.portfolio.screening import screened_solve

    problem = _large_book(seed=seed)
    p = prepare(problem)
    screened = screened_solve(p, ClarabelCache())
    assert screened is not None  # the book was solved on a subset with a certificate
    res, dense = optimize(problem), optimize_dense(problem)
    np.testing.assert_array_equal(res.weights, screened[0])
    assert res.objective == pytest.approx(dense.objective, rel=1e-7)
    np.testing.assert_allclose(res.weights, dense.weights, atol=1e-5)
    assert max(constraint_violations(problem, res.weights).values()) <= 1e-8
    assert "turnover" in res.binding


def test_certificate_names_the_optimal_names_left_out():
    from prometheus_dagster.engines.portfolio.qp import ClarabelCache, assemble
    from prometheus_dagster.engines.portfolio.screening import restrict, violations

    p = prepare(_large_book(seed=4))
    full = optimize_dense(_large_book(seed=4)).weights
    bought = np.flatnonzero((full > 1e-4) & (p.w_prev == 0))
    assert bought.size >= 3
    keep = np.ones(p.n, dtype=bool)
    keep[bought] = False  # leave out names the optimum buys
    sub = restrict(p, np.flatnonzero(keep))
    qp = assemble(sub)
    sol = ClarabelCache().solve(qp, sub.n)
    flagged = np.flatnonzero(~keep)[violations(p, np.flatnonzero(~keep), qp, sol)]
    assert set(flagged) == set(bought)
