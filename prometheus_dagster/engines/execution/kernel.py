"""The market simulator's rules on arrays, compiled with numba: one call walks every session
of a (sessions x instruments) market, all instruments of a session at once, with no Python
object per order or fill.

It applies exactly the rules of ``MarketSimulator`` and ``plan_orders`` (same arithmetic in
the same order, so equity agrees to the last digit): splits and dividends of the session;
the open orders decided before it, sells first then buys, each in submission order; MARKET,
LIMIT and STOP prices, slippage, the participation cap per instrument (rounded down to the
lot, shared by the instrument's orders), commissions (bps, per share, minimum), partial
fills carried or cancelled, missing bars cancelling or keeping an order; marks at the
session's closes and the book valued in instrument order; then, on a rebalance session,
MARKET orders from the target weights (lot rounding toward zero, ``min_order_value``, sells
before buys, each in instrument order) for the next session.

Codes used in the arrays: side +1 BUY / -1 SELL; order type 0 MARKET, 1 LIMIT, 2 STOP;
status 0 NEW, 1 PARTIALLY_FILLED, 2 FILLED, 3 CANCELLED; reason 0 none, 1 no bar,
2 incomplete bar, 3 limit not reached, 4 stop not triggered, 5 participation cap (codes 3-5
on a cancelled order also mean "unfilled part cancelled at the end of the session").
"""

from __future__ import annotations

import math

import numba
import numpy as np

QTY_TOL = 1e-9
ROUND_TOL = 1e-9
NEW, PARTIAL, FILLED, CANCELLED = 0, 1, 2, 3
MARKET, LIMIT, STOP = 0, 1, 2
NO_BAR, BAD_BAR, LIMIT_NOT_REACHED, STOP_NOT_TRIGGERED, CAPPED = 1, 2, 3, 4, 5
BASIS = {"open": 0, "close": 1, "vwap": 2}

# Order book columns (float64 matrix ``orders``, one row per order)
O_INST, O_SIDE, O_QTY, O_FILLED, O_DECIDED, O_TYPE, O_LIMIT, O_STOP, O_STATUS, O_AVG, \
    O_REASON, O_UPDATED = range(12)
ORDER_COLS = 12
# Fill columns (float64 matrix ``fills``)
F_ORDER, F_SESSION, F_QTY, F_PRICE, F_REF, F_COMMISSION, F_SLIPPAGE = range(7)
FILL_COLS = 7
# Per-session outputs (float64 matrix ``daily``)
D_EQUITY, D_CASH, D_VALUE, D_GROSS, D_NET, D_TRADED, D_COSTS, D_DIVIDENDS = range(8)
DAILY_COLS = 8


@numba.njit(cache=True)
def _usable(o: float, h: float, lo: float, c: float) -> bool:
    return (math.isfinite(o) and o > 0 and math.isfinite(h) and h > 0
            and math.isfinite(lo) and lo > 0 and math.isfinite(c) and c > 0)


@numba.njit(cache=True)
def _basis(o: float, h: float, lo: float, c: float, basis: int) -> float:
    if basis == 0:
        return o
    if basis == 1:
        return c
    return (h + lo + c) / 3.0


@numba.njit(cache=True)
def _capacity(volume: float, max_participation: float, lot: float) -> float:
    if not math.isfinite(max_participation):
        return math.inf
    if not math.isfinite(volume) or volume <= 0:
        return 0.0
    raw = max_participation * volume
    return math.floor(raw / lot + 1e-9) * lot


@numba.njit(cache=True)
def corporate_actions(t, split, dividend, positions, marks, state, daily):
    """Splits (new shares per old: shares times it, mark divided by it), then dividends
    (cash per share held) of session ``t``."""
    paid = 0.0
    for j in range(positions.size):
        r = split[t, j]
        if math.isfinite(r) and r > 0 and r != 1.0:
            if positions[j] != 0.0:
                positions[j] = positions[j] * r
            if math.isfinite(marks[j]):
                marks[j] = marks[j] / r
        dv = dividend[t, j]
        if math.isfinite(dv) and dv != 0.0 and positions[j] != 0.0:
            state[0] += positions[j] * dv
            paid += positions[j] * dv
    daily[t, D_DIVIDENDS] = paid


@numba.njit(cache=True)
def _work(k, t, orders, fills, n_fills, o, h, lo, c, v, used, positions, marks, state,
          basis, slippage, max_participation, lot, commission_bps, per_share,
          min_commission, carry):
    """One order on a usable bar; returns the number of fills (0 or 1) it made."""
    j = int(orders[k, O_INST])
    side = orders[k, O_SIDE]
    buy = side > 0
    kind = int(orders[k, O_TYPE])
    remaining = max(orders[k, O_QTY] - orders[k, O_FILLED], 0.0)
    base = math.nan
    reason = 0
    if kind == MARKET:
        base = _basis(o, h, lo, c, basis)
    elif kind == LIMIT:
        limit = orders[k, O_LIMIT]
        if buy:
            if lo <= limit:
                base = min(o, limit)
            else:
                reason = LIMIT_NOT_REACHED
        elif h >= limit:
            base = max(o, limit)
        else:
            reason = LIMIT_NOT_REACHED
    elif orders[k, O_FILLED] > 0:
        base = _basis(o, h, lo, c, basis)
    else:
        stop = orders[k, O_STOP]
        if buy:
            if h >= stop:
                base = max(o, stop)
            else:
                reason = STOP_NOT_TRIGGERED
        elif lo <= stop:
            base = min(o, stop)
        else:
            reason = STOP_NOT_TRIGGERED
    qty = 0.0
    if reason == 0:
        room = _capacity(v, max_participation, lot) - used[j]
        qty = min(remaining, max(room, 0.0))
        if qty < remaining - QTY_TOL:
            reason = CAPPED
    made = 0
    price = 0.0
    if qty > QTY_TOL:
        used[j] = used[j] + qty
        s = slippage / 1e4
        if buy:
            price = base * (1.0 + s)
            if kind == LIMIT:
                price = min(price, orders[k, O_LIMIT])
        else:
            price = base * (1.0 - s)
            if kind == LIMIT:
                price = max(price, orders[k, O_LIMIT])
        fee = commission_bps / 1e4 * qty * price + per_share * qty
        fee = max(fee, min_commission)
        f = n_fills
        fills[f, F_ORDER] = k
        fills[f, F_SESSION] = t
        fills[f, F_QTY] = qty
        fills[f, F_PRICE] = price
        fills[f, F_REF] = base
        fills[f, F_COMMISSION] = fee
        fills[f, F_SLIPPAGE] = qty * abs(price - base)
        state[0] += -side * qty * price - fee
        shares = positions[j] + side * qty
        positions[j] = 0.0 if abs(shares) <= QTY_TOL else shares
        if not math.isfinite(marks[j]):
            marks[j] = price
        made = 1
    filled = orders[k, O_FILLED] + qty
    if made:
        avg = orders[k, O_AVG]
        prev = 0.0 if not math.isfinite(avg) else avg
        orders[k, O_AVG] = (prev * orders[k, O_FILLED] + price * qty) / filled
    if orders[k, O_QTY] - filled <= QTY_TOL:
        orders[k, O_STATUS] = FILLED
        orders[k, O_REASON] = 0
        filled = orders[k, O_QTY]
    elif carry:
        if filled > QTY_TOL:
            orders[k, O_STATUS] = PARTIAL
        orders[k, O_REASON] = reason
    else:
        orders[k, O_STATUS] = CANCELLED
        orders[k, O_REASON] = reason
    orders[k, O_FILLED] = filled
    orders[k, O_UPDATED] = t
    return made


@numba.njit(cache=True)
def fill_session(t, bars, orders, n_orders, open_ids, n_open, fills, n_fills, positions,
                 marks, state, daily, basis, slippage, max_participation, lot,
                 commission_bps, per_share, min_commission, carry, keep_missing):
    """Work the open orders decided before session ``t`` on its bars (array
    ``bars[field, t, instrument]``, fields open, high, low, close, volume), move the marks
    to its closes; returns (open orders left, fills so far)."""
    n = positions.size
    used = np.zeros(n)
    traded = 0.0
    costs = 0.0
    start = n_fills
    for phase in range(2):  # sells, then buys
        want = -1.0 if phase == 0 else 1.0
        for i in range(n_open):
            k = open_ids[i]
            if orders[k, O_DECIDED] >= t or orders[k, O_SIDE] != want:
                continue
            j = int(orders[k, O_INST])
            o, h, lo, c, v = (bars[0, t, j], bars[1, t, j], bars[2, t, j], bars[3, t, j],
                              bars[4, t, j])
            if not _usable(o, h, lo, c):
                missing = not (math.isfinite(o) or math.isfinite(h) or math.isfinite(lo)
                               or math.isfinite(c))
                orders[k, O_REASON] = NO_BAR if missing else BAD_BAR
                orders[k, O_UPDATED] = t
                if not keep_missing:
                    orders[k, O_STATUS] = CANCELLED
                continue
            n_fills += _work(k, t, orders, fills, n_fills, o, h, lo, c, v, used, positions,
                             marks, state, basis, slippage, max_participation, lot,
                             commission_bps, per_share, min_commission, carry)
    for f in range(start, n_fills):
        traded += fills[f, F_QTY] * fills[f, F_PRICE]
        costs += fills[f, F_COMMISSION] + fills[f, F_SLIPPAGE]
    daily[t, D_TRADED] = traded
    daily[t, D_COSTS] = costs
    for j in range(n):
        c = bars[3, t, j]
        if math.isfinite(c) and c > 0:
            marks[j] = c
    left = 0
    for i in range(n_open):
        k = open_ids[i]
        if orders[k, O_STATUS] <= PARTIAL:
            open_ids[left] = k
            left += 1
    return left, n_fills


@numba.njit(cache=True)
def value_book(t, positions, marks, state, daily, order):
    """Cash, positions value (summed over instruments in ``order``: sorted ids), equity and
    exposures at the close of ``t``; returns equity. A held instrument that never had a
    price raises."""
    value = 0.0
    gross = 0.0
    for j in order:
        q = positions[j]
        if q != 0.0:
            if not math.isfinite(marks[j]):
                raise ValueError("a held instrument has no price to value it")
            mv = q * marks[j]
            value += mv
            gross += abs(mv)
    equity = state[0] + value
    daily[t, D_EQUITY] = equity
    daily[t, D_CASH] = state[0]
    daily[t, D_VALUE] = value
    daily[t, D_GROSS] = gross / equity if equity != 0 else math.nan
    daily[t, D_NET] = value / equity if equity != 0 else math.nan
    return equity


@numba.njit(cache=True)
def plan_session(t, weights, closes, equity, positions, orders, n_orders, open_ids, n_open,
                 lot, min_order_value, order):
    """MARKET orders decided at the close of ``t`` moving ``positions`` to ``weights`` of
    ``equity`` at ``closes``; returns (orders, open orders, instruments skipped for a missing
    price). Sells first, then buys, each in ``order`` (sorted ids)."""
    skipped = 0
    for phase in range(2):
        for j in order:
            w = weights[j]
            held = positions[j]
            if not math.isfinite(w):
                w = 0.0
            price = closes[j]
            if not (math.isfinite(price) and price > 0):
                if phase == 0 and (w != 0.0 or held != 0.0):
                    skipped += 1
                continue
            x = w * equity / price
            lots = math.floor(abs(x) / lot + ROUND_TOL)
            target = math.copysign(lots * lot, x) if lots else 0.0
            delta = target - held
            if abs(delta) <= QTY_TOL or abs(delta) * price < min_order_value:
                continue
            if (delta < 0) != (phase == 0):
                continue
            k = n_orders
            orders[k, O_INST] = j
            orders[k, O_SIDE] = 1.0 if delta > 0 else -1.0
            orders[k, O_QTY] = abs(delta)
            orders[k, O_FILLED] = 0.0
            orders[k, O_DECIDED] = t
            orders[k, O_TYPE] = MARKET
            orders[k, O_LIMIT] = math.nan
            orders[k, O_STOP] = math.nan
            orders[k, O_STATUS] = NEW
            orders[k, O_AVG] = math.nan
            orders[k, O_REASON] = 0
            orders[k, O_UPDATED] = -1
            open_ids[n_open] = k
            n_orders += 1
            n_open += 1
    return n_orders, n_open, skipped


@numba.njit(cache=True)
def run_sessions(first, last, bars, split, dividend, rebalance, targets, orders, n_orders,
                 open_ids,
                 n_open, fills, n_fills, positions, marks, state, daily, holdings, order,
                 basis, slippage, max_participation, lot, commission_bps, per_share,
                 min_commission, carry, keep_missing, min_order_value):
    """Sessions ``first`` to ``last`` (exclusive) in turn: actions, fills, marks, valuation,
    and on sessions with ``rebalance[t] >= 0`` the orders toward ``targets[rebalance[t]]``.
    ``holdings`` (sessions x instruments, or 0 rows) receives the shares at each close.
    Returns (orders, open orders, fills, instruments skipped, next session): it stops early,
    before a session whose fills might not fit in ``fills``, for the caller to grow it."""
    skipped = 0
    keep_history = holdings.shape[0] > 0
    for t in range(first, last):
        if n_fills + n_open > fills.shape[0]:
            return n_orders, n_open, n_fills, skipped, t
        corporate_actions(t, split, dividend, positions, marks, state, daily)
        n_open, n_fills = fill_session(t, bars, orders, n_orders, open_ids, n_open, fills,
                                       n_fills, positions, marks, state, daily, basis,
                                       slippage, max_participation, lot, commission_bps,
                                       per_share, min_commission, carry, keep_missing)
        equity = value_book(t, positions, marks, state, daily, order)
        if keep_history:
            holdings[t, :] = positions
        r = rebalance[t]
        if r >= 0:
            if equity <= 0:
                raise ValueError("equity must be positive to size orders")
            n_orders, n_open, s = plan_session(t, targets[r], bars[3, t], equity, positions,
                                               orders, n_orders, open_ids, n_open, lot,
                                               min_order_value, order)
            skipped += s
    return n_orders, n_open, n_fills, skipped, last
