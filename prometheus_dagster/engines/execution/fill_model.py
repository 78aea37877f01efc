"""The fill model of the market simulator: which price an order gets on a session's bar, the
slippage, the participation cap and the commission. Pure functions of one order and one bar.

Price rules (all on the execution session's bar, never on the decision date's):

* MARKET: the ``fill_price`` basis: open, close or vwap, proxied by (high + low + close) / 3.
* LIMIT: fills only if the range crosses the limit (a buy needs low <= limit, a sell
  high >= limit), at the limit or better: a buy at min(open, limit), a sell at
  max(open, limit), so a gap through the limit fills at the open.
* STOP: triggers when the range touches the stop (a buy stop high >= stop, a sell stop
  low <= stop), then fills as a market order at the stop, or at the open when the session
  opened beyond it (a buy at max(open, stop), a sell at min(open, stop)). A stop that
  filled in part (``carry_unfilled``) has triggered: later sessions fill it as a market order.

Slippage then worsens the price by ``slippage_bps`` (buys higher, sells lower); a LIMIT
fill never goes past its limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from prometheus_dagster.engines.execution.config import ExecutionConfig
from prometheus_dagster.engines.execution.errors import ExecutionError
from prometheus_dagster.engines.execution.orders import Order

BAR_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


class Bar(NamedTuple):
    """One instrument's daily bar."""

    open: float
    high: float
    low: float
    close: float
    volume: float = math.nan

    def usable(self) -> bool:
        """Open, high, low and close are all positive numbers."""
        return all(math.isfinite(p) and p > 0 for p in (self.open, self.high, self.low,
                                                         self.close))


class BarTable:
    """One session's bars, looked up by instrument without building a ``Bar`` per row: from
    a frame (indexed by instrument_id, or with an ``instrument_id`` column) with columns open,
    high, low, close and optionally volume, or from a mapping instrument -> Bar / mapping of
    the fields / (open, high, low, close[, volume]) sequence."""

    def __init__(self, bars: pd.DataFrame | Mapping[str, Any] | None):
        if bars is None:
            bars = {}
        if isinstance(bars, pd.DataFrame):
            frame = bars.set_index("instrument_id") if "instrument_id" in bars.columns else bars
            missing = [c for c in BAR_FIELDS[:4] if c not in frame.columns]
            if missing:
                raise ExecutionError(f"session bars: missing column(s) {', '.join(missing)}")
            if frame.index.has_duplicates:
                dup = frame.index[frame.index.duplicated()][0]
                raise ExecutionError(f"session bars: instrument {dup} appears twice")
            self.index = pd.Index(frame.index.astype(str))
            self.values = np.column_stack([
                frame[c].to_numpy(dtype=float) if c in frame.columns
                else np.full(len(frame), math.nan) for c in BAR_FIELDS]) if len(frame) else (
                np.empty((0, len(BAR_FIELDS))))
            self._bars: dict[str, Bar] | None = None
        else:
            self._bars = {str(k): _as_bar(v) for k, v in bars.items()}
            self.index = pd.Index(list(self._bars), dtype=object)
            self.values = np.array([tuple(b) for b in self._bars.values()], dtype=float).reshape(
                -1, len(BAR_FIELDS))

    def lookup(self, instrument_ids: list[str]) -> list[Bar | None]:
        """The bar of each instrument (None where the session has none)."""
        if self._bars is not None:
            return [self._bars.get(i) for i in instrument_ids]
        if not instrument_ids:
            return []
        pos = self.index.get_indexer(instrument_ids)
        found = pos >= 0
        rows = iter(self.values[pos[found]].tolist())
        return [Bar(*next(rows)) if f else None for f in found.tolist()]

    def closes(self) -> dict[str, float]:
        """Instrument -> close, for the positive closes."""
        close = self.values[:, 3]
        ok = np.isfinite(close) & (close > 0)
        ids = self.index if ok.all() else self.index[ok]
        return dict(zip(ids, close[ok].tolist(), strict=True))


def _as_bar(bar: Any) -> Bar:
    if isinstance(bar, Bar):
        return bar
    if isinstance(bar, Mapping):
        return Bar(*(float(bar.get(f, math.nan)) for f in BAR_FIELDS))
    return Bar(*(float(v) for v in bar))


def session_bars(bars: pd.DataFrame | Mapping[str, Any] | None) -> dict[str, Bar]:
    """Instrument -> ``Bar`` of a session given as ``BarTable`` accepts it."""
    table = BarTable(bars)
    return dict(zip(table.index, table.lookup(list(table.index)), strict=True))


def basis_price(bar: Bar, fill_price: str) -> float:
    """The MARKET-order price basis of the bar."""
    if fill_price == "open":
        return bar.open
    if fill_price == "close":
        return bar.close
    return (bar.high + bar.low + bar.close) / 3.0


def _order_price(value: float | None, order: Order, field: str) -> float:
    # Order validation sets the price its order type needs; None here is a corrupted order
    if value is None:
        raise ExecutionError(f"{order.order_type} order {order.order_id} has no {field}")
    return float(value)


def reference_price(order: Order, bar: Bar, fill_price: str) -> tuple[float | None, str | None]:
    """(price before slippage, None) when the order executes on the bar, else (None, why)."""
    buy = order.side == "BUY"
    if order.order_type == "MARKET":
        return basis_price(bar, fill_price), None
    if order.order_type == "LIMIT":
        limit = _order_price(order.limit_price, order, "limit_price")
        if buy:
            if bar.low <= limit:
                return min(bar.open, limit), None
            return None, f"limit {limit:g} not reached (low {bar.low:g})"
        if bar.high >= limit:
            return max(bar.open, limit), None
        return None, f"limit {limit:g} not reached (high {bar.high:g})"
    if order.filled_quantity > 0:  # triggered in an earlier session: now a market order
        return basis_price(bar, fill_price), None
    stop = _order_price(order.stop_price, order, "stop_price")
    if buy:
        if bar.high >= stop:
            return max(bar.open, stop), None
        return None, f"stop {stop:g} not triggered (high {bar.high:g})"
    if bar.low <= stop:
        return min(bar.open, stop), None
    return None, f"stop {stop:g} not triggered (low {bar.low:g})"


def slipped_price(order: Order, base: float, slippage_bps: float) -> float:
    """``base`` worsened by the slippage: buys pay more, sells receive less; a LIMIT order's
    price never goes past its limit."""
    s = slippage_bps / 1e4
    price = base * (1.0 + s) if order.side == "BUY" else base * (1.0 - s)
    if order.order_type != "LIMIT" or order.limit_price is None:
        return price
    limit = float(order.limit_price)
    return min(price, limit) if order.side == "BUY" else max(price, limit)


def commission(quantity: float, price: float, cfg: ExecutionConfig) -> float:
    """commission_bps of the traded value plus commission_per_share, at least
    min_commission (per fill)."""
    fee = cfg.commission_bps / 1e4 * quantity * price + cfg.commission_per_share * quantity
    return max(fee, cfg.min_commission)


def participation_capacity(bar: Bar, cfg: ExecutionConfig) -> float:
    """Shares of the instrument the session lets the simulator trade: max_participation of
    its volume, rounded down to the lot size (infinite without a cap; 0 when the volume is
    missing or zero)."""
    if cfg.max_participation is None:
        return math.inf
    volume = bar.volume
    if not math.isfinite(volume) or volume <= 0:
        return 0.0
    raw = cfg.max_participation * volume
    return math.floor(raw / cfg.lot_size + 1e-9) * cfg.lot_size
