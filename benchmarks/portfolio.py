"""Portfolio optimiser: the product's ``optimize`` against cvxportfolio and plain cvxpy on the
same problems, over consecutive dates, in one run.

    .venv/bin/python -m benchmarks.portfolio [--names 500] [--factors 10] [--dates 20]

Seeded random problems in the product's units (annualised volatilities and expected
returns, as ``mu_scale: annualised`` gives them): exposures (a market beta around 1 and
style factors), a PSD factor covariance, specific variances, expected returns from the
factor model plus noise, 11 sector groups (each 2%..25%), 0..5% bounds, 20% one-way
turnover, 10 bps costs per unit traded (times 252/21, as the optimiser sees a 21-day
strategy's costs), style exposure limits, a 2% budget on flagged soft-target names,
long-only budget 1. Each date mu drifts; ``w_prev`` is the previous date's optimum of the
independent dense formulation, so every method solves the very same sequence of problems.

Solved, each date in turn, by:

* the product's ``optimize`` (direct Clarabel QP, cached solver updated in place);
* the product's previous path (the parametrised cvxpy problem on Clarabel,
  ``solver="CVXPY:CLARABEL"``);
* cvxportfolio 1.5.1 ``SinglePeriodOptimization`` (Clarabel) with the same objective and
  constraints (sectors, the soft-target budget and style limits as factor limits), compiled
  once and re-solved per date as its own backtests do (only when the ``bench`` extra is
  installed; GPLv3, never imported by the product);
* the dense full-covariance cvxpy formulation (``optimize_dense``, built per date): the
  accuracy reference.

Reports per method the mean wall and CPU milliseconds per date (the sequence of dates run
``--repeats`` times from a cold cache, per date the fastest pass kept, so a busy machine
disturbs every method alike; the first date, which builds the cached problem, apart), the
ratios against the product measured in the same run, the largest relative objective
difference against the dense reference, and where the product's milliseconds go
(validation, feasibility checks, screening + assembly + Clarabel, result); writes
benchmarks/results/portfolio.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from benchmarks.common import REPO

MU_SCALE = 252 / 21
COST_BPS = 10.0


def make_dates(names: int, factors: int, dates: int, seed: int) -> dict:
    """The fixed risk model and constraints, and the expected returns of every date."""
    from prometheus_dagster.engines.portfolio import RiskModel

    rng = np.random.default_rng(seed)
    B = rng.normal(0.0, 1.0, (names, factors))
    B[:, 0] = rng.normal(1.0, 0.3, names)
    vols = np.r_[0.16, rng.uniform(0.02, 0.06, factors - 1)]
    corr = np.corrcoef(rng.normal(size=(factors, 4 * factors)))
    F = corr * np.outer(vols, vols)
    D = rng.uniform(0.15, 0.45, names) ** 2
    sector = rng.integers(0, 11, names)
    premia = rng.normal(0, 0.03, factors)
    mus, mu = [], B @ premia + rng.normal(0, 0.05, names)
    for _ in range(dates):
        mu = 0.95 * mu + 0.05 * (B @ premia + rng.normal(0, 0.05, names))
        mus.append(mu.copy())
    return {"risk": RiskModel(B, F, D), "B": B, "F": F, "D": D, "mus": mus,
            "sector": sector, "flagged": (rng.random(names) < 0.05).astype(float),
            "style": list(range(1, min(factors, 4))), "names": names}


def problem_of(inst: dict, d: int, w_prev: np.ndarray):
    from prometheus_dagster.engines.portfolio import OptimizationProblem

    groups = {f"S{s:02d}": ((inst["sector"] == s).astype(float), 0.02, 0.25)
              for s in range(11)}
    return OptimizationProblem(
        inst["mus"][d], inst["risk"], risk_aversion=5.0, w_prev=w_prev,
        cost_bps=COST_BPS * MU_SCALE, budget=1.0, lower=0.0, upper=0.05, groups=groups,
        factor_limits={j: (-0.3, 0.3) for j in inst["style"]}, turnover_limit=0.2,
        budgeted=(inst["flagged"], 0.02),
        names=tuple(f"N{i:04d}" for i in range(inst["names"])))


def _timed(fn: Callable[[], np.ndarray]) -> tuple[float, float, np.ndarray]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def cvxportfolio_solver(inst: dict, dates: int):
    """A function date index, w_prev -> weights, on one compiled cvxportfolio policy."""
    import cvxportfolio as cvx
    import pandas as pd

    n = inst["names"]
    assets = [f"N{i:04d}" for i in range(n)]
    universe = pd.Index([*assets, "USDOLLAR"])
    calendar = pd.bdate_range("2024-01-02", periods=dates)
    r_hat = pd.DataFrame(np.array(inst["mus"]), index=calendar, columns=assets)
    sectors = pd.DataFrame({f"S{s:02d}": (inst["sector"] == s).astype(float)
                            for s in range(11)}, index=assets)
    style = pd.DataFrame(inst["B"][:, inst["style"]], index=assets,
                         columns=[f"f{j}" for j in inst["style"]])
    F = pd.DataFrame(inst["B"].T, columns=assets)
    objective = (cvx.ReturnsForecast(r_hat=r_hat)
                 - 5.0 * cvx.FactorModelCovariance(F=F, Sigma_F=pd.DataFrame(inst["F"]),
                                                   d=pd.Series(inst["D"], index=assets))
                 - cvx.TransactionCost(a=COST_BPS * MU_SCALE / 1e4, b=None))
    constraints = [
        cvx.NoCash(), cvx.LongOnly(applies_to_cash=False), cvx.MaxWeights(0.05),
        cvx.FactorMaxLimit(sectors, pd.Series(0.25, index=sectors.columns)),
        cvx.FactorMinLimit(sectors, pd.Series(0.02, index=sectors.columns)),
        cvx.FactorMaxLimit(style, pd.Series(0.3, index=style.columns)),
        cvx.FactorMinLimit(style, pd.Series(-0.3, index=style.columns)),
        cvx.FactorMaxLimit(pd.Series(inst["flagged"], index=assets), 0.02),
        cvx.TurnoverLimit(0.1),  # cvxportfolio's turnover is half the one-way sum
    ]
    policy = cvx.SinglePeriodOptimization(objective, constraints, include_cash_return=False,
                                          solver="CLARABEL")
    policy.initialize_estimator_recursive(universe=universe, trading_calendar=calendar)

    def solve(d: int, w_prev: np.ndarray) -> np.ndarray:
        current = pd.Series(np.r_[w_prev, 1.0 - w_prev.sum()], index=universe)
        w = policy.values_in_time_recursive(
            t=calendar[d], current_weights=current, current_portfolio_value=1.0,
            past_returns=None, past_volumes=None, current_prices=None)
        return np.asarray(w.iloc[:-1], dtype=float)

    return solve


def stage_profile(inst: dict, reference: dict, repeats: int = 3) -> dict[str, float]:
    """Milliseconds per date (fastest pass) of each step of the product's ``optimize``."""
    from prometheus_dagster.engines.portfolio import clear_cache, prepare
    from prometheus_dagster.engines.portfolio.constraints import (
        binding_constraints,
        cheap_conflicts,
    )
    from prometheus_dagster.engines.portfolio.optimizer import _clarabel
    from prometheus_dagster.engines.portfolio.qp import assemble
    from prometheus_dagster.engines.portfolio.screening import screened_solve

    steps = ("validate", "feasibility checks", "QP: screening, assembly, Clarabel",
             "result and binding")
    best = np.full((len(reference["w_prev"]), len(steps)), np.inf)
    for _ in range(repeats):
        clear_cache()
        for d, w_prev in enumerate(reference["w_prev"]):
            t = [time.perf_counter()]
            p = prepare(problem_of(inst, d, w_prev))
            t.append(time.perf_counter())
            cheap_conflicts(p)
            t.append(time.perf_counter())
            screened = screened_solve(p, _clarabel)
            w = screened[0] if screened is not None else \
                _clarabel.solve(assemble(p), p.n).weights
            t.append(time.perf_counter())
            binding_constraints(p, w)
            t.append(time.perf_counter())
            best[d] = np.minimum(best[d], np.diff(t))
    return {k: 1e3 * float(v) for k, v in zip(steps, best[1:].mean(axis=0), strict=True)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", type=int, default=500)
    ap.add_argument("--factors", type=int, default=10)
    ap.add_argument("--dates", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeats", type=int, default=3,
                    help="passes over the dates per method (per date the fastest kept)")
    args = ap.parse_args(argv)

    from prometheus_dagster.engines.portfolio import (
        clear_cache,
        constraint_violations,
        optimize,
        optimize_dense,
        prepare,
    )

    inst = make_dates(args.names, args.factors, args.dates, args.seed)
    w_prev, reference = np.full(args.names, 1.0 / args.names), {"w_prev": [], "objective": []}
    dense_times = []
    for d in range(args.dates):
        reference["w_prev"].append(w_prev)
        wall, cpu, res = _timed(lambda d=d, w=w_prev: optimize_dense(problem_of(inst, d, w)))
        dense_times.append((wall, cpu))
        reference["objective"].append(res.objective)
        w_prev = res.weights

    def objective(d: int, w: np.ndarray) -> float:
        p = prepare(problem_of(inst, d, reference["w_prev"][d]))
        x = p.B.T @ w
        return float(p.mu @ w - p.lam * (x @ p.F @ x + p.D @ (w * w))
                     - p.cost @ np.abs(w - p.w_prev))

    methods: dict[str, Callable[[int, np.ndarray], np.ndarray]] = {
        "product optimize (direct Clarabel)":
            lambda d, w: optimize(problem_of(inst, d, w)).weights,
        "product previous path (cvxpy parameters, Clarabel)":
            lambda d, w: optimize(problem_of(inst, d, w), solver="CVXPY:CLARABEL").weights,
    }
    try:
        import cvxportfolio
        methods[f"cvxportfolio {cvxportfolio.__version__} SinglePeriodOptimization "
                "(Clarabel)"] = cvxportfolio_solver(inst, args.dates)
    except ImportError:
        print("cvxportfolio is not installed: comparison skipped (install the optional extra: "
              "pip install -e '.[bench]')")
    results: dict[str, dict] = {}
    for name, solve in methods.items():
        # the whole sequence of dates, ``repeats`` times from a cold cache; per date the
        # fastest pass is kept (a busy machine disturbs every method alike)
        passes = []
        for _ in range(max(args.repeats, 1)):
            clear_cache()
            passes.append([_timed(lambda s=solve, d=d: s(d, reference["w_prev"][d]))
                           for d in range(args.dates)])
        times, rel, viol = [], [], []
        for d in range(args.dates):
            runs = [run[d] for run in passes]
            times.append((min(r[0] for r in runs), min(r[1] for r in runs)))
            w, ref = runs[-1][2], reference["objective"][d]
            rel.append(abs(objective(d, w) - ref) / abs(ref))
            viol.append(max(constraint_violations(
                problem_of(inst, d, reference["w_prev"][d]), w).values()))
        arr = np.array(times[1:] if len(times) > 1 else times)
        results[name] = {"first_date_ms": 1e3 * times[0][0],
                         "wall_ms_per_date": 1e3 * float(arr[:, 0].mean()),
                         "cpu_ms_per_date": 1e3 * float(arr[:, 1].mean()),
                         "max_rel_objective_diff_vs_dense": float(max(rel)),
                         "max_constraint_violation": float(max(viol))}
    dense = np.array(dense_times)
    results["dense cvxpy formulation (Clarabel, built per date)"] = {
        "first_date_ms": 1e3 * dense_times[0][0],
        "wall_ms_per_date": 1e3 * float(dense[1:, 0].mean()),
        "cpu_ms_per_date": 1e3 * float(dense[1:, 1].mean()),
        "max_rel_objective_diff_vs_dense": 0.0, "max_constraint_violation": None}

    product = results["product optimize (direct Clarabel)"]
    print(f"{args.names} names, {args.factors} factors, {args.dates} dates (warm: mean over "
          f"dates 2..{args.dates})")
    print(f"{'method':<62} {'wall ms':>8} {'cpu ms':>8} {'x product':>10} {'rel obj':>9}")
    for name, r in results.items():
        r["wall_ratio_to_product"] = r["wall_ms_per_date"] / product["wall_ms_per_date"]
        r["cpu_ratio_to_product"] = r["cpu_ms_per_date"] / product["cpu_ms_per_date"]
        print(f"{name:<62} {r['wall_ms_per_date']:8.1f} {r['cpu_ms_per_date']:8.1f} "
              f"{r['wall_ratio_to_product']:9.1f}x {r['max_rel_objective_diff_vs_dense']:9.1e}")
    stages = stage_profile(inst, reference)
    print("product optimize, ms per date by step: "
          + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    summary = {"names": args.names, "factors": args.factors, "dates": args.dates,
               "seed": args.seed, "methods": results, "product_stage_ms": stages}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "portfolio.json").write_text(json.dumps(summary, indent=2))
    print(f"-> {out / 'portfolio.json'}")
    return summary


if __name__ == "__main__":
    main()
