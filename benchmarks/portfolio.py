"""Portfolio optimiser: factor form on a cached, warm-started problem vs the dense
full-covariance formulation, over consecutive dates.

    .venv/bin/python -m benchmarks.portfolio [--names 500] [--factors 10] [--dates 20]

Seeded random but realistic problems: exposures (a market beta around 1 and style factors),
a PSD factor covariance, specific variances, expected returns from the factor model plus
noise, 11 sector groups (each 2%..25%), 0..5% bounds, 20% turnover, 10 bps costs, style
exposure limits, a 2% budget on flagged soft-target names, long-only budget 1. Each date
mu drifts and the previous date's weights become w_prev. Solved (a) in factor form on the
cached problem, warm-started from the previous date (OSQP and Clarabel), and
rebuilt each date without the cache (Clarabel), (b) dense
w'Sigma w built and solved from scratch each date (Clarabel). Reports the mean solve time
per date (first date, which compiles the cached problem, shown apart), the ratio and the
largest objective difference; writes benchmarks/results/portfolio.json.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.common import REPO


def make_dates(names: int, factors: int, dates: int, seed: int):
    """The fixed risk model and constraints, and a function date -> problem."""
    from prometheus_dagster.engines.portfolio import OptimizationProblem, RiskModel

    rng = np.random.default_rng(seed)
    B = rng.normal(0.0, 1.0, (names, factors))
    B[:, 0] = rng.normal(1.0, 0.3, names)
    vols = np.r_[0.16, rng.uniform(0.02, 0.06, factors - 1)] / np.sqrt(252)
    corr = np.corrcoef(rng.normal(size=(factors, 4 * factors)))
    F = corr * np.outer(vols, vols)
    D = (rng.uniform(0.15, 0.45, names) / np.sqrt(252)) ** 2
    risk = RiskModel(B, F, D)
    sector = rng.integers(0, 11, names)
    groups = {f"S{s:02d}": ((sector == s).astype(float), 0.02, 0.25) for s in range(11)}
    factor_limits = {j: (-0.3, 0.3) for j in range(1, min(factors, 4))}
    flagged = (rng.random(names) < 0.05).astype(float)
    premia = rng.normal(0, 2e-4, factors)
    mus, mu = [], B @ premia + rng.normal(0, 3e-4, names)
    for _ in range(dates):
        mu = 0.95 * mu + 0.05 * (B @ premia + rng.normal(0, 3e-4, names))
        mus.append(mu.copy())

    def problem(d: int, w_prev: np.ndarray):
        return OptimizationProblem(
            mus[d], risk, risk_aversion=5.0, w_prev=w_prev, cost_bps=10.0, budget=1.0,
            lower=0.0, upper=0.05, groups=groups, factor_limits=factor_limits,
            turnover_limit=0.2, budgeted=(flagged, 0.02),
            names=tuple(f"N{i:04d}" for i in range(names)))

    return problem


def run_factor(problem, dates: int, names: int, solver: str, cached: bool = True):
    from prometheus_dagster.engines.portfolio import clear_cache, optimize

    clear_cache()
    w_prev, warm, out = np.full(names, 1.0 / names), None, []
    for d in range(dates):
        if not cached:
            clear_cache()
            warm = None
        t0 = time.perf_counter()
        res = optimize(problem(d, w_prev), solver=solver, warm_start=warm)
        out.append((time.perf_counter() - t0, res))
        w_prev, warm = res.weights, res
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", type=int, default=500)
    ap.add_argument("--factors", type=int, default=10)
    ap.add_argument("--dates", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    from prometheus_dagster.engines.portfolio import constraint_violations, optimize_dense

    problem = make_dates(args.names, args.factors, args.dates, args.seed)
    factor = {s: run_factor(problem, args.dates, args.names, s) for s in ("OSQP", "CLARABEL")}
    uncached = run_factor(problem, args.dates, args.names, "CLARABEL", cached=False)
    uncached_mean = float(np.mean([t for t, _ in uncached]))
    # The dense baseline solves the same sequence of problems (w_prev from the factor path).
    path = factor["CLARABEL"]
    dense = []
    for d in range(args.dates):
        w_prev = np.full(args.names, 1.0 / args.names) if d == 0 else path[d - 1][1].weights
        t0 = time.perf_counter()
        res = optimize_dense(problem(d, w_prev))
        dense.append((time.perf_counter() - t0, res))

    dense_mean = float(np.mean([t for t, _ in dense]))
    summary: dict = {"names": args.names, "factors": args.factors, "dates": args.dates,
                     "seed": args.seed, "dense_clarabel_mean_seconds": dense_mean,
                     "factor_clarabel_uncached_mean_seconds": uncached_mean}
    print(f"{args.names} names, {args.factors} factors, {args.dates} dates")
    print(f"dense full covariance (CLARABEL, rebuilt each date): {dense_mean * 1e3:8.1f} ms/date")
    print(f"factor form (CLARABEL, rebuilt each date, no cache):  {uncached_mean * 1e3:8.1f} "
          f"ms/date")
    for solver, runs in factor.items():
        times = np.array([t for t, _ in runs])
        steady = float(times[1:].mean()) if len(times) > 1 else float(times[0])
        obj_diff = max(abs(r.objective - dr.objective) for (_, r), (_, dr) in zip(runs, dense,
                                                                                   strict=True))
        rel_diff = max(abs(r.objective - dr.objective) / abs(dr.objective)
                       for (_, r), (_, dr) in zip(runs, dense, strict=True))
        w_diff = max(float(np.abs(r.weights - dr.weights).max())
                     for (_, r), (_, dr) in zip(runs, dense, strict=True))
        violation = max(max(constraint_violations(problem(d, path[d - 1][1].weights if d else
                                                          np.full(args.names, 1 / args.names)),
                                                  r.weights).values())
                        for d, (_, r) in enumerate(runs)) if solver == "CLARABEL" else None
        iters = [r.iterations for _, r in runs]
        summary[f"factor_{solver.lower()}"] = {
            "first_date_seconds": float(times[0]), "mean_seconds_after_first": steady,
            "mean_seconds_all": float(times.mean()), "speedup_vs_dense": dense_mean / steady,
            "max_abs_objective_diff": obj_diff, "max_rel_objective_diff": rel_diff,
            "max_abs_weight_diff": w_diff, "iterations": iters,
            "max_constraint_violation": violation,
            "mean_binding": float(np.mean([len(r.binding) for _, r in runs])),
            "mean_turnover": float(np.mean([r.turnover for _, r in runs]))}
        print(f"factor form warm ({solver:8s}): first date {times[0] * 1e3:8.1f} ms, then "
              f"{steady * 1e3:8.1f} ms/date -> {dense_mean / steady:5.1f}x faster than dense; "
              f"max |objective diff| {obj_diff:.2e} (rel {rel_diff:.2e}), max |w diff| "
              f"{w_diff:.2e}, iterations {min(iters)}-{max(iters)}")
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "portfolio.json").write_text(json.dumps(summary, indent=2))
    print(f"-> {out / 'portfolio.json'}")


if __name__ == "__main__":
    main()
