"""Execution simulator: a monthly-rebalanced backtest through ``BacktestBroker`` against
vectorbt's ``Portfolio.from_orders`` on the identical orders, in the same run.

    .venv/bin/python -m benchmarks.execution [--names 500] [--years 5] [--rebalance 21]

Seeded random daily bars (geometric random walks with a market factor; open, high, low,
close, volume) for ``names`` instruments over ``years`` x 252 sessions. Every ``rebalance``
sessions new random target weights (summing to 0.95) are decided after the close; the planner
turns them into MARKET orders (whole shares, toward zero) that the simulator fills in the
next session at the close, with 5 bps slippage and 10 bps commission, no participation cap.

vectorbt (optional extra ``bench``) then gets the very same fills as signed share amounts
(``size_type='amount'``) on the fill sessions, filled at the close with the same slippage
fraction and fees = commission fraction, ``cash_sharing=True, group_by=True,
call_seq='auto'`` (sells before buys, so its cash check never binds: the 5% cash buffer
keeps cash positive). What differs: vectorbt does not plan (it replays orders sized by the
simulator) and has no per-share or minimum commission (both 0 here); the timed simulator run
includes the planning and the daily valuation. Reports both runtimes (vectorbt's first call
includes numba compilation and is shown apart), their ratio and the largest equity-curve
difference; writes benchmarks/results/execution.json.
"""

from __future__ import annotations

import argparse
import json
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


def run_simulator(days, ids, bars, targets):
    """The backtest loop: advance, value, plan and submit; returns (equity, broker)."""
    from prometheus_dagster.engines.execution import BacktestBroker, ExecutionConfig, plan_orders

    cfg = ExecutionConfig(fill_price="close", slippage_bps=SLIPPAGE_BPS,
                          commission_bps=COMMISSION_BPS, max_participation=None)
    broker = BacktestBroker(cfg, portfolio_id="bench:US_EQ", market_id="US_EQ",
                            backtest_id="bench", cash=CASH0)
    equity = np.empty(len(days))
    min_cash = CASH0
    for t, day in enumerate(days):
        d: date = day.date()
        broker.advance(d, bars[t])
        acct = broker.account()
        equity[t], min_cash = acct.equity, min(min_cash, acct.cash)
        if t in targets:
            closes = dict(zip(ids, bars[t]["close"].to_numpy(), strict=True))
            for order in plan_orders(targets[t], broker.positions(), closes, acct.equity, cfg,
                                     decision_id=f"bench:{d}", portfolio_id="bench:US_EQ",
                                     decided_on=d):
                broker.submit_order(order)
    return equity, broker, min_cash


def order_amounts(broker, days, ids) -> np.ndarray:
    """Signed filled shares per session and instrument (NaN: no order), for vectorbt."""
    row = {d.date(): t for t, d in enumerate(days)}
    col = {iid: j for j, iid in enumerate(ids)}
    size = np.full((len(days), len(ids)), np.nan)
    for f in broker.fills():
        size[row[f.date], col[f.instrument_id]] = f.quantity if f.side == "BUY" else -f.quantity
    return size


def run_vectorbt(vbt, close: pd.DataFrame, size: pd.DataFrame) -> np.ndarray:
    pf = vbt.Portfolio.from_orders(
        close=close, size=size, size_type="amount", direction="both",
        fees=COMMISSION_BPS / 1e4, slippage=SLIPPAGE_BPS / 1e4, init_cash=CASH0,
        cash_sharing=True, group_by=True, call_seq="auto", freq="1D")
    return np.asarray(pf.value(), dtype=float).ravel()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", type=int, default=500)
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--rebalance", type=int, default=21, help="sessions between rebalances")
    ap.add_argument("--repeats", type=int, default=3, help="warm vectorbt calls (best taken)")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    sessions = 252 * args.years
    days, ids, bars, close = make_market(args.names, sessions, args.seed)
    targets = make_targets(args.names, sessions, args.rebalance, ids, args.seed)
    t0 = time.perf_counter()
    equity, broker, min_cash = run_simulator(days, ids, bars, targets)
    sim_seconds = time.perf_counter() - t0
    n_fills, n_orders = len(broker.fills()), len(broker.orders())
    print(f"{args.names} names x {sessions} sessions, {len(targets)} rebalances: "
          f"{n_orders} orders, {n_fills} fills, final equity {equity[-1]:,.2f}, "
          f"least cash {min_cash:,.2f}")
    print(f"execution simulator (plan + fill + value): {sim_seconds:8.3f} s")
    summary: dict = {"names": args.names, "sessions": sessions, "rebalances": len(targets),
                     "orders": n_orders, "fills": n_fills, "seed": args.seed,
                     "simulator_seconds": sim_seconds, "final_equity": float(equity[-1]),
                     "min_cash": float(min_cash), "vectorbt": None}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    try:
        import vectorbt as vbt
    except ImportError:
        print("vectorbt is not installed: comparison skipped (install the optional extra: "
              "pip install -e '.[bench]')")
        (out / "execution.json").write_text(json.dumps(summary, indent=2))
        return

    close_df = pd.DataFrame(close, index=days, columns=ids)
    size_df = pd.DataFrame(order_amounts(broker, days, ids), index=days, columns=ids)
    t0 = time.perf_counter()
    vbt_equity = run_vectorbt(vbt, close_df, size_df)
    first = time.perf_counter() - t0
    warm = []
    for _ in range(max(args.repeats, 1)):
        t0 = time.perf_counter()
        run_vectorbt(vbt, close_df, size_df)
        warm.append(time.perf_counter() - t0)
    best = min(warm)
    diff = np.abs(equity - vbt_equity)
    summary["vectorbt"] = {
        "version": vbt.__version__, "first_call_seconds": first, "warm_seconds": best,
        "simulator_over_vectorbt_warm": sim_seconds / best,
        "simulator_over_vectorbt_first": sim_seconds / first,
        "max_abs_equity_diff": float(diff.max()),
        "max_rel_equity_diff": float((diff / np.abs(vbt_equity)).max())}
    print(f"vectorbt {vbt.__version__} from_orders (same fills): first call {first:8.3f} s "
          f"(numba compilation unless its on-disk cache has it), warm {best:8.3f} s")
    print(f"ratio simulator / vectorbt: {sim_seconds / best:6.1f}x warm, "
          f"{sim_seconds / first:6.2f}x first call")
    print(f"equity curves: max |diff| {diff.max():.3e} (relative "
          f"{summary['vectorbt']['max_rel_equity_diff']:.3e})")
    (out / "execution.json").write_text(json.dumps(summary, indent=2))
    print(f"-> {out / 'execution.json'}")


if __name__ == "__main__":
    main()
