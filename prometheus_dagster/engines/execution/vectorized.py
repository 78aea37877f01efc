"""The fast path of the market simulator: a book held in arrays and moved by the compiled
kernel (``kernel``), all instruments of a session at once.

* ``MarketArrays``: bars (open, high, low, close, volume), split ratios and dividends per
  share as (sessions x instruments) arrays, instrument ids sorted.
* ``ArrayBook``: cash, shares, marks, the order book and the fills of one portfolio;
  ``run`` walks many sessions in one compiled call (target weights on rebalance sessions),
  ``session`` walks one (for a caller that decides between sessions, like the backtest).
  ``orders`` / ``fills`` give the ``Order`` / ``Fill`` records, ``frames`` the table rows.

Same rules and same arithmetic as ``MarketSimulator`` with ``plan_orders`` (the reference
loop), so the equity agrees to the last digit; see ``kernel`` for the one difference in
scope: one split and one dividend per instrument and session (several of a kind are
combined, splits by product, dividends by sum).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.engines.execution import kernel as K
from prometheus_dagster.engines.execution.config import ExecutionConfig
from prometheus_dagster.engines.execution.errors import ExecutionError
from prometheus_dagster.engines.execution.orders import (
    QTY_TOL,
    Fill,
    Mode,
    Order,
    OrderStatus,
    OrderType,
    as_date,
)
from prometheus_dagster.engines.execution.planner import order_id_for
from prometheus_dagster.engines.execution.simulator import PositionRow, PositionsSnapshot

BAR_FIELDS = ("open", "high", "low", "close", "volume")
STATUSES: tuple[OrderStatus, ...] = ("NEW", "PARTIALLY_FILLED", "FILLED", "CANCELLED")
ORDER_TYPES: tuple[OrderType, ...] = ("MARKET", "LIMIT", "STOP")


@dataclass
class MarketArrays:
    """Bars ``bars[field, session, instrument]`` (NaN: no bar), ``split[session,
    instrument]`` (new shares per old, NaN or 1: none) and ``dividend`` (cash per share,
    NaN or 0: none). Arrays may have more instrument columns than ``instrument_ids`` (room
    for instruments still to come, all NaN)."""

    sessions: list[date]
    instrument_ids: list[str]
    bars: np.ndarray
    split: np.ndarray
    dividend: np.ndarray

    @classmethod
    def from_arrays(cls, sessions: Sequence[Any], instrument_ids: Sequence[str],
                    open: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                    volume: np.ndarray | None = None, split: np.ndarray | None = None,
                    dividend: np.ndarray | None = None, *,
                    allow_room: bool = False) -> MarketArrays:
        days = [as_date(d, "session") for d in sessions]
        shape = (len(days), len(instrument_ids))
        if allow_room:
            shape = np.shape(open)
        if any(b <= a for a, b in zip(days, days[1:], strict=False)):
            raise ExecutionError("market sessions must be strictly increasing")
        bars = np.empty((5, *shape))
        for i, (name, arr) in enumerate(zip(BAR_FIELDS, (open, high, low, close, volume),
                                            strict=True)):
            if arr is None:
                bars[i] = np.nan
                continue
            arr = np.asarray(arr, dtype=float)
            if arr.shape != shape:
                raise ExecutionError(f"market {name} has shape {arr.shape}, expected {shape}")
            bars[i] = arr
        extra = []
        for name, arr in (("split", split), ("dividend", dividend)):
            arr = np.full(shape, np.nan) if arr is None else np.asarray(arr, dtype=float)
            if arr.shape != shape:
                raise ExecutionError(f"market {name} has shape {arr.shape}, expected {shape}")
            extra.append(np.ascontiguousarray(arr))
        return cls(days, [str(i) for i in instrument_ids], bars, *extra)

    @classmethod
    def empty(cls, sessions: Sequence[Any], capacity: int = 64) -> MarketArrays:
        """No instrument yet, room for ``capacity``; ``ArrayBook.feed`` fills it session by
        session."""
        days = [as_date(d, "session") for d in sessions]
        shape = (len(days), capacity)
        return cls.from_arrays(days, [], *(np.full(shape, np.nan) for _ in BAR_FIELDS),
                               allow_room=True)

    @classmethod
    def from_frames(cls, prices: pd.DataFrame, actions: pd.DataFrame | None = None,
                    sessions: Sequence[Any] | None = None) -> MarketArrays:
        """From long ``prices`` rows (date, instrument_id, open, high, low, close[, volume])
        and ``corporate_actions`` rows (instrument_id, date, action_type, value)."""
        missing = [c for c in ("date", "instrument_id", *BAR_FIELDS[:4])
                   if c not in prices.columns]
        if missing:
            raise ExecutionError(f"market prices: missing column(s) {', '.join(missing)}")
        day = pd.to_datetime(prices["date"]).dt.normalize()
        days = pd.DatetimeIndex(sorted(set(day))) if sessions is None else \
            pd.DatetimeIndex(pd.to_datetime(list(sessions))).normalize()
        ids = sorted(set(prices["instrument_id"].astype(str)))
        if actions is not None and len(actions):
            ids = sorted(set(ids) | set(actions["instrument_id"].astype(str)))
        rows = days.get_indexer(day)
        cols = pd.Index(ids).get_indexer(prices["instrument_id"].astype(str))
        keep = rows >= 0
        if pd.Series(rows[keep] * len(ids) + cols[keep]).duplicated().any():
            raise ExecutionError("market prices: an instrument has two bars on one session")
        fields = []
        for name in BAR_FIELDS:
            arr = np.full((len(days), len(ids)), np.nan)
            if name in prices.columns:
                arr[rows[keep], cols[keep]] = prices[name].to_numpy(dtype=float)[keep]
            fields.append(arr)
        split = np.full((len(days), len(ids)), np.nan)
        dividend = np.full((len(days), len(ids)), np.nan)
        if actions is not None and len(actions):
            a_rows = days.get_indexer(pd.to_datetime(actions["date"]).dt.normalize())
            a_cols = pd.Index(ids).get_indexer(actions["instrument_id"].astype(str))
            kind = actions["action_type"].astype(str).to_numpy()
            value = pd.to_numeric(actions["value"], errors="coerce").to_numpy(dtype=float)
            for r, c, k, v in zip(a_rows, a_cols, kind, value, strict=True):
                if r < 0 or not math.isfinite(v):
                    continue
                if k == "SPLIT" and v > 0:
                    split[r, c] = v if np.isnan(split[r, c]) else split[r, c] * v
                elif k == "DIVIDEND":
                    dividend[r, c] = v if np.isnan(dividend[r, c]) else dividend[r, c] + v
        open_, high, low, close, volume = fields
        return cls.from_arrays(list(days), ids, open_, high, low, close, volume, split=split,
                               dividend=dividend)


class ArrayBook:
    """Cash, shares, marks, orders and fills of one portfolio on a ``MarketArrays`` market,
    under the fill model and planner settings of ``cfg``."""

    def __init__(self, cfg: ExecutionConfig, market: MarketArrays, *, cash: float,
                 positions: Mapping[str, float] | None = None,
                 marks: Mapping[str, float] | None = None, keep_holdings: bool = False):
        if not math.isfinite(cash):
            raise ExecutionError(f"initial cash {cash!r} is not a number")
        self.cfg = cfg
        self.market = market
        n, T = market.bars.shape[2], len(market.sessions)
        self._col = {iid: j for j, iid in enumerate(market.instrument_ids)}
        self._order = np.argsort(np.array(market.instrument_ids, dtype=object)).astype(np.int64)
        self.positions = np.zeros(n)
        self.marks = np.full(n, np.nan)
        self.state = np.array([float(cash)])
        self.daily = np.full((T, K.DAILY_COLS), np.nan)
        self.holdings = np.full((T if keep_holdings else 0, n), np.nan)
        held = {str(i): float(q) for i, q in (positions or {}).items() if abs(float(q)) > QTY_TOL}
        known = {str(i): float(m) for i, m in (marks or {}).items()}
        # holdings and marks of instruments without bars get columns of their own
        self._columns(sorted(set(held) | set(known)))
        for iid, q in held.items():
            self.positions[self._col[iid]] = q
        for iid, m in known.items():
            self.marks[self._col[iid]] = m
        self._orders = np.empty((16, K.ORDER_COLS))
        self._open = np.empty(16, dtype=np.int64)
        self._fills = np.empty((16, K.FILL_COLS))
        self.n_orders = self.n_open = self.n_fills = 0
        self.skipped = 0
        self.next_session = 0
        self._given: dict[int, Order] = {}

    def _column(self, iid: str) -> int:
        try:
            return self._col[str(iid)]
        except KeyError:
            raise ExecutionError(f"instrument {iid} is not in the market arrays") from None

    @property
    def cash(self) -> float:
        return float(self.state[0])

    def _reserve(self, orders: int, fills: int) -> None:
        if self.n_orders + orders > len(self._orders):
            size = max(2 * len(self._orders), self.n_orders + orders)
            grown = np.empty((size, K.ORDER_COLS))
            grown[:self.n_orders] = self._orders[:self.n_orders]
            self._orders = grown
        if self.n_open + orders > len(self._open):
            size = max(2 * len(self._open), self.n_open + orders)
            grown_open = np.empty(size, dtype=np.int64)
            grown_open[:self.n_open] = self._open[:self.n_open]
            self._open = grown_open
        if self.n_fills + fills > len(self._fills):
            size = max(2 * len(self._fills), self.n_fills + fills)
            grown_fills = np.empty((size, K.FILL_COLS))
            grown_fills[:self.n_fills] = self._fills[:self.n_fills]
            self._fills = grown_fills

    def _settings(self) -> tuple:
        cfg = self.cfg
        cap = math.inf if cfg.max_participation is None else float(cfg.max_participation)
        return (K.BASIS[cfg.fill_price], float(cfg.slippage_bps), cap, float(cfg.lot_size),
                float(cfg.commission_bps), float(cfg.commission_per_share),
                float(cfg.min_commission), bool(cfg.carry_unfilled),
                cfg.on_missing_bar == "keep")

    def _targets_matrix(self, targets: Mapping[Any, Mapping[str, float] | np.ndarray] | None,
                        first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        n, T = len(self.market.instrument_ids), len(self.market.sessions)
        width = self.market.bars.shape[2]
        rebalance = np.full(T, -1, dtype=np.int64)
        rows: list[np.ndarray] = []
        for key, weights in (targets or {}).items():
            t = key if isinstance(key, int | np.integer) else self._session_index(key)
            if not first <= t < last:
                continue
            if isinstance(weights, np.ndarray):
                row = np.asarray(weights, dtype=float)
                if row.shape != (n,):
                    raise ExecutionError(f"target weights have shape {row.shape}, expected "
                                         f"({n},) in instrument order")
                row = np.r_[row, np.zeros(width - n)]
            else:
                row = np.zeros(width)
                for iid, w in weights.items():
                    x = float(w)
                    if not math.isfinite(x):
                        raise ExecutionError(f"target weight of {iid} is {w!r}; it must be "
                                             "a finite number")
                    row[self._column(iid)] = x
            rebalance[t] = len(rows)
            rows.append(row)
        matrix = np.array(rows) if rows else np.zeros((0, width))
        return rebalance, matrix

    def _session_index(self, day: Any) -> int:
        d = as_date(day, "session")
        try:
            return self.market.sessions.index(d)
        except ValueError:
            raise ExecutionError(f"{d} is not a session of the market arrays") from None

    def run(self, targets: Mapping[Any, Mapping[str, float] | np.ndarray] | None = None,
            until: int | None = None) -> None:
        """Walk the sessions from the next one to ``until`` (exclusive; default all) in one
        compiled call; ``targets``: session (index or date) -> target weights (mapping
        instrument -> weight, or an array in instrument order) decided at its close."""
        first = self.next_session
        last = len(self.market.sessions) if until is None else until
        if last <= first:
            return
        rebalance, matrix = self._targets_matrix(targets, first, last)
        n = len(self.market.instrument_ids)
        planned = int((rebalance[first:last] >= 0).sum()) * n
        self._reserve(planned, self.n_open + planned)
        m = self.market
        basis, slip, cap, lot, bps, per_share, min_fee, carry, keep = self._settings()
        t = first
        while t < last:
            self.n_orders, self.n_open, self.n_fills, skipped, t = K.run_sessions(
                t, last, m.bars, m.split, m.dividend, rebalance, matrix, self._orders,
                self.n_orders, self._open, self.n_open, self._fills, self.n_fills,
                self.positions, self.marks, self.state, self.daily, self.holdings,
                self._order, basis, slip, cap, lot, bps, per_share, min_fee, carry, keep,
                float(self.cfg.min_order_value))
            self.skipped += skipped
            self.next_session = t
            if t < last:  # the fills of the next session might not fit: grow and go on
                self._reserve(0, self.n_open + len(self._fills))

    def _grow(self, size: int) -> None:
        """Room for ``size`` instrument columns in the market and the book."""
        m = self.market
        have = m.bars.shape[2]
        if size <= have:
            return
        size = max(size, 2 * have)

        def wider(arr: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((*arr.shape[:-1], size), fill, dtype=arr.dtype)
            out[..., :have] = arr
            return out

        m.bars, m.split, m.dividend = (wider(m.bars, np.nan), wider(m.split, np.nan),
                                       wider(m.dividend, np.nan))
        self.positions, self.marks = wider(self.positions, 0.0), wider(self.marks, np.nan)
        self.holdings = wider(self.holdings, np.nan)

    def _columns(self, ids: Sequence[str]) -> np.ndarray:
        """Columns of the instruments, adding the ones not seen yet."""
        new = [i for i in dict.fromkeys(ids) if i not in self._col]
        if new:
            m = self.market
            self._grow(len(m.instrument_ids) + len(new))
            for iid in new:
                self._col[iid] = len(m.instrument_ids)
                m.instrument_ids.append(iid)
            self._order = np.argsort(np.array(m.instrument_ids, dtype=object)).astype(np.int64)
        return np.array([self._col[i] for i in ids], dtype=np.int64)

    def feed(self, bars: pd.DataFrame, actions: pd.DataFrame | None = None) -> None:
        """The next session's bars (instrument_id, open, high, low, close[, volume]) and
        corporate actions (instrument_id, action_type, value), for a book on a market built
        session by session (``MarketArrays.empty``)."""
        t = self.next_session
        if t >= len(self.market.sessions):
            raise ExecutionError("every session of the market was already walked")
        missing = [c for c in ("instrument_id", *BAR_FIELDS[:4]) if c not in bars.columns]
        if missing:
            raise ExecutionError(f"session bars: missing column(s) {', '.join(missing)}")
        ids = bars["instrument_id"].astype(str).tolist()
        if len(set(ids)) != len(ids):
            dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
            raise ExecutionError(f"session bars: instrument {dup} appears twice")
        act_ids = [] if actions is None or actions.empty else \
            actions["instrument_id"].astype(str).tolist()
        cols = self._columns(ids + act_ids)
        m = self.market
        m.bars[:, t, :] = np.nan
        for i, name in enumerate(BAR_FIELDS):
            if name in bars.columns:
                m.bars[i, t, cols[:len(ids)]] = bars[name].to_numpy(dtype=float)
        m.split[t, :] = np.nan
        m.dividend[t, :] = np.nan
        if act_ids and actions is not None:
            kinds = actions["action_type"].astype(str).tolist()
            values = pd.to_numeric(actions["value"], errors="coerce").to_numpy(dtype=float)
            for c, kind, v in zip(cols[len(ids):], kinds, values, strict=True):
                if not math.isfinite(v):
                    continue
                if kind == "SPLIT" and v > 0:
                    m.split[t, c] = v if np.isnan(m.split[t, c]) else m.split[t, c] * v
                elif kind == "DIVIDEND":
                    m.dividend[t, c] = v if np.isnan(m.dividend[t, c]) \
                        else m.dividend[t, c] + v

    def advance(self) -> None:
        """Walk the next session (actions, fills, marks, valuation), deciding nothing."""
        self.run(until=self.next_session + 1)

    def plan(self, target: Mapping[str, float]) -> int:
        """Orders toward ``target`` (instrument -> weight of equity) decided at the close of
        the last walked session, at its closes; returns how many."""
        t = self.next_session - 1
        if t < 0:
            raise ExecutionError("walk a session before planning orders at its close")
        row = np.zeros(self.market.bars.shape[2])
        cols = self._columns([str(i) for i in target])
        for c, w in zip(cols, target.values(), strict=True):
            x = float(w)
            if not math.isfinite(x):
                raise ExecutionError(f"target weight {w!r} is not a finite number")
            row[c] = x
        equity = float(self.daily[t, K.D_EQUITY])
        if equity <= 0:
            raise ExecutionError(f"equity must be positive to size orders, got {equity:g}")
        self._reserve(len(self.market.instrument_ids), 0)
        before = self.n_orders
        self.n_orders, self.n_open, skipped = K.plan_session(
            t, row, self.market.bars[3, t], equity, self.positions, self._orders,
            self.n_orders, self._open, self.n_open, float(self.cfg.lot_size),
            float(self.cfg.min_order_value), self._order)
        self.skipped += skipped
        return self.n_orders - before

    def snapshot(self, portfolio_id: str, mode: Mode = "BACKTEST") -> PositionsSnapshot:
        """Holdings at the close of the last walked session, as ``MarketSimulator.snapshot``
        gives them (instrument order, valued at the session's closes or the latest
        marks)."""
        t = self.next_session - 1
        ids = self.market.instrument_ids
        cash = float(self.state[0])
        held = [j for j in self._order.tolist() if self.positions[j] != 0.0]
        value = float(self.daily[t, K.D_VALUE])
        equity = float(self.daily[t, K.D_EQUITY])
        rows = tuple(PositionRow(ids[j], float(self.positions[j]), float(self.marks[j]),
                                 float(self.positions[j] * self.marks[j]),
                                 float(self.positions[j] * self.marks[j] / equity)
                                 if equity > 0 else math.nan) for j in held)
        return PositionsSnapshot(self.market.sessions[t], portfolio_id, mode, cash, value,
                                 equity, rows)

    def add_order(self, order: Order) -> None:
        """Put an order on the book as it stands (any type; NEW or PARTIALLY_FILLED, with
        what it filled so far): an order submitted by hand, or one still open from an
        earlier session. It executes from the first session after its ``decided_on``."""
        if not order.is_open:
            raise ExecutionError(f"order {order.order_id} is {order.status}: only open orders "
                                 "go on the book")
        j = int(self._columns([order.instrument_id])[0])
        decided = bisect_right(self.market.sessions, order.decided_on) - 1
        if decided < self.next_session - 1:
            raise ExecutionError(f"order {order.order_id} decided on {order.decided_on} but "
                                 "a later session was already processed: it would execute "
                                 "late")
        self._reserve(1, 0)
        k = self.n_orders
        row = self._orders[k]
        row[:] = np.nan
        row[K.O_INST], row[K.O_SIDE], row[K.O_QTY] = j, order.sign, order.quantity
        row[K.O_FILLED], row[K.O_DECIDED] = order.filled_quantity, decided
        row[K.O_TYPE] = ORDER_TYPES.index(order.order_type)
        row[K.O_LIMIT] = math.nan if order.limit_price is None else order.limit_price
        row[K.O_STOP] = math.nan if order.stop_price is None else order.stop_price
        row[K.O_STATUS] = STATUSES.index(order.status)
        row[K.O_AVG] = math.nan if order.avg_fill_price is None else order.avg_fill_price
        row[K.O_REASON], row[K.O_UPDATED] = 0, -1
        self._given[k] = order
        self._open[self.n_open] = k
        self.n_orders += 1
        self.n_open += 1

    def session(self, target: Mapping[str, float] | np.ndarray | None = None) -> None:
        """Walk the next session; ``target`` (if given) is decided at its close."""
        t = self.next_session
        self.run({t: target} if target is not None else None, until=t + 1)

    # -- reading the book --------------------------------------------------------------
    def positions_dict(self) -> dict[str, float]:
        ids = self.market.instrument_ids
        return {ids[j]: float(self.positions[j]) for j in self._order.tolist()
                if self.positions[j] != 0.0}

    def equity(self, t: int | None = None) -> np.ndarray | float:
        col = self.daily[:, K.D_EQUITY]
        return col[:self.next_session] if t is None else float(col[t])

    def orders(self, *, portfolio_id: str, decision_id: str | Mapping[int, str],
               mode: Mode = "BACKTEST") -> list[Order]:
        """The order book as ``Order`` records (ids ``{portfolio_id}:{D}:{instrument}``;
        ``decision_id`` one for all or session index -> id)."""
        days, ids = self.market.sessions, self.market.instrument_ids
        out = []
        for k, row in enumerate(self._orders[:self.n_orders]):
            given = self._given.get(k)
            updated = int(row[K.O_UPDATED])
            if given is not None and updated < 0:
                out.append(given)
                continue
            t = int(row[K.O_DECIDED])
            j = int(row[K.O_INST])
            status = STATUSES[int(row[K.O_STATUS])]
            if given is not None:
                oid, did, pid, decided_on, order_mode = (
                    given.order_id, given.decision_id, given.portfolio_id, given.decided_on,
                    given.mode)
            else:
                oid, pid, decided_on, order_mode = (
                    order_id_for(portfolio_id, days[t], ids[j]), portfolio_id, days[t], mode)
                did = decision_id if isinstance(decision_id, str) else decision_id[t]
            kind = ORDER_TYPES[int(row[K.O_TYPE])]
            out.append(Order(
                order_id=oid, decision_id=did, portfolio_id=pid, decided_on=decided_on,
                mode=order_mode, instrument_id=ids[j], side="BUY" if row[K.O_SIDE] > 0 else "SELL",
                quantity=float(row[K.O_QTY]), order_type=kind,
                limit_price=float(row[K.O_LIMIT]) if kind == "LIMIT" else None,
                stop_price=float(row[K.O_STOP]) if kind == "STOP" else None,
                status=status, filled_quantity=float(row[K.O_FILLED]),
                avg_fill_price=None if math.isnan(row[K.O_AVG]) else float(row[K.O_AVG]),
                status_reason=self._reason(row, status),
                updated_on=days[updated] if updated >= 0 else None))
        return out

    def _reason(self, row: np.ndarray, status: str) -> str | None:
        code = int(row[K.O_REASON])
        if code == 0:
            return None
        t = int(row[K.O_UPDATED])
        day = self.market.sessions[t]
        j = int(row[K.O_INST])
        iid = self.market.instrument_ids[j]
        if code in (K.NO_BAR, K.BAD_BAR):
            what = "no bar" if code == K.NO_BAR else "an incomplete bar"
            return f"{what} for {iid} on {day} (not trading or delisted)"
        o, h, lo, c, v = self.market.bars[:, t, j]
        buy = row[K.O_SIDE] > 0
        if code == K.LIMIT_NOT_REACHED:
            why = (f"limit {row[K.O_LIMIT]:g} not reached "
                   + (f"(low {lo:g})" if buy else f"(high {h:g})"))
        elif code == K.STOP_NOT_TRIGGERED:
            why = (f"stop {row[K.O_STOP]:g} not triggered "
                   + (f"(high {h:g})" if buy else f"(low {lo:g})"))
        else:
            left = row[K.O_QTY] - row[K.O_FILLED]
            why = (f"participation cap {self.cfg.max_participation:g} of volume {v:g}: "
                   f"{left:g} shares unfilled")
        if status == "CANCELLED":
            why += "; unfilled part cancelled at the end of the session"
        return why

    def fills(self, *, portfolio_id: str, decision_id: str | Mapping[int, str],
              mode: Mode = "BACKTEST") -> list[Fill]:
        """The fills as ``Fill`` records, in execution order."""
        days, ids = self.market.sessions, self.market.instrument_ids
        out = []
        for f in self._fills[:self.n_fills]:
            k = int(f[K.F_ORDER])
            row = self._orders[k]
            t, d = int(f[K.F_SESSION]), int(row[K.O_DECIDED])
            j = int(row[K.O_INST])
            given = self._given.get(k)
            if given is None:
                oid = order_id_for(portfolio_id, days[d], ids[j])
                did = decision_id if isinstance(decision_id, str) else decision_id[d]
                pid, decided_on = portfolio_id, days[d]
            else:
                oid, did = given.order_id, given.decision_id
                pid, decided_on = given.portfolio_id, given.decided_on
            out.append(Fill(
                fill_id=f"{oid}:{days[t].isoformat()}", order_id=oid, decision_id=did,
                portfolio_id=pid, instrument_id=ids[j], date=days[t],
                decided_on=decided_on, side="BUY" if row[K.O_SIDE] > 0 else "SELL",
                quantity=float(f[K.F_QTY]), price=float(f[K.F_PRICE]),
                reference_price=float(f[K.F_REF]), commission=float(f[K.F_COMMISSION]),
                slippage_cost=float(f[K.F_SLIPPAGE]), mode=mode))
        return out

    def fill_table(self) -> np.ndarray:
        """(fills, 7) array: order row, session index, shares, price, reference price,
        commission, slippage cost."""
        return self._fills[:self.n_fills].copy()

    def order_table(self) -> np.ndarray:
        """(orders, 12) array in the kernel's column layout."""
        return self._orders[:self.n_orders].copy()

    def daily_frame(self) -> pd.DataFrame:
        """Per walked session: equity, cash, positions value, gross and net exposure
        (fractions of equity), traded value, costs (commissions + slippage) and dividends."""
        d = self.daily[:self.next_session]
        return pd.DataFrame({
            "date": pd.to_datetime(self.market.sessions[:self.next_session]),
            "equity": d[:, K.D_EQUITY], "cash": d[:, K.D_CASH],
            "positions_value": d[:, K.D_VALUE], "gross_exposure": d[:, K.D_GROSS],
            "net_exposure": d[:, K.D_NET], "traded_value": d[:, K.D_TRADED],
            "costs": d[:, K.D_COSTS], "dividends": d[:, K.D_DIVIDENDS]})
