"""Execution simulator: the product's array path (``ArrayBook``, compiled kernel) against
vectorbt's ``Portfolio.from_orders`` on the identical orders and against the product's own
reference loop (``BacktestBroker`` + ``plan_orders``, one order at a time), in one run.

    .venv/bin/python -m benchmarks.execution [--names 500] [--years 5 20] [--rebalance 21]

Seeded random daily bars (geometric random walks with a market factor; open, high, low,
close, volume) for ``names`` instruments over ``years`` x 252 sessions (one market per
value of ``--years``). Every ``rebalance`` sessions new random target weights (summing to
0.95) are decided after the close; the planner turns them into MARKET orders (whole shares,
toward zero) that fill in the next session at the close, with 5 bps slippage and 10 bps
commission, no participation cap.

* array path: planning, fills and daily valuation in one compiled call; the first call of
  the process (numba compilation, or loading its on-disk cache) is reported apart from the
  warm calls (best of ``--repeats``).
* reference loop: the same walk through ``BacktestBroker`` (only for markets of at most
  ``--reference-max-sessions`` sessions; it is the slow baseline).
* vectorbt (optional extra ``bench``): the very same fills as signed share amounts
  (``size_type='amount'``) on the fill sessions, filled at the close with the same slippage
  fraction and fees = commission fraction, ``cash_sharing=True, group_by=True,
  call_seq='auto'`` (sells before buys, its sequencing; the 5% cash buffer keeps its cash
  check from binding). vectorbt does not plan (it replays the orders the simulator sized);
  the array path's time includes the planning and the daily valuation.

Reports the runtimes, the ratios measured in the same run and the largest relative equity
differences (array path vs reference loop and vs vectorbt); writes
benchmarks/results/execution.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date

import numpy as np
import pandas as pd

from benchmarks.common import REPO

CASH0 = 1_000_000.0
SLIPPAGE_BPS = 5.0
COMMISSION_BPS = 10.0


def make_market(names: int, sessions: int, seed: int):
    """(session dates, instrument ids, per-session bar frames, close array)."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0003, 0.01, (sessions, 1))
    rets = market * rng.uniform(0.6, 1.4, names) + rng.normal(0, 0.015, (sessions, names))
    close = rng.uniform(20, 200, names) * np.exp(np.cumsum(rets, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.006, (sessions, names)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, (sessions, names)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, (sessions, names)))
    volume = rng.uniform(2e5, 5e6, (sessions, names)).round()
    days = pd.bdate_range("2019-01-02", periods=sessions)
    ids = [f"EQUITY:S{i:04d}" for i in range(names)]
    bars = [pd.DataFrame({"open": open_[t], "high": high[t], "low": low[t], "close": close[t],
                          "volume": volume[t]}, index=ids) for t in range(sessions)]
    return days, ids, bars, close


def make_targets(names: int, sessions: int, rebalance: int, ids: list[str], seed: int):
    """Session index -> target weights (long-only, sum 0.95)."""
    rng = np.random.default_rng(seed + 1)
    out = {}
    for t in range(0, sessions - 1, rebalance):
        w = rng.gamma(1.0, 1.0, names)
        out[t] = dict(zip(ids, 0.95 * w / w.sum(), strict=True))
    return out


def run_reference(days, ids, bars, targets):
    """The reference loop: advance, value, plan and submit; returns (equity, broker)."""
    from prometheus_dagster.engines.execution import BacktestBroker, plan_orders

    broker = BacktestBroker(config(), portfolio_id="bench:US_EQ", market_id="US_EQ",
                            backtest_id="bench", cash=CASH0)
    equity = np.empty(len(days))
    for t, day in enumerate(days):
        d: date = day.date()
        broker.advance(d, bars[t])
        closes = dict(zip(ids, bars[t]["close"].to_numpy(), strict=True))
        snap = broker.positions_snapshot(d, closes)
        equity[t] = snap.equity
        if t in targets:
            for order in plan_orders(targets[t], broker.positions(), closes, snap.equity,
                                     broker.config, decision_id=f"bench:{d}",
                                     portfolio_id="bench:US_EQ", decided_on=d):
                broker.submit_order(order)
    return equity, broker


def config():
    from prometheus_dagster.engines.execution import ExecutionConfig

    return ExecutionConfig(fill_price="close", slippage_bps=SLIPPAGE_BPS,
                           commission_bps=COMMISSION_BPS, max_participation=None)


def run_arrays(market, targets):
    """The array path: one compiled walk; returns the book."""
    from prometheus_dagster.engines.execution.vectorized import ArrayBook

    book = ArrayBook(config(), market, cash=CASH0)
    book.run(targets)
    return book


def order_amounts(book, sessions: int, names: int) -> np.ndarray:
    """Signed filled shares per session and instrument (NaN: no order), for vectorbt."""
    from prometheus_dagster.engines.execution import kernel as K

    fills, orders = book.fill_table(), book.order_table()
    size = np.full((sessions, names), np.nan)
    rows = fills[:, K.F_ORDER].astype(int)
    size[fills[:, K.F_SESSION].astype(int), orders[rows, K.O_INST].astype(int)] = (
        fills[:, K.F_QTY] * orders[rows, K.O_SIDE])
    return size


def run_vectorbt(vbt, close: pd.DataFrame, size: pd.DataFrame) -> np.ndarray:
    pf = vbt.Portfolio.from_orders(
        close=close, size=size, size_type="amount", direction="both",
        fees=COMMISSION_BPS / 1e4, slippage=SLIPPAGE_BPS / 1e4, init_cash=CASH0,
        cash_sharing=True, group_by=True, call_seq="auto", freq="1D")
    return np.asarray(pf.value(), dtype=float).ravel()


def cold_compile_seconds() -> float:
    """Seconds to import and compile the kernel in a fresh process with an empty numba
    cache (what a new installation pays once; later processes load the on-disk cache)."""
    script = ("import time; t0 = time.perf_counter(); import numpy as np; "
              "from prometheus_dagster.engines.execution import ExecutionConfig; "
              "from prometheus_dagster.engines.execution.vectorized import ArrayBook, "
              "MarketArrays; a = np.ones((2, 1)); "
              "m = MarketArrays.from_arrays(['2024-01-02', '2024-01-03'], ['X'], a, a, a, a, "
              "a); ArrayBook(ExecutionConfig(), m, cash=1.0).run({0: {'X': 0.5}}); "
              "print(time.perf_counter() - t0)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=cache,
                              capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b) / np.abs(b)).max())


def bench_market(names: int, years: int, rebalance: int, seed: int, repeats: int,
                 reference_max: int, vbt) -> dict:
    from prometheus_dagster.engines.execution.vectorized import MarketArrays

    sessions = 252 * years
    days, ids, bars, close = make_market(names, sessions, seed)
    targets = make_targets(names, sessions, rebalance, ids, seed)
    market = MarketArrays.from_arrays(
        days, ids, *(np.array([b[f].to_numpy() for b in bars])
                     for f in ("open", "high", "low", "close", "volume")))
    t0 = time.perf_counter()
    book = run_arrays(market, targets)
    first = time.perf_counter() - t0
    warm = _best(lambda: run_arrays(market, targets), repeats)
    equity = book.equity()
    out: dict = {"names": names, "sessions": sessions, "rebalances": len(targets),
                 "orders": book.n_orders, "fills": book.n_fills,
                 "final_equity": float(equity[-1]),
                 "arrays_first_call_seconds": first, "arrays_warm_seconds": warm}
    print(f"{names} names x {sessions} sessions, {len(targets)} rebalances: {book.n_orders} "
          f"orders, {book.n_fills} fills, final equity {equity[-1]:,.2f}")
    print(f"  array path (plan + fill + value): first call {first:8.3f} s, warm "
          f"{warm:8.4f} s")
    if sessions <= reference_max:
        t0 = time.perf_counter()
        ref_equity, _ = run_reference(days, ids, bars, targets)
        ref = time.perf_counter() - t0
        out.update(reference_loop_seconds=ref, reference_over_arrays_warm=ref / warm,
                   max_rel_equity_diff_vs_reference=_rel(equity, ref_equity))
        print(f"  reference loop (BacktestBroker):  {ref:8.3f} s -> array path "
              f"{ref / warm:6.1f}x faster; max rel equity diff "
              f"{out['max_rel_equity_diff_vs_reference']:.1e}")
    if vbt is not None:
        close_df = pd.DataFrame(close, index=days, columns=ids)
        size_df = pd.DataFrame(order_amounts(book, sessions, names), index=days, columns=ids)
        t0 = time.perf_counter()
        vbt_equity = run_vectorbt(vbt, close_df, size_df)
        vfirst = time.perf_counter() - t0
        vwarm = _best(lambda: run_vectorbt(vbt, close_df, size_df), repeats)
        out["vectorbt"] = {"version": vbt.__version__, "first_call_seconds": vfirst,
                           "warm_seconds": vwarm, "vectorbt_warm_over_arrays_warm":
                           vwarm / warm, "vectorbt_first_over_arrays_first": vfirst / first,
                           "max_rel_equity_diff": _rel(equity, vbt_equity)}
        print(f"  vectorbt {vbt.__version__} from_orders (same fills): first call "
              f"{vfirst:8.3f} s, warm {vwarm:8.4f} s -> array path {vwarm / warm:6.1f}x "
              f"faster warm; max rel equity diff {out['vectorbt']['max_rel_equity_diff']:.1e}")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", type=int, default=500)
    ap.add_argument("--years", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--rebalance", type=int, default=21, help="sessions between rebalances")
    ap.add_argument("--repeats", type=int, default=5, help="warm calls (best taken)")
    ap.add_argument("--reference-max-sessions", type=int, default=1260,
                    help="run the slow reference loop only up to this many sessions")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    try:
        import vectorbt as vbt
    except ImportError:
        vbt = None
        print("vectorbt is not installed: comparison skipped (install the optional extra: "
              "pip install -e '.[bench]')")
    cold = cold_compile_seconds()
    print(f"array path cold start in a fresh process (import + numba compilation, empty "
          f"cache): {cold:.1f} s")
    markets = [bench_market(args.names, y, args.rebalance, args.seed, args.repeats,
                            args.reference_max_sessions, vbt) for y in args.years]
    summary = {"seed": args.seed, "cold_compile_seconds": cold, "markets": markets}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "execution.json").write_text(json.dumps(summary, indent=2))
    print(f"-> {out / 'execution.json'}")
    return summary


if __name__ == "__main__":
    main()
