"""The array path of the market simulator (``ArrayBook``, compiled kernel) against the
reference loop (``BacktestBroker`` + ``plan_orders``, one order at a time): the same equity
to the last digit, the same orders and fills, for every fill-model option, partial fills,
missing bars, splits and dividends; session-by-session walking equals one call; bad input
is refused with a clear error."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.engines.execution import (
    BacktestBroker,
    ExecutionConfig,
    ExecutionError,
    Order,
    plan_orders,
)
from prometheus_dagster.engines.execution.vectorized import ArrayBook, MarketArrays

PF = "core:US_EQ"


def market(n: int = 12, sessions: int = 60, seed: int = 1):
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0003, 0.02, (sessions, n))
    close = rng.uniform(20, 200, n) * np.exp(np.cumsum(rets, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.006, (sessions, n)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, (sessions, n)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, (sessions, n)))
    volume = rng.uniform(100, 5000, (sessions, n)).round()
    missing = rng.random((sessions, n)) < 0.04
    for a in (open_, high, low, close, volume):
        a[missing] = np.nan
    split = np.full((sessions, n), np.nan)
    dividend = np.full((sessions, n), np.nan)
    split[rng.random((sessions, n)) < 0.01] = 2.0
    dividend[rng.random((sessions, n)) < 0.02] = 0.5
    days = [d.date() for d in pd.bdate_range("2020-01-02", periods=sessions)]
    ids = [f"EQ:{j:03d}" for j in range(n)]
    weights = rng.gamma(1.0, 1.0, (sessions, n))
    targets = {t: dict(zip(ids, 0.9 * weights[t] / weights[t].sum(), strict=True))
               for t in range(0, sessions - 1, 7)}
    arrays = MarketArrays.from_arrays(days, ids, open_, high, low, close, volume,
                                      split=split, dividend=dividend)
    return arrays, targets


def reference(cfg: ExecutionConfig, m: MarketArrays, targets: dict) -> tuple[list, BacktestBroker]:
    broker = BacktestBroker(cfg, portfolio_id=PF, market_id="US_EQ", backtest_id="b",
                            cash=1e6)
    ids = np.array(m.instrument_ids)
    equity = []
    for t, d in enumerate(m.sessions):
        rows = [(iid, kind, arr[t, j]) for j, iid in enumerate(ids)
                for kind, arr in (("SPLIT", m.split), ("DIVIDEND", m.dividend))
                if np.isfinite(arr[t, j])]
        broker.apply_corporate_actions(pd.DataFrame(rows, columns=["instrument_id",
                                                                   "action_type", "value"]))
        has = np.isfinite(m.bars[3, t])
        bars = pd.DataFrame({"instrument_id": ids[has],
                             **{f: m.bars[i, t][has] for i, f in enumerate(
                                 ("open", "high", "low", "close", "volume"))}})
        broker.advance(d, bars)
        closes = dict(zip(bars["instrument_id"], bars["close"], strict=True))
        snap = broker.positions_snapshot(d, closes)
        equity.append(snap.equity)
        if t in targets:
            for order in plan_orders(targets[t], broker.positions(), closes, snap.equity, cfg,
                                     decision_id="d", portfolio_id=PF, decided_on=d):
                broker.submit_order(order)
    return equity, broker


CONFIGS = [
    {},
    {"fill_price": "vwap", "slippage_bps": 5.0, "commission_bps": 10.0,
     "commission_per_share": 0.01, "min_commission": 1.0, "lot_size": 10,
     "min_order_value": 500.0},
    {"fill_price": "open", "max_participation": 0.05, "carry_unfilled": True,
     "on_missing_bar": "keep", "slippage_bps": 3.0},
    {"fill_price": "close", "max_participation": 0.1, "lot_size": 5},
]


@pytest.mark.parametrize("options", CONFIGS)
def test_array_path_equals_the_reference_loop(options):
    cfg = ExecutionConfig(**options)
    m, targets = market()
    ref_equity, broker = reference(cfg, m, targets)
    book = ArrayBook(cfg, m, cash=1e6)
    book.run(targets)
    assert book.equity().tolist() == ref_equity  # to the last digit
    assert book.orders(portfolio_id=PF, decision_id="d") == broker.orders()
    assert book.fills(portfolio_id=PF, decision_id="d") == broker.fills()
    assert book.positions_dict() == broker.positions()
    assert book.cash == broker.account().cash
    if options.get("max_participation"):
        statuses = {o.status for o in broker.orders()}
        assert "CANCELLED" in statuses or "PARTIALLY_FILLED" in statuses
    assert np.nansum(book.daily_frame()["dividends"]) > 0


def test_walking_session_by_session_equals_one_call():
    cfg = ExecutionConfig(**CONFIGS[2])
    m, targets = market(seed=3)
    whole = ArrayBook(cfg, m, cash=1e6, keep_holdings=True)
    whole.run(targets)
    steps = ArrayBook(cfg, m, cash=1e6, keep_holdings=True)
    for t in range(len(m.sessions)):
        steps.session(targets.get(t))
    assert steps.equity().tolist() == whole.equity().tolist()
    assert np.array_equal(steps.holdings, whole.holdings, equal_nan=True)
    assert steps.fills(portfolio_id=PF, decision_id="d") == \
        whole.fills(portfolio_id=PF, decision_id="d")


def test_limit_and_stop_orders_equal_the_reference():
    cfg = ExecutionConfig(slippage_bps=5.0, carry_unfilled=True)
    m, _ = market(n=3, sessions=15, seed=5)
    d0 = m.sessions[0]
    c0 = m.bars[3, 0]
    orders = [Order(order_id=f"{PF}:{d0}:{iid}:{kind}", decision_id="d", portfolio_id=PF,
                    instrument_id=iid, side=side, quantity=100.0, decided_on=d0,
                    order_type=kind, **({"limit_price": px} if kind == "LIMIT" else
                                        {"stop_price": px}))
              for iid, side, kind, px in (
                  (m.instrument_ids[0], "BUY", "LIMIT", float(c0[0]) * 0.97),
                  (m.instrument_ids[1], "SELL", "STOP", float(c0[1]) * 0.96),
                  (m.instrument_ids[2], "BUY", "STOP", float(c0[2]) * 1.05))]
    broker = BacktestBroker(cfg, portfolio_id=PF, market_id="US_EQ", backtest_id="b",
                            cash=1e6)
    book = ArrayBook(cfg, m, cash=1e6)
    ids = np.array(m.instrument_ids)
    for t, d in enumerate(m.sessions):
        has = np.isfinite(m.bars[3, t])
        broker.advance(d, pd.DataFrame({"instrument_id": ids[has], **{
            f: m.bars[i, t][has] for i, f in enumerate(("open", "high", "low", "close",
                                                        "volume"))}}))
        if t == 0:
            for o in orders:
                broker.submit_order(o)
                book.add_order(o)
    book.run()
    assert book.orders(portfolio_id=PF, decision_id="d") == broker.orders()
    assert book.fills(portfolio_id=PF, decision_id="d") == broker.fills()
    assert book.cash == broker.account().cash


def test_market_from_long_frames():
    prices = pd.DataFrame({"date": ["2024-01-02", "2024-01-02", "2024-01-03"],
                           "instrument_id": ["B", "A", "A"], "open": [10.0, 20, 21],
                           "high": [11.0, 21, 22], "low": [9.0, 19, 20],
                           "close": [10.5, 20.5, 21.5], "volume": [1e3, 2e3, 3e3]})
    actions = pd.DataFrame({"instrument_id": ["A", "A"], "date": ["2024-01-03"] * 2,
                            "action_type": ["SPLIT", "DIVIDEND"], "value": [2.0, 0.25]})
    m = MarketArrays.from_frames(prices, actions)
    assert m.instrument_ids == ["A", "B"]
    assert m.sessions == [date(2024, 1, 2), date(2024, 1, 3)]
    assert m.bars[3].tolist()[1][0] == 21.5 and np.isnan(m.bars[3, 1, 1])
    assert m.split[1, 0] == 2.0 and m.dividend[1, 0] == 0.25
    dup = pd.concat([prices, prices.iloc[:1]])
    with pytest.raises(ExecutionError, match="two bars"):
        MarketArrays.from_frames(dup)


def test_bad_input_is_refused():
    m, _ = market(n=2, sessions=5)
    with pytest.raises(ExecutionError, match="not in the market arrays"):
        ArrayBook(ExecutionConfig(), m, cash=1e6).run({0: {"EQ:999": 0.5}})
    with pytest.raises(ExecutionError, match="finite"):
        ArrayBook(ExecutionConfig(), m, cash=1e6).run({0: {"EQ:000": float("nan")}})
    with pytest.raises(ExecutionError, match="shape"):
        MarketArrays.from_arrays(m.sessions, m.instrument_ids, np.ones((5, 3)),
                                 np.ones((5, 2)), np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(ExecutionError, match="increasing"):
        MarketArrays.from_arrays(m.sessions[::-1], m.instrument_ids, *(np.ones((5, 2)),) * 4)


def test_a_book_fed_one_session_at_a_time_equals_the_reference():
    # as the backtest walk uses it: bars and actions arrive per session as frames, new
    # instruments appear (the arrays grow past their initial room), snapshots and orders
    # are taken between sessions
    cfg = ExecutionConfig(**CONFIGS[1])
    m, targets = market(n=12, sessions=40, seed=9)
    late = {m.instrument_ids[j]: 10 + 2 * j for j in range(6)}  # listed from session 10..
    broker = BacktestBroker(cfg, portfolio_id=PF, market_id="US_EQ", backtest_id="b",
                            cash=1e6)
    book = ArrayBook(cfg, MarketArrays.empty(m.sessions, capacity=4), cash=1e6)
    ids = np.array(m.instrument_ids)
    for t, d in enumerate(m.sessions):
        listed = np.array([late.get(i, 0) <= t for i in ids])
        has = np.isfinite(m.bars[3, t]) & listed
        bars = pd.DataFrame({"instrument_id": ids[has], **{
            f: m.bars[i, t][has] for i, f in enumerate(("open", "high", "low", "close",
                                                        "volume"))}})
        actions = pd.DataFrame([(iid, kind, arr[t, j]) for j, iid in enumerate(ids)
                                for kind, arr in (("SPLIT", m.split), ("DIVIDEND", m.dividend))
                                if np.isfinite(arr[t, j]) and listed[j]],
                               columns=["instrument_id", "action_type", "value"])
        broker.apply_corporate_actions(actions)
        broker.advance(d, bars)
        closes = dict(zip(bars["instrument_id"], bars["close"], strict=True))
        snap = broker.positions_snapshot(d, closes)
        book.feed(bars, actions)
        book.advance()
        assert book.snapshot(PF) == snap
        if t in targets:
            want = {i: w for i, w in targets[t].items() if listed[m.instrument_ids.index(i)]}
            for order in plan_orders(want, broker.positions(), closes, snap.equity, cfg,
                                     decision_id="d", portfolio_id=PF, decided_on=d):
                broker.submit_order(order)
            book.plan(want)
    assert book.market.bars.shape[2] >= 12
    assert book.orders(portfolio_id=PF, decision_id="d") == broker.orders()
    assert book.fills(portfolio_id=PF, decision_id="d") == broker.fills()
