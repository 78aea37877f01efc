"""The market simulator behind the BACKTEST and PAPER brokers: open orders, fills, cash and
positions of one portfolio, advanced one session at a time.

``process_session(D, bars)`` works every open order decided before D on D's bars (sells
first, then buys, each in submission order), applies the participation cap per instrument
(shared by the orders of that instrument in the session), books the fills into cash and
positions, then closes or carries what is left (``carry_unfilled``, ``on_missing_bar``).
Cash is not a constraint: buys beyond the cash make it negative (margin), sells beyond the
position open a short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pandas as pd

from prometheus_dagster.engines.execution.config import ExecutionConfig
from prometheus_dagster.engines.execution.errors import ExecutionError
from prometheus_dagster.engines.execution.fill_model import (
    Bar,
    BarTable,
    commission,
    participation_capacity,
    reference_price,
    slipped_price,
)
from prometheus_dagster.engines.execution.orders import (
    QTY_TOL,
    Fill,
    Mode,
    Order,
    OrderStatus,
    as_date,
)


@dataclass(frozen=True)
class Account:
    """Cash, positions marked at the latest closes seen, and their sum."""

    date: date | None
    cash: float
    positions_value: float
    equity: float


@dataclass(frozen=True)
class PositionRow:
    instrument_id: str
    shares: float
    close: float
    market_value: float
    weight: float


@dataclass(frozen=True)
class PositionsSnapshot:
    """Holdings of a portfolio at the close of ``date``."""

    date: date
    portfolio_id: str
    mode: Mode
    cash: float
    positions_value: float
    equity: float
    positions: tuple[PositionRow, ...]


class MarketSimulator:
    """Orders, fills, cash and positions of one portfolio under the fill model of ``cfg``."""

    def __init__(self, cfg: ExecutionConfig, *, portfolio_id: str, mode: Mode, cash: float,
                 positions: Mapping[str, float] | None = None,
                 marks: Mapping[str, float] | None = None):
        if not math.isfinite(cash):
            raise ExecutionError(f"portfolio {portfolio_id}: initial cash {cash!r} is not a "
                                 "number")
        self.cfg = cfg
        self.portfolio_id = portfolio_id
        self.mode = mode
        self.cash = float(cash)
        self.positions: dict[str, float] = {str(k): float(v) for k, v in (positions or {}).items()
                                            if abs(float(v)) > QTY_TOL}
        self.marks: dict[str, float] = {str(k): float(v) for k, v in (marks or {}).items()}
        self.last_session: date | None = None
        self.orders: dict[str, Order] = {}
        self.open_ids: list[str] = []
        self.fills: list[Fill] = []

    # -- orders ----------------------------------------------------------------------------
    def submit(self, order: Order) -> Order:
        """Accept (NEW) or reject (REJECTED, with the reason) an order; returns it."""
        if order.order_id in self.orders:
            raise ExecutionError(f"order {order.order_id} was already submitted")
        reason = None
        if order.status != "NEW":
            reason = f"only NEW orders can be submitted (status {order.status})"
        elif order.mode != self.mode:
            reason = f"a {order.mode} order sent to a {self.mode} broker"
        elif order.portfolio_id != self.portfolio_id:
            reason = (f"order of portfolio {order.portfolio_id} sent to the broker of "
                      f"{self.portfolio_id}")
        elif self.last_session is not None and order.decided_on < self.last_session:
            reason = (f"decided on {order.decided_on} but session {self.last_session} was "
                      "already processed: it would execute late")
        if reason is not None:
            order = replace(order, status="REJECTED", status_reason=reason,
                            updated_on=self.last_session or order.decided_on)
        self.orders[order.order_id] = order
        if order.is_open:
            self.open_ids.append(order.order_id)
        return order

    def restore(self, order: Order) -> Order:
        """Take over an order that is still open from an earlier session (paper trading
        resumes from the stored book): unlike ``submit`` it keeps the order's status and what
        it has filled so far."""
        if order.order_id in self.orders:
            raise ExecutionError(f"order {order.order_id} is already on the book")
        if not order.is_open:
            raise ExecutionError(f"order {order.order_id} is {order.status}: only open orders "
                                 "can be restored")
        if order.mode != self.mode or order.portfolio_id != self.portfolio_id:
            raise ExecutionError(
                f"order {order.order_id} ({order.mode}, {order.portfolio_id}) does not belong "
                f"to this {self.mode} book of {self.portfolio_id}")
        if self.last_session is not None and order.decided_on < self.last_session:
            raise ExecutionError(f"order {order.order_id}: restore open orders before the "
                                 "first session is processed")
        self.orders[order.order_id] = order
        self.open_ids.append(order.order_id)
        return order

    def get(self, order_id: str) -> Order:
        try:
            return self.orders[order_id]
        except KeyError:
            raise ExecutionError(f"unknown order {order_id!r}") from None

    def cancel(self, order_id: str, reason: str = "cancelled by request") -> Order:
        """Cancel an open order (what it filled stays); a closed order is returned unchanged."""
        order = self.get(order_id)
        if not order.is_open:
            return order
        order = replace(order, status="CANCELLED", status_reason=reason,
                        updated_on=self.last_session or order.decided_on)
        self.orders[order_id] = order
        self.open_ids.remove(order_id)
        return order

    # -- corporate actions -----------------------------------------------------------------
    def apply_corporate_actions(self, actions: pd.DataFrame) -> dict[str, float]:
        """Apply the ex-date's actions (instrument_id, action_type, value) to the holdings
        before the session trades: a SPLIT multiplies shares by ``value`` (new shares per old)
        and divides the mark; a DIVIDEND pays ``value`` per share held into cash (shorts pay
        it). Other actions are ignored. Returns the cash paid per instrument."""
        paid: dict[str, float] = {}
        for r in actions.itertuples(index=False):
            iid, kind, value = str(r.instrument_id), str(r.action_type), float(r.value)
            held = self.positions.get(iid, 0.0)
            if kind == "SPLIT" and math.isfinite(value) and value > 0:
                if held:
                    self.positions[iid] = held * value
                if iid in self.marks:
                    self.marks[iid] = self.marks[iid] / value
            elif kind == "DIVIDEND" and math.isfinite(value) and held:
                self.cash += held * value
                paid[iid] = paid.get(iid, 0.0) + held * value
        return paid

    # -- sessions --------------------------------------------------------------------------
    def process_session(self, session_date: Any,
                        bars: pd.DataFrame | Mapping[str, Any] | None) -> list[Fill]:
        """Work the open orders decided before ``session_date`` on its bars; returns the
        session's fills. Marks move to the session's closes."""
        day = as_date(session_date, "session date")
        if self.last_session is not None and day <= self.last_session:
            raise ExecutionError(f"session {day} is not after the last processed session "
                                 f"{self.last_session}; sessions must advance")
        table = BarTable(bars)
        due = [self.orders[i] for i in self.open_ids if self.orders[i].decided_on < day]
        due.sort(key=lambda o: o.side != "SELL")  # stable: sells first, then submission order
        used: dict[str, float] = {}
        fills: list[Fill] = []
        for order, bar in zip(due, table.lookup([o.instrument_id for o in due]), strict=True):
            if bar is None or not bar.usable():
                what = "no bar" if bar is None else "an incomplete bar"
                self._no_bar(order, day, f"{what} for {order.instrument_id} on {day} "
                                         "(not trading or delisted)")
                continue
            fill = self._work(order, bar, day, used)
            if fill is not None:
                fills.append(fill)
        self.marks.update(table.closes())
        self.last_session = day
        self.open_ids = [i for i in self.open_ids if self.orders[i].is_open]
        self.fills.extend(fills)
        return fills

    def _no_bar(self, order: Order, day: date, reason: str) -> None:
        if self.cfg.on_missing_bar == "cancel":
            self.orders[order.order_id] = replace(order, status="CANCELLED",
                                                  status_reason=reason, updated_on=day)
        else:
            self.orders[order.order_id] = replace(order, status_reason=reason, updated_on=day)

    def _work(self, order: Order, bar: Bar, day: date, used: dict[str, float]) -> Fill | None:
        cfg = self.cfg
        base, why = reference_price(order, bar, cfg.fill_price)
        qty = 0.0
        if base is not None:
            room = participation_capacity(bar, cfg) - used.get(order.instrument_id, 0.0)
            qty = min(order.remaining, max(room, 0.0))
            if qty < order.remaining - QTY_TOL:
                why = (f"participation cap {cfg.max_participation:g} of volume "
                       f"{bar.volume:g}: {order.remaining - qty:g} shares unfilled")
        fill = None
        if base is not None and qty > QTY_TOL:  # qty stays 0 without a reference price
            used[order.instrument_id] = used.get(order.instrument_id, 0.0) + qty
            price = slipped_price(order, base, cfg.slippage_bps)
            fill = Fill(fill_id=f"{order.order_id}:{day.isoformat()}", order_id=order.order_id,
                        decision_id=order.decision_id, portfolio_id=order.portfolio_id,
                        instrument_id=order.instrument_id, date=day,
                        decided_on=order.decided_on, side=order.side, quantity=qty,
                        price=price, reference_price=base,
                        commission=commission(qty, price, cfg),
                        slippage_cost=qty * abs(price - base),
                        mode=self.mode)
            self._book(fill)
        filled = order.filled_quantity + qty
        avg = order.avg_fill_price
        if fill is not None:
            avg = ((avg or 0.0) * order.filled_quantity + fill.price * qty) / filled
        status: OrderStatus
        if order.quantity - filled <= QTY_TOL:
            status, why = "FILLED", None
            filled = order.quantity
        elif cfg.carry_unfilled:
            status = "PARTIALLY_FILLED" if filled > QTY_TOL else order.status
        else:
            status = "CANCELLED"
            why = f"{why}; unfilled part cancelled at the end of the session"
        self.orders[order.order_id] = replace(order, status=status, filled_quantity=filled,
                                              avg_fill_price=avg, status_reason=why,
                                              updated_on=day)
        return fill

    def _book(self, fill: Fill) -> None:
        signed = fill.quantity if fill.side == "BUY" else -fill.quantity
        self.cash += fill.cash_flow
        shares = self.positions.get(fill.instrument_id, 0.0) + signed
        if abs(shares) <= QTY_TOL:
            self.positions.pop(fill.instrument_id, None)
        else:
            self.positions[fill.instrument_id] = shares
        self.marks.setdefault(fill.instrument_id, fill.price)

    # -- valuation -------------------------------------------------------------------------
    def _mark(self, iid: str, closes: Mapping[str, float] | None) -> float:
        if closes is not None:
            v = closes.get(iid)
            if v is not None and math.isfinite(v) and v > 0:
                return float(v)
        if iid in self.marks:
            return self.marks[iid]
        raise ExecutionError(f"portfolio {self.portfolio_id}: no price to value "
                             f"{iid} (held {self.positions[iid]:g} shares)")

    def account(self) -> Account:
        marks = self.marks
        value = sum(q * (marks[i] if i in marks else self._mark(i, None))
                    for i, q in self.positions.items())
        return Account(self.last_session, self.cash, value, self.cash + value)

    def snapshot(self, day: Any, closes: Mapping[str, float] | None = None) -> PositionsSnapshot:
        """Holdings valued at ``closes`` (instrument -> close of ``day``); an instrument
        without one is valued at its latest mark."""
        day = as_date(day, "snapshot date")
        marked = [(i, q, self._mark(i, closes)) for i, q in sorted(self.positions.items())]
        value = sum(q * c for _, q, c in marked)
        equity = self.cash + value
        rows = tuple(PositionRow(i, q, c, q * c, q * c / equity if equity > 0 else math.nan)
                     for i, q, c in marked)
        return PositionsSnapshot(day, self.portfolio_id, self.mode, self.cash, value, equity,
                                 rows)
