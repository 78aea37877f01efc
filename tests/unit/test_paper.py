"""Paper trading sessions: a book resumed each session from its stored rows trades exactly
like one continuous broker; open orders are rebuilt as they stood at the start of a session;
bad input is refused."""

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
    fills_frame,
    orders_frame,
    plan_orders,
    snapshots_frame,
)
from prometheus_dagster.engines.execution.paper import (
    PaperBook,
    open_orders_at,
    run_paper_session,
)

PF, M = "core:US_EQ", "US_EQ"
NAMES = ["EQ:A", "EQ:B", "EQ:C", "EQ:D"]
NO_ACTIONS = pd.DataFrame(columns=["instrument_id", "action_type", "value"])


def market(sessions: int, seed: int = 3) -> tuple[list[date], dict[date, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    days = [d.date() for d in pd.bdate_range("2024-03-04", periods=sessions)]
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (sessions, len(NAMES))), axis=0))
    bars = {}
    for i, d in enumerate(days):
        op = close[i] * (1 + rng.normal(0, 0.005, len(NAMES)))
        bars[d] = pd.DataFrame({
            "instrument_id": NAMES, "open": op,
            "high": np.maximum(op, close[i]) * 1.01, "low": np.minimum(op, close[i]) * 0.99,
            "close": close[i], "volume": rng.uniform(2e3, 2e4, len(NAMES))})
    return days, bars


def targets(days: list[date], seed: int = 5) -> dict[date, dict[str, float] | None]:
    rng = np.random.default_rng(seed)
    out: dict[date, dict[str, float] | None] = {}
    for i, d in enumerate(days):
        if i % 3 == 2:
            out[d] = None  # no new target: hold
            continue
        w = rng.dirichlet(np.ones(len(NAMES)))
        out[d] = dict(zip(NAMES, w, strict=True))
    return out


def cfg(**kw) -> ExecutionConfig:
    base = {"slippage_bps": 5.0, "commission_bps": 1.0, "min_commission": 1.0,
            "max_participation": 0.1, "carry_unfilled": True, "fill_price": "open"}
    return ExecutionConfig(**{**base, **kw})


def stored(orders, fills, snapshots) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    kw = {"market_id": M, "config_id": "execution-x"}
    return (orders_frame(orders, **kw), fills_frame(fills, **kw),
            snapshots_frame(snapshots, **kw))


@pytest.mark.parametrize("carry", [True, False])
def test_resuming_from_stored_rows_every_session_equals_one_continuous_broker(carry):
    c = cfg(carry_unfilled=carry)
    days, bars = market(30)
    want = targets(days)
    # one broker over all sessions
    ref = BacktestBroker(c, portfolio_id=PF, market_id=M, backtest_id="bt", cash=1e6)
    ref_equity = []
    for d in days:
        ref.advance(d, bars[d])
        closes = dict(zip(bars[d]["instrument_id"], bars[d]["close"], strict=True))
        snap = ref.positions_snapshot(d, closes)
        ref_equity.append(snap.equity)
        if want[d] is not None:
            for o in plan_orders(want[d], ref.positions(), closes, snap.equity, c,
                                 decision_id=f"d:{d}", portfolio_id=PF, decided_on=d):
                ref.submit_order(o)
    # paper: each session resumes from the rows the previous ones stored
    orders: dict[str, Order] = {}
    fills, snaps = [], []
    for d in days:
        o_rows, f_rows, s_rows = stored(orders.values(), fills, snaps)
        book = PaperBook.new(1e6) if not snaps else PaperBook.from_rows(
            s_rows[pd.to_datetime(s_rows["date"]).dt.date == snaps[-1].date])
        done = run_paper_session(c, portfolio_id=PF, market_id=M, config_id="execution-x",
                                 session=d, book=book,
                                 open_orders=open_orders_at(o_rows, f_rows, d),
                                 actions=NO_ACTIONS, bars=bars[d], target_weights=want[d],
                                 decision_id=f"d:{d}")
        orders.update({o.order_id: o for o in done.orders})
        fills += done.fills
        snaps.append(done.snapshot)
    assert [s.equity for s in snaps] == pytest.approx(ref_equity, rel=1e-12)
    assert [f.fill_id for f in fills] == [f.fill_id for f in ref.fills()]
    assert [f.quantity for f in fills] == pytest.approx([f.quantity for f in ref.fills()])
    assert [f.price for f in fills] == pytest.approx([f.price for f in ref.fills()])
    assert sorted((o.order_id, o.status, round(o.filled_quantity, 9))
                  for o in orders.values()) == \
        sorted((o.order_id, o.status, round(o.filled_quantity, 9)) for o in ref.orders())
    if carry:  # the cap left orders open across sessions: the carry was exercised
        assert any(o.status == "PARTIALLY_FILLED" or len({f.date for f in fills
                                                          if f.order_id == o.order_id}) > 1
                   for o in orders.values())


def _order(decided_on: date, **kw) -> Order:
    return Order(order_id=f"{PF}:{decided_on}:EQ:A", decision_id="d", portfolio_id=PF,
                 instrument_id="EQ:A", side="BUY", quantity=100.0, decided_on=decided_on,
                 mode="PAPER", **kw)


def test_open_orders_are_rebuilt_as_they_stood_at_the_start_of_the_session():
    d0, d1, d2, d3 = (date(2024, 3, d) for d in (4, 5, 6, 7))
    from prometheus_dagster.engines.execution import Fill

    def fill(day: date, qty: float, price: float) -> Fill:
        return Fill(fill_id=f"{PF}:{d0}:EQ:A:{day}", order_id=f"{PF}:{d0}:EQ:A",
                    decision_id="d", portfolio_id=PF, instrument_id="EQ:A", date=day,
                    decided_on=d0, side="BUY", quantity=qty, price=price,
                    reference_price=price, commission=0.0, slippage_cost=0.0, mode="PAPER")

    # stored after the session of d2: filled 40 on d1 and 60 on d2 (FILLED, updated d2)
    final = _order(d0, status="FILLED", filled_quantity=100.0, avg_fill_price=10.6,
                   updated_on=d2)
    rejected = Order(order_id=f"{PF}:{d0}:EQ:B", decision_id="d", portfolio_id=PF,
                     instrument_id="EQ:B", side="SELL", quantity=5.0, decided_on=d0,
                     mode="PAPER", status="REJECTED", status_reason="x", updated_on=d0)
    new = Order(order_id=f"{PF}:{d2}:EQ:C", decision_id="d2", portfolio_id=PF,
                instrument_id="EQ:C", side="BUY", quantity=7.0, decided_on=d2, mode="PAPER")
    rows, f_rows, _ = stored([final, rejected, new], [fill(d1, 40, 10.0), fill(d2, 60, 11.0)],
                             [])
    at_d1 = open_orders_at(rows, f_rows, d1)
    assert [(o.order_id, o.status, o.filled_quantity) for o in at_d1] == \
        [(final.order_id, "NEW", 0.0)]
    at_d2 = open_orders_at(rows, f_rows, d2)
    assert [(o.status, o.filled_quantity, o.avg_fill_price, o.updated_on) for o in at_d2] == \
        [("PARTIALLY_FILLED", 40.0, 10.0, d1)]
    at_d3 = open_orders_at(rows, f_rows, d3)  # the d0 order closed on d2; d2's order is open
    assert [(o.order_id, o.status) for o in at_d3] == [(new.order_id, "NEW")]


def test_bad_input_is_refused():
    c = cfg()
    days, bars = market(3)
    book = PaperBook(days[1], 1e6)
    kw = {"portfolio_id": PF, "market_id": M, "config_id": "x", "open_orders": [],
          "actions": NO_ACTIONS, "target_weights": None, "decision_id": "d"}
    with pytest.raises(ExecutionError, match="must come after"):
        run_paper_session(c, session=days[1], book=book, bars=bars[days[1]], **kw)
    with pytest.raises(ExecutionError, match="no price bars"):
        run_paper_session(c, session=days[2], book=book, bars=bars[days[2]].iloc[:0], **kw)
    _, _, s_rows = stored([], [], [])
    with pytest.raises(ExecutionError, match="one session"):
        PaperBook.from_rows(s_rows)


def test_new_book_starts_in_cash_and_holds_without_a_target():
    c = cfg()
    days, bars = market(3)
    kw = {"portfolio_id": PF, "market_id": M, "config_id": "x", "actions": NO_ACTIONS,
          "decision_id": "d"}
    first = run_paper_session(c, session=days[0], book=PaperBook.new(1e6), open_orders=[],
                              bars=bars[days[0]], target_weights={"EQ:A": 0.5}, **kw)
    assert first.fills == [] and first.snapshot.equity == 1e6
    assert [o.instrument_id for o in first.new_orders] == ["EQ:A"]
    assert all(o.mode == "PAPER" and o.decided_on == days[0] for o in first.new_orders)
    second = run_paper_session(c, session=days[1], book=first.book,
                               open_orders=first.open_orders(), bars=bars[days[1]],
                               target_weights=None, **kw)
    assert [f.decided_on for f in second.fills] == [days[0]]
    assert second.new_orders == []
    held = second.book.positions["EQ:A"]
    assert held == pytest.approx(sum(f.quantity for f in second.fills))
