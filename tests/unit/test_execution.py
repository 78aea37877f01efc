"""Execution engine: order and fill validation, the planner, the simulator's fill model (order
types, next-session rule, participation cap, costs), brokers per mode, table frames, and the
equity curve against an independent numpy reference."""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.engines.execution import (
    BacktestBroker,
    Bar,
    ExecutionConfig,
    ExecutionError,
    Fill,
    LiveBrokerUnavailableError,
    Order,
    OrderValidationError,
    PaperBroker,
    execution_frames,
    fills_frame,
    make_broker,
    orders_frame,
    plan_order_set,
    plan_orders,
    round_to_lot,
    snapshots_frame,
)

D0, D1, D2, D3 = (date(2024, 3, d) for d in (4, 5, 6, 7))
PF = "core:US_EQ"
BAR = Bar(open=100.0, high=104.0, low=97.0, close=102.0, volume=1e6)


def cfg(**kw) -> ExecutionConfig:
    return ExecutionConfig(**kw)


def broker(c: ExecutionConfig | None = None, cash: float = 1e6, **kw) -> BacktestBroker:
    return BacktestBroker(c or cfg(), portfolio_id=PF, market_id="US_EQ", backtest_id="bt1",
                          cash=cash, **kw)


def order(iid: str = "EQ:A", side: str = "BUY", qty: float = 100.0, decided_on: date = D0,
          **kw) -> Order:
    return Order(order_id=f"{PF}:{decided_on}:{iid}:{side}:{kw.get('order_type', 'MARKET')}",
                 decision_id="dec1", portfolio_id=PF, instrument_id=iid, side=side,
                 quantity=qty, decided_on=decided_on, **kw)


def run_one(o: Order, bar: Bar = BAR, c: ExecutionConfig | None = None) -> tuple[Order, list]:
    b = broker(c)
    b.submit_order(o)
    fills = b.advance(D1, {o.instrument_id: bar})
    return b.order_status(o.order_id), fills


# --- market orders, slippage, next session --------------------------------------------------
@pytest.mark.parametrize("basis,expected", [("open", 100.0), ("close", 102.0),
                                            ("vwap", (104.0 + 97.0 + 102.0) / 3)])
def test_market_order_price_basis_and_slippage_direction(basis, expected):
    c = cfg(fill_price=basis, slippage_bps=10.0)
    o, [buy] = run_one(order(side="BUY"), c=c)
    assert o.status == "FILLED" and o.filled_quantity == 100.0
    assert buy.reference_price == pytest.approx(expected)
    assert buy.price == pytest.approx(expected * 1.001) and buy.price > expected
    assert buy.slippage_cost == pytest.approx(100 * expected * 0.001)
    _, [sell] = run_one(order(side="SELL"), c=c)
    assert sell.price == pytest.approx(expected * 0.999) and sell.price < expected


def test_order_decided_on_d_never_uses_ds_bar():
    b = broker(cfg(fill_price="close"))
    b.advance(D0, {"EQ:A": Bar(50.0, 51.0, 49.0, 50.0, 1e6)})
    b.submit_order(order(decided_on=D1))   # decided after the close of D1, not processed yet
    assert b.advance(D1, {"EQ:A": Bar(60.0, 61.0, 59.0, 60.0, 1e6)}) == []
    assert b.order_status(f"{PF}:{D1}:EQ:A:BUY:MARKET").status == "NEW"
    [fill] = b.advance(D2, {"EQ:A": Bar(70.0, 71.0, 69.0, 70.0, 1e6)})
    assert fill.date == D2 and fill.decided_on == D1 and fill.price == 70.0


def test_sessions_must_advance_and_stale_orders_are_rejected():
    b = broker()
    b.advance(D1, {})
    with pytest.raises(ExecutionError, match="sessions must advance"):
        b.advance(D1, {})
    late = b.submit_order(order(decided_on=D0))
    assert late.status == "REJECTED" and "late" in late.status_reason
    with pytest.raises(ExecutionError, match="already submitted"):
        b.submit_order(order(decided_on=D0))


# --- limit and stop orders ------------------------------------------------------------------
def test_limit_buy_fills_at_limit_when_range_crosses():
    o, [f] = run_one(order(order_type="LIMIT", limit_price=98.0))
    assert o.status == "FILLED" and f.price == 98.0


def test_limit_buy_not_reached_is_cancelled_or_carried():
    o, fills = run_one(order(order_type="LIMIT", limit_price=96.0))
    assert fills == [] and o.status == "CANCELLED" and "not reached" in o.status_reason
    o, fills = run_one(order(order_type="LIMIT", limit_price=96.0), c=cfg(carry_unfilled=True))
    assert fills == [] and o.status == "NEW" and o.is_open


def test_limit_gap_through_fills_at_the_open_and_slippage_stops_at_the_limit():
    gap_down = Bar(open=95.0, high=99.0, low=94.0, close=98.0, volume=1e6)
    _, [f] = run_one(order(order_type="LIMIT", limit_price=98.0), bar=gap_down)
    assert f.price == 95.0
    _, [f] = run_one(order(order_type="LIMIT", limit_price=98.0), c=cfg(slippage_bps=50.0))
    assert f.price == 98.0                       # slippage never past the limit
    _, [f] = run_one(order(order_type="LIMIT", limit_price=98.0), bar=gap_down,
                     c=cfg(slippage_bps=50.0))
    assert f.price == pytest.approx(95.0 * 1.005)
    gap_up = Bar(open=110.0, high=112.0, low=108.0, close=111.0, volume=1e6)
    _, [f] = run_one(order(side="SELL", order_type="LIMIT", limit_price=105.0), bar=gap_up)
    assert f.price == 110.0
    o, fills = run_one(order(side="SELL", order_type="LIMIT", limit_price=105.0))
    assert fills == [] and o.status == "CANCELLED"


def test_stop_triggers_then_fills_as_market_at_the_stop_with_slippage():
    o, [f] = run_one(order(side="SELL", order_type="STOP", stop_price=98.0),
                     c=cfg(slippage_bps=10.0))
    assert o.status == "FILLED"
    assert f.reference_price == 98.0 and f.price == pytest.approx(98.0 * 0.999)
    _, [f] = run_one(order(side="BUY", order_type="STOP", stop_price=103.0))
    assert f.price == 103.0


def test_stop_gap_fills_at_the_open_and_untouched_stop_does_not_fill():
    gap_down = Bar(open=90.0, high=93.0, low=88.0, close=91.0, volume=1e6)
    _, [f] = run_one(order(side="SELL", order_type="STOP", stop_price=98.0), bar=gap_down)
    assert f.price == 90.0
    gap_up = Bar(open=110.0, high=112.0, low=108.0, close=111.0, volume=1e6)
    _, [f] = run_one(order(side="BUY", order_type="STOP", stop_price=103.0), bar=gap_up)
    assert f.price == 110.0
    o, fills = run_one(order(side="SELL", order_type="STOP", stop_price=95.0))
    assert fills == [] and o.status == "CANCELLED" and "not triggered" in o.status_reason
    o, fills = run_one(order(side="BUY", order_type="STOP", stop_price=105.0))
    assert fills == [] and o.status == "CANCELLED"


# --- participation cap ----------------------------------------------------------------------
def test_participation_cap_partial_fill_rest_cancelled():
    thin = Bar(100.0, 101.0, 99.0, 100.0, volume=10_000.0)
    o, [f] = run_one(order(qty=2_500.0), bar=thin, c=cfg(max_participation=0.1))
    assert f.quantity == 1_000.0
    assert o.status == "CANCELLED" and o.filled_quantity == 1_000.0
    assert "participation cap" in o.status_reason


def test_participation_cap_carry_fills_over_sessions_and_is_shared_per_instrument():
    c = cfg(max_participation=0.1, carry_unfilled=True)
    thin = {"EQ:A": Bar(100.0, 101.0, 99.0, 100.0, volume=10_000.0)}
    b = broker(c)
    big = b.submit_order(order(qty=2_500.0))
    [f1] = b.advance(D1, thin)
    assert f1.quantity == 1_000.0
    assert b.order_status(big.order_id).status == "PARTIALLY_FILLED"
    [f2] = b.advance(D2, thin)
    [f3] = b.advance(D3, thin)
    assert (f2.quantity, f3.quantity) == (1_000.0, 500.0)
    done = b.order_status(big.order_id)
    assert done.status == "FILLED" and done.filled_quantity == 2_500.0
    assert b.positions() == {"EQ:A": 2_500.0}
    # two orders of one instrument share the session's cap (sells go first)
    b2 = broker(c, positions={"EQ:A": 5_000.0})
    b2.submit_order(order(qty=700.0))
    b2.submit_order(order(side="SELL", qty=800.0))
    fills = b2.advance(D1, thin)
    assert [(f.side, f.quantity) for f in fills] == [("SELL", 800.0), ("BUY", 200.0)]


def test_triggered_stop_carried_fills_as_market_order():
    c = cfg(max_participation=0.1, carry_unfilled=True)
    b = broker(c, positions={"EQ:A": 2_000.0})
    stop = b.submit_order(order(side="SELL", qty=1_500.0, order_type="STOP", stop_price=98.0))
    [f1] = b.advance(D1, {"EQ:A": Bar(100.0, 101.0, 97.0, 98.0, 10_000.0)})
    assert (f1.quantity, f1.price) == (1_000.0, 98.0)
    [f2] = b.advance(D2, {"EQ:A": Bar(99.0, 100.0, 98.5, 99.5, 10_000.0)})  # above the stop
    assert (f2.quantity, f2.price) == (500.0, 99.0)
    assert b.order_status(stop.order_id).status == "FILLED"
    assert b.order_status(stop.order_id).avg_fill_price == pytest.approx(
        (1_000 * 98.0 + 500 * 99.0) / 1_500)


def test_no_volume_with_a_cap_fills_nothing():
    o, fills = run_one(order(), bar=Bar(100.0, 101.0, 99.0, 100.0, 0.0),
                       c=cfg(max_participation=0.1))
    assert fills == [] and o.status == "CANCELLED"


# --- missing bars ---------------------------------------------------------------------------
def test_missing_bar_cancels_or_keeps_the_order():
    b = broker()
    b.submit_order(order(iid="EQ:GONE"))
    assert b.advance(D1, {"EQ:A": BAR}) == []
    o = b.order_status(f"{PF}:{D0}:EQ:GONE:BUY:MARKET")
    assert o.status == "CANCELLED" and "no bar" in o.status_reason
    b = broker(cfg(on_missing_bar="keep"))
    b.submit_order(order(iid="EQ:GONE"))
    b.advance(D1, {"EQ:A": BAR, "EQ:GONE": Bar(np.nan, np.nan, np.nan, 50.0, 0.0)})
    assert b.order_status(f"{PF}:{D0}:EQ:GONE:BUY:MARKET").status == "NEW"
    [f] = b.advance(D2, {"EQ:GONE": BAR})
    assert f.date == D2


# --- commissions, cash and positions --------------------------------------------------------
def test_commission_bps_per_share_and_minimum():
    _, [f] = run_one(order(qty=100.0), c=cfg(commission_bps=10.0))
    assert f.commission == pytest.approx(100 * 100.0 * 0.001)
    _, [f] = run_one(order(qty=100.0), c=cfg(commission_per_share=0.01))
    assert f.commission == pytest.approx(1.0)
    _, [f] = run_one(order(qty=100.0), c=cfg(commission_bps=1.0, commission_per_share=0.005,
                                             min_commission=5.0))
    assert f.commission == 5.0                           # 1 + 0.5 < 5
    _, [f] = run_one(order(qty=1_000.0), c=cfg(commission_bps=1.0, min_commission=5.0))
    assert f.commission == pytest.approx(10.0)                # 1 bps of 100,000


def test_cash_positions_account_and_snapshot():
    c = cfg(commission_bps=10.0, slippage_bps=10.0)
    b = broker(c, cash=100_000.0)
    b.submit_order(order(iid="EQ:A", qty=300.0))
    b.submit_order(order(iid="EQ:B", side="SELL", qty=100.0))
    bars = {"EQ:A": BAR, "EQ:B": Bar(50.0, 51.0, 49.0, 50.5, 1e6)}
    fills = b.advance(D1, bars)
    assert [f.side for f in fills] == ["SELL", "BUY"]
    pa, pb = 100.0 * 1.001, 50.0 * 0.999
    cash = 100_000.0 - 300 * pa * 1.001 + 100 * pb * 0.999
    acct = b.account()
    assert acct.cash == pytest.approx(cash)
    assert acct.positions_value == pytest.approx(300 * 102.0 - 100 * 50.5)
    assert acct.equity == pytest.approx(acct.cash + acct.positions_value)
    assert b.positions() == {"EQ:A": 300.0, "EQ:B": -100.0}
    snap = b.positions_snapshot(D1, {"EQ:A": 103.0})     # EQ:B from its latest mark
    rows = {p.instrument_id: p for p in snap.positions}
    assert rows["EQ:A"].close == 103.0 and rows["EQ:B"].close == 50.5
    assert snap.equity == pytest.approx(cash + 300 * 103.0 - 100 * 50.5)
    assert rows["EQ:A"].weight == pytest.approx(300 * 103.0 / snap.equity)


def test_cancel_and_fills_since():
    b = broker()
    o = b.submit_order(order())
    assert b.cancel_order(o.order_id).status == "CANCELLED"
    assert b.advance(D1, {"EQ:A": BAR}) == []
    assert b.cancel_order(o.order_id).status == "CANCELLED"      # unchanged
    with pytest.raises(ExecutionError, match="unknown order"):
        b.order_status("nope")
    b.submit_order(order(iid="EQ:B", decided_on=D1))
    b.advance(D2, {"EQ:B": BAR})
    assert len(b.fills()) == 1 and b.fills(since=D2) == [] and len(b.fills(since=D1)) == 1


# --- planner --------------------------------------------------------------------------------
def test_planner_rounds_toward_zero_to_lots_and_skips_small_orders():
    c = cfg(lot_size=100, min_order_value=1_000.0)
    plan = plan_order_set({"EQ:A": 0.1234, "EQ:B": -0.05, "EQ:C": 0.0003, "EQ:D": 0.2},
                          {"EQ:D": 4_000.0, "EQ:E": 50.0},
                          {"EQ:A": 10.0, "EQ:B": 20.0, "EQ:C": 10.0, "EQ:D": 50.0, "EQ:E": 30.0},
                          1_000_000.0, c, decision_id="dec", portfolio_id=PF, decided_on=D0)
    assert plan.target_shares == {"EQ:A": 12_300.0, "EQ:B": -2_500.0, "EQ:C": 0.0,
                                  "EQ:D": 4_000.0, "EQ:E": 0.0}
    got = [(o.instrument_id, o.side, o.quantity) for o in plan.orders]
    assert got == [("EQ:B", "SELL", 2_500.0), ("EQ:E", "SELL", 50.0), ("EQ:A", "BUY", 12_300.0)]
    assert plan.orders[0].order_id == f"{PF}:2024-03-04:EQ:B"
    assert all(o.order_type == "MARKET" and o.decided_on == D0 for o in plan.orders)
    assert "EQ:D" not in plan.skipped                # already at target: no order, no reason
    assert round_to_lot(0.1 * 1e6 / 50.0 * (1 - 1e-15), 1) == 2000.0   # float noise
    assert round_to_lot(-250.0, 100) == -200.0


def test_planner_min_order_value_and_missing_price(caplog):
    c = cfg(min_order_value=500.0)
    with caplog.at_level(logging.WARNING):
        plan = plan_order_set({"EQ:A": 0.0004, "EQ:X": 0.1}, {}, {"EQ:A": 10.0}, 1_000_000.0,
                              c, decision_id="dec", portfolio_id=PF, decided_on=D0, mode="PAPER")
    assert plan.orders == []
    assert "min_order_value" in plan.skipped["EQ:A"] and "price" in plan.skipped["EQ:X"]
    assert "EQ:X" in caplog.text
    orders = plan_orders({"EQ:A": 0.5}, {}, {"EQ:A": 10.0}, 1_000.0, c, decision_id="dec",
                         portfolio_id=PF, decided_on="2024-03-04", mode="PAPER")
    assert [(o.quantity, o.mode) for o in orders] == [(50.0, "PAPER")]
    with pytest.raises(OrderValidationError, match="equity"):
        plan_orders({"EQ:A": 0.5}, {}, {"EQ:A": 10.0}, 0.0, c, decision_id="d",
                    portfolio_id=PF, decided_on=D0)
    with pytest.raises(OrderValidationError, match="target weight of EQ:A"):
        plan_orders({"EQ:A": float("nan")}, {}, {"EQ:A": 10.0}, 1e6, c, decision_id="d",
                    portfolio_id=PF, decided_on=D0)


# --- validation, modes ----------------------------------------------------------------------
@pytest.mark.parametrize("kw,match", [
    ({"qty": -5.0}, "quantity must be a positive number"),
    ({"qty": 0.0}, "quantity must be a positive number"),
    ({"order_type": "LIMIT"}, "LIMIT order needs a limit_price"),
    ({"order_type": "LIMIT", "limit_price": -1.0}, "limit_price must be a positive"),
    ({"order_type": "STOP"}, "STOP order needs a stop_price"),
    ({"limit_price": 10.0}, "MARKET order takes no limit_price"),
    ({"order_type": "LIMIT", "limit_price": 10.0, "stop_price": 9.0}, "takes no stop_price"),
    ({"side": "HOLD"}, "side 'HOLD' is not one of BUY, SELL"),
    ({"mode": "SIM"}, "mode 'SIM'"),
    ({"decided_on": "not a date"}, "is not a date"),
    ({"filled_quantity": 200.0}, "filled_quantity"),
])
def test_order_validation_errors(kw, match):
    with pytest.raises(OrderValidationError, match=match):
        order(**kw)


def test_fill_validation():
    with pytest.raises(OrderValidationError, match="only in a session after"):
        Fill(fill_id="f", order_id="o", decision_id="d", portfolio_id=PF, instrument_id="EQ:A",
             date=D0, decided_on=D0, side="BUY", quantity=1.0, price=10.0,
             reference_price=10.0, commission=0.0, slippage_cost=0.0)


def test_modes_live_error_and_rejections():
    with pytest.raises(LiveBrokerUnavailableError, match="optional extra.*not installed"):
        make_broker("LIVE", cfg(), portfolio_id=PF, market_id="US_EQ", cash=1.0)
    with pytest.raises(ExecutionError, match="unknown execution mode"):
        make_broker("SIM", cfg())
    with pytest.raises(ExecutionError, match="backtest_id is required"):
        make_broker("BACKTEST", cfg(), portfolio_id=PF, market_id="US_EQ", cash=1.0,
                    backtest_id=None)
    paper = make_broker("PAPER", cfg(), portfolio_id=PF, market_id="US_EQ", cash=1.0)
    assert isinstance(paper, PaperBroker) and paper.mode == "PAPER"
    rejected = paper.submit_order(order())                      # a BACKTEST order
    assert rejected.status == "REJECTED" and "BACKTEST order" in rejected.status_reason
    other = paper.submit_order(Order(order_id="x", decision_id="d", portfolio_id="other",
                                     instrument_id="EQ:A", side="BUY", quantity=1.0,
                                     decided_on=D0, mode="PAPER"))
    assert other.status == "REJECTED" and "portfolio other" in other.status_reason


def test_paper_broker_fills_exactly_like_the_backtest_broker():
    c = cfg(fill_price="vwap", slippage_bps=5.0, commission_bps=2.0, max_participation=0.05,
            carry_unfilled=True)
    bt, paper = broker(c), PaperBroker(c, portfolio_id=PF, market_id="US_EQ", cash=1e6)
    bars = {"EQ:A": Bar(100.0, 101.0, 99.0, 100.5, 30_000.0)}
    for b, mode in ((bt, "BACKTEST"), (paper, "PAPER")):
        b.submit_order(order(qty=2_000.0, mode=mode))
        b.advance(D1, bars)
        b.advance(D2, bars)
    strip = [(f.date, f.quantity, f.price, f.commission) for f in bt.fills()]
    assert strip == [(f.date, f.quantity, f.price, f.commission) for f in paper.fills()]
    assert {f.mode for f in paper.fills()} == {"PAPER"}
    assert paper.sync() == paper.account()


def test_config_file_loads():
    loaded = load_engine_config("execution")
    assert isinstance(loaded.config, ExecutionConfig)
    assert loaded.config_id.startswith("execution@2-")
    assert loaded.config.paper_initial_capital > 0


# --- tables ---------------------------------------------------------------------------------
def test_frames_validate_and_keep_backtests_apart():
    b = broker(cfg(commission_bps=1.0))
    b.submit_order(order())
    b.submit_order(order(iid="EQ:GONE"))
    b.advance(D1, {"EQ:A": BAR})
    frames = execution_frames(b, [b.positions_snapshot(D1)])
    orders, fills, snaps = frames["orders"], frames["fills"], frames["positions_snapshots"]
    assert list(orders["status"]) == ["FILLED", "CANCELLED"]
    assert set(orders["backtest_id"]) == {"bt1"} and set(fills["mode"]) == {"BACKTEST"}
    assert fills["value"].iloc[0] == pytest.approx(100 * 100.0)
    assert pd.Timestamp(fills["date"].iloc[0]) == pd.Timestamp(D1)
    assert list(snaps["instrument_id"]) == ["EQ:A", "CASH"]
    assert snaps["market_value"].sum() == pytest.approx(snaps["equity"].iloc[0])
    assert set(orders["config_id"]) == {b.config_id}
    with pytest.raises(DataSchemaError, match="need a backtest_id"):
        orders_frame(b.orders(), market_id="US_EQ", config_id="c")
    paper = PaperBroker(cfg(), portfolio_id=PF, market_id="US_EQ", cash=1e4)
    paper.submit_order(order(mode="PAPER"))
    paper.on_session(D1, {"EQ:A": BAR})
    with pytest.raises(DataSchemaError, match="must not carry a backtest_id"):
        fills_frame(paper.fills(), market_id="US_EQ", config_id="c", backtest_id="bt1")
    snap = snapshots_frame([paper.positions_snapshot(D1)], market_id="US_EQ", config_id="c")
    assert snap["backtest_id"].isna().all() and set(snap["mode"]) == {"PAPER"}


# --- equity curve vs an independent numpy reference -----------------------------------------
def test_equity_curve_matches_numpy_reference():
    rng = np.random.default_rng(7)
    n_days, names = 250, ["EQ:A", "EQ:B", "EQ:C", "EQ:D", "EQ:E"]
    n = len(names)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, n)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, (n_days, n)))
    high = np.maximum(open_, close) * 1.01
    low = np.minimum(open_, close) * 0.99
    days = pd.bdate_range("2023-01-02", periods=n_days)
    qty = rng.integers(1, 300, (n_days, n)) * rng.choice([-1, 1], (n_days, n))
    qty = np.where(rng.random((n_days, n)) < 0.3, qty, 0).astype(float)
    slip, bps, per_share, minimum, cash0 = 7.0, 3.0, 0.004, 1.5, 1e6
    c = cfg(fill_price="open", slippage_bps=slip, commission_bps=bps,
            commission_per_share=per_share, min_commission=minimum)

    b = broker(c, cash=cash0)
    equity = np.empty(n_days)
    for t, day in enumerate(days):
        bars = pd.DataFrame({"open": open_[t], "high": high[t], "low": low[t],
                             "close": close[t], "volume": 1e6}, index=names)
        b.advance(day, bars)
        equity[t] = b.account().equity
        for i, iid in enumerate(names):
            if qty[t, i]:
                b.submit_order(order(iid=iid, side="BUY" if qty[t, i] > 0 else "SELL",
                                     qty=abs(qty[t, i]), decided_on=day.date()))

    # reference: the order decided on t executes at the open of t + 1
    executed = np.vstack([np.zeros((1, n)), qty[:-1]])
    price = open_ * (1 + np.sign(executed) * slip / 1e4)
    fee = np.where(executed != 0, np.maximum(bps / 1e4 * np.abs(executed) * price
                                             + per_share * np.abs(executed), minimum), 0.0)
    cash = cash0 - np.cumsum((executed * price + fee).sum(axis=1))
    ref = cash + (np.cumsum(executed, axis=0) * close).sum(axis=1)
    assert len(b.fills()) == int((executed != 0).sum())
    assert np.max(np.abs(equity - ref) / ref) < 1e-9


def test_splits_and_dividends_adjust_the_holdings():
    b = broker(cash=0.0)
    b.submit_order(Order(order_id="o1", decision_id="d1", portfolio_id=PF, instrument_id="A",
                         side="BUY", quantity=100, decided_on=date(2024, 1, 2)))
    b.advance(date(2024, 1, 3), {"A": Bar(10.0, 10.0, 10.0, 10.0, 1e9)})
    cash = b.account().cash
    paid = b.apply_corporate_actions(pd.DataFrame({
        "instrument_id": ["A", "A", "B"], "action_type": ["SPLIT", "DIVIDEND", "DIVIDEND"],
        "value": [2.0, 0.25, 1.0]}))
    assert b.positions()["A"] == 200  # the split comes first: the dividend is per new share
    assert paid == {"A": 50.0} and b.account().cash == pytest.approx(cash + 50.0)
    # marked at the last close divided by the split ratio until the next bar
    assert b.positions_snapshot(date(2024, 1, 4)).positions_value == pytest.approx(200 * 5.0)
