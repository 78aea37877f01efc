"""Orders and fills: immutable records, validated on construction.

Quantities are shares and always positive; the direction is ``side``. An order's ``status``
and ``filled_quantity`` change as a broker works it: the broker keeps a new copy
(``dataclasses.replace``) at every change, so an ``Order`` handed out never changes under
its holder.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd

from prometheus_dagster.engines.execution.errors import OrderValidationError

Side = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT", "STOP"]
Mode = Literal["BACKTEST", "PAPER", "LIVE"]
OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "REJECTED"]

SIDES: tuple[str, ...] = ("BUY", "SELL")
ORDER_TYPES: tuple[str, ...] = ("MARKET", "LIMIT", "STOP")
MODES: tuple[str, ...] = ("BACKTEST", "PAPER", "LIVE")
ORDER_STATUSES: tuple[str, ...] = ("NEW", "PARTIALLY_FILLED", "FILLED", "CANCELLED",
                                   "REJECTED")
OPEN_STATUSES: frozenset[str] = frozenset({"NEW", "PARTIALLY_FILLED"})
QTY_TOL = 1e-9  # shares: a remainder below this is nothing


def as_date(value: Any, what: str = "date") -> date:
    """A plain ``datetime.date`` from a date, datetime, pandas Timestamp or ISO string."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise OrderValidationError(f"{what} {value!r} is not a date") from None
    if ts is pd.NaT:
        raise OrderValidationError(f"{what} is missing")
    return ts.date()


def _choice(owner: str, field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OrderValidationError(
            f"{owner}: {field} {value!r} is not one of {', '.join(allowed)}")


def _text(owner: str, field: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise OrderValidationError(f"{owner}: {field} must be a non-empty string, got {value!r}")


def _finite(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _positive(owner: str, field: str, value: Any, hint: str = "") -> None:
    if not _finite(value) or value <= 0:
        raise OrderValidationError(
            f"{owner}: {field} must be a positive number, got {value!r}{hint}")


@dataclass(frozen=True, kw_only=True)
class Order:
    """An instruction to trade ``quantity`` shares of one instrument, decided after the close
    of ``decided_on``. MARKET orders take no prices; LIMIT orders need ``limit_price``; STOP
    orders need ``stop_price`` (and become market orders once triggered)."""

    order_id: str
    decision_id: str
    portfolio_id: str
    instrument_id: str
    side: Side
    quantity: float
    decided_on: date
    order_type: OrderType = "MARKET"
    limit_price: float | None = None
    stop_price: float | None = None
    mode: Mode = "BACKTEST"
    status: OrderStatus = "NEW"
    filled_quantity: float = 0.0
    avg_fill_price: float | None = None
    status_reason: str | None = None
    updated_on: date | None = None

    def __post_init__(self) -> None:
        for field in ("order_id", "decision_id", "portfolio_id", "instrument_id"):
            _text("order", field, getattr(self, field))
        who = f"order {self.order_id}"
        _choice(who, "side", self.side, SIDES)
        _choice(who, "order_type", self.order_type, ORDER_TYPES)
        _choice(who, "mode", self.mode, MODES)
        _choice(who, "status", self.status, ORDER_STATUSES)
        _positive(who, "quantity", self.quantity,
                  " (shares; the direction is given by side BUY or SELL)")
        object.__setattr__(self, "decided_on", as_date(self.decided_on, f"{who}: decided_on"))
        if self.updated_on is not None:
            object.__setattr__(self, "updated_on",
                               as_date(self.updated_on, f"{who}: updated_on"))
        if self.order_type == "LIMIT":
            if self.limit_price is None:
                raise OrderValidationError(f"{who}: a LIMIT order needs a limit_price")
            _positive(who, "limit_price", self.limit_price)
        elif self.limit_price is not None:
            raise OrderValidationError(
                f"{who}: a {self.order_type} order takes no limit_price "
                f"(got {self.limit_price!r}); use order_type LIMIT")
        if self.order_type == "STOP":
            if self.stop_price is None:
                raise OrderValidationError(f"{who}: a STOP order needs a stop_price")
            _positive(who, "stop_price", self.stop_price)
        elif self.stop_price is not None:
            raise OrderValidationError(
                f"{who}: a {self.order_type} order takes no stop_price "
                f"(got {self.stop_price!r}); use order_type STOP")
        if not _finite(self.filled_quantity) or self.filled_quantity < 0 or (
                self.filled_quantity > self.quantity + QTY_TOL):
            raise OrderValidationError(
                f"{who}: filled_quantity {self.filled_quantity!r} must lie in "
                f"[0, quantity {self.quantity}]")
        if self.status == "FILLED" and self.remaining > QTY_TOL:
            raise OrderValidationError(
                f"{who}: status FILLED with {self.remaining:g} shares unfilled")
        if self.avg_fill_price is not None:
            _positive(who, "avg_fill_price", self.avg_fill_price)

    @property
    def remaining(self) -> float:
        """Shares still to fill (0 for a filled order)."""
        return max(self.quantity - self.filled_quantity, 0.0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self.side == "BUY" else -1


@dataclass(frozen=True, kw_only=True)
class Fill:
    """One execution of (part of) an order in one session. ``price`` includes slippage;
    ``slippage_cost`` = quantity x |price - price before slippage|; ``commission`` is paid on
    top of quantity x price."""

    fill_id: str
    order_id: str
    decision_id: str
    portfolio_id: str
    instrument_id: str
    date: dt.date  # the field's name shadows the type in the class body
    decided_on: dt.date
    side: Side
    quantity: float
    price: float
    reference_price: float
    commission: float
    slippage_cost: float
    mode: Mode = "BACKTEST"

    def __post_init__(self) -> None:
        for field in ("fill_id", "order_id", "decision_id", "portfolio_id", "instrument_id"):
            _text("fill", field, getattr(self, field))
        who = f"fill {self.fill_id}"
        _choice(who, "side", self.side, SIDES)
        _choice(who, "mode", self.mode, MODES)
        _positive(who, "quantity", self.quantity)
        _positive(who, "price", self.price)
        _positive(who, "reference_price", self.reference_price)
        for field in ("commission", "slippage_cost"):
            value = getattr(self, field)
            if not _finite(value) or value < 0:
                raise OrderValidationError(f"{who}: {field} must be >= 0, got {value!r}")
        object.__setattr__(self, "date", as_date(self.date, f"{who}: date"))
        object.__setattr__(self, "decided_on", as_date(self.decided_on, f"{who}: decided_on"))
        if self.date <= self.decided_on:
            raise OrderValidationError(
                f"{who}: dated {self.date} but decided on {self.decided_on}; an order executes "
                "only in a session after the one it was decided on")

    @property
    def value(self) -> float:
        """quantity x price (before commission)."""
        return self.quantity * self.price

    @property
    def cash_flow(self) -> float:
        """Change of cash: a buy pays value + commission, a sell receives value - commission."""
        sign = 1.0 if self.side == "BUY" else -1.0
        return -sign * self.quantity * self.price - self.commission
