"""Paper trading, one session at a time: the book (cash, shares, marks) at the close of the
previous session and the orders still open then go into a ``PaperBroker``; the session's
splits and dividends apply, the open orders fill on its bars, the book is marked at its
closes, and the session's target weights (if any) become the orders for the next session.

The stored ``orders`` rows carry each order's latest status, which a later session may have
changed; ``open_orders_at`` rebuilds what was open at the start of a session from the
orders and the fills dated before it, so re-running a past session sees what it saw then.

A session runs on the simulator's array path (``ArrayBook``): the same fills, book and orders
as a ``PaperBroker`` would give, every instrument at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from prometheus_dagster.engines.execution.config import ExecutionConfig
from prometheus_dagster.engines.execution.errors import ExecutionError
from prometheus_dagster.engines.execution.orders import QTY_TOL, Fill, Order, as_date
from prometheus_dagster.engines.execution.schemas import CASH_ROW
from prometheus_dagster.engines.execution.simulator import PositionsSnapshot
from prometheus_dagster.engines.execution.vectorized import ArrayBook, MarketArrays

log = logging.getLogger(__name__)

BAR_COLUMNS = ["instrument_id", "open", "high", "low", "close", "volume"]
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class PaperBook:
    """A paper portfolio at the close of ``as_of`` (None: a new book, all cash)."""

    as_of: date | None
    cash: float
    positions: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)

    @classmethod
    def new(cls, cash: float) -> PaperBook:
        return cls(None, float(cash))

    @classmethod
    def from_snapshot(cls, snapshot: PositionsSnapshot) -> PaperBook:
        return cls(snapshot.date, float(snapshot.cash),
                   {p.instrument_id: float(p.shares) for p in snapshot.positions},
                   {p.instrument_id: float(p.close) for p in snapshot.positions})

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> PaperBook:
        """The book of one ``positions_snapshots`` date (its CASH row and holdings)."""
        days = pd.to_datetime(rows["date"]).dt.date.unique()
        if len(days) != 1:
            raise ExecutionError(f"a paper book is one session's snapshot; got {len(days)} "
                                 "dates")
        cash = rows.loc[rows["instrument_id"] == CASH_ROW, "shares"]
        if len(cash) != 1:
            raise ExecutionError(f"the snapshot of {days[0]} has {len(cash)} CASH rows "
                                 "(expected one)")
        held = rows[rows["instrument_id"] != CASH_ROW]
        return cls(days[0], float(cash.iloc[0]),
                   dict(zip(held["instrument_id"], held["shares"].astype(float), strict=True)),
                   dict(zip(held["instrument_id"], held["close"].astype(float), strict=True)))


def _optional(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        or value is pd.NaT else value


def open_orders_at(orders: pd.DataFrame, fills: pd.DataFrame, session: Any) -> list[Order]:
    """The orders (``orders`` rows of one paper portfolio) open at the start of ``session``,
    as they stood then: decided before it, not closed before it (a closed order's
    ``updated_on`` is the session that closed it), with the shares that ``fills`` dated before
    it had filled."""
    day = as_date(session, "session")
    if orders.empty:
        return []
    decided = pd.to_datetime(orders["decided_on"]).dt.date
    earlier = fills[pd.to_datetime(fills["date"]).dt.date < day] if len(fills) else fills
    filled: dict[str, float] = {}
    value: dict[str, float] = {}
    last_fill: dict[str, date] = {}
    for f in earlier.itertuples(index=False):
        filled[f.order_id] = filled.get(f.order_id, 0.0) + float(f.quantity)
        value[f.order_id] = value.get(f.order_id, 0.0) + float(f.quantity) * float(f.price)
        last_fill[f.order_id] = max(last_fill.get(f.order_id, date.min), as_date(f.date))
    out = []
    for row, decided_on in zip(orders.itertuples(index=False), decided, strict=True):
        if decided_on >= day:
            continue
        updated = _optional(row.updated_on)
        updated = as_date(updated) if updated is not None else None
        if row.status not in OPEN_STATUSES and updated is not None and updated < day:
            continue
        qty = float(filled.get(row.order_id, 0.0))
        if qty >= float(row.quantity) - QTY_TOL:
            continue
        kept_reason = row.status in OPEN_STATUSES and (updated is None or updated < day)
        out.append(Order(
            order_id=row.order_id, decision_id=row.decision_id, portfolio_id=row.portfolio_id,
            instrument_id=row.instrument_id, side=row.side, quantity=float(row.quantity),
            decided_on=decided_on, order_type=row.order_type,
            limit_price=_optional(row.limit_price), stop_price=_optional(row.stop_price),
            mode=row.mode, status="PARTIALLY_FILLED" if qty > QTY_TOL else "NEW",
            filled_quantity=qty,
            avg_fill_price=float(value[row.order_id]) / qty if qty > QTY_TOL else None,
            status_reason=_optional(row.status_reason) if kept_reason else None,
            updated_on=last_fill.get(row.order_id) if qty > QTY_TOL else
            (updated if kept_reason else None)))
    return out


@dataclass
class PaperSession:
    """What one paper session did: every order on the book (those carried in, as they stand
    after the session, then the new ones), the session's fills, the book at its close, the
    new orders and the dividends paid per instrument."""

    orders: list[Order]
    fills: list[Fill]
    snapshot: PositionsSnapshot
    new_orders: list[Order]
    dividends: dict[str, float]

    @property
    def book(self) -> PaperBook:
        return PaperBook.from_snapshot(self.snapshot)

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders if o.is_open]


def _dividends(book: PaperBook, actions: pd.DataFrame) -> dict[str, float]:
    """Cash paid per instrument by the session's dividends on the holdings (after its
    splits), as the simulator books it."""
    if actions.empty:
        return {}
    kinds = actions["action_type"].astype(str)
    values = pd.to_numeric(actions["value"], errors="coerce")
    ids = actions["instrument_id"].astype(str)
    held = dict(book.positions)
    for iid, v in zip(ids[kinds == "SPLIT"], values[kinds == "SPLIT"], strict=True):
        if math.isfinite(v) and v > 0 and held.get(iid):
            held[iid] *= v
    paid: dict[str, float] = {}
    for iid, v in zip(ids[kinds == "DIVIDEND"], values[kinds == "DIVIDEND"], strict=True):
        if math.isfinite(v) and held.get(iid):
            paid[iid] = paid.get(iid, 0.0) + held[iid] * v
    return paid


def run_paper_session(cfg: ExecutionConfig, *, portfolio_id: str, market_id: str,
                      config_id: str, session: Any, book: PaperBook,
                      open_orders: list[Order], actions: pd.DataFrame, bars: pd.DataFrame,
                      target_weights: Mapping[str, float] | None,
                      decision_id: str) -> PaperSession:
    """One session of a paper portfolio (see the module docstring). ``bars`` are the
    session's (instrument_id, open, high, low, close, volume); ``actions`` its corporate
    actions (instrument_id, action_type, value); ``target_weights`` the session's target
    (None: no new target, the holdings are kept and no orders placed)."""
    day = as_date(session, "session")
    if book.as_of is not None and book.as_of >= day:
        raise ExecutionError(f"paper book of {portfolio_id} is at the close of {book.as_of}; "
                             f"session {day} must come after it")
    if bars.empty:
        raise ExecutionError(f"paper session {day} of {portfolio_id}: no price bars for "
                             f"{market_id}; ingest the session's prices first")
    arrays = ArrayBook(cfg, MarketArrays.empty([day], capacity=len(bars) + 8),
                       cash=book.cash, positions=book.positions, marks=book.marks)
    for order in open_orders:
        if order.mode != "PAPER" or order.portfolio_id != portfolio_id:
            raise ExecutionError(
                f"order {order.order_id} ({order.mode}, {order.portfolio_id}) does not belong "
                f"to this PAPER book of {portfolio_id}")
        arrays.add_order(order)
    arrays.feed(bars[BAR_COLUMNS], actions)
    arrays.advance()
    fills = arrays.fills(portfolio_id=portfolio_id, decision_id=decision_id, mode="PAPER")
    snapshot = arrays.snapshot(portfolio_id, mode="PAPER")
    carried = len(open_orders)
    if target_weights is not None:
        arrays.plan(target_weights)
        if arrays.skipped:
            log.warning("portfolio %s on %s: %d instrument(s) skipped: no usable reference "
                        "price", portfolio_id, day, arrays.skipped)
    orders = arrays.orders(portfolio_id=portfolio_id, decision_id=decision_id, mode="PAPER")
    return PaperSession(orders, fills, snapshot, orders[carried:],
                        _dividends(book, actions))
