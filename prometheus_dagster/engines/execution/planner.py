"""The order planner: target weights -> target shares -> share deltas -> MARKET orders.

For every instrument with a target weight or a position: target shares = weight x equity /
reference price (the close of the decision date D), rounded toward zero to a multiple of
``lot_size``; the order is the difference with the shares held. Orders worth less than
``min_order_value`` (|delta| x price) are skipped; an instrument that needs a price and has
none (or a non-positive one) is skipped with a warning. Sells come before buys, each group in
instrument order; order ids are ``{portfolio_id}:{D}:{instrument_id}``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_dagster.engines.execution.config import ExecutionConfig
from prometheus_dagster.engines.execution.errors import OrderValidationError
from prometheus_dagster.engines.execution.orders import QTY_TOL, Mode, Order, as_date

log = logging.getLogger(__name__)
_ROUND_TOL = 1e-9  # lots: 1999.9999999997 shares of lot 1 are 2000


@dataclass(frozen=True)
class OrderPlan:
    """The orders and, per instrument left without an order, why."""

    orders: list[Order]
    target_shares: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)


def order_id_for(portfolio_id: str, decided_on: Any, instrument_id: str) -> str:
    """The deterministic id of the order of one instrument in one decision."""
    return f"{portfolio_id}:{as_date(decided_on).isoformat()}:{instrument_id}"


def round_to_lot(shares: float, lot_size: int) -> float:
    """``shares`` rounded toward zero to a multiple of ``lot_size`` (ignoring float noise
    below 1e-9 lot)."""
    lots = math.floor(abs(shares) / lot_size + _ROUND_TOL)
    return math.copysign(lots * lot_size, shares) if lots else 0.0


def _number(what: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise OrderValidationError(f"{what} {value!r} is not a number") from None
    if not math.isfinite(out):
        raise OrderValidationError(f"{what} is {value!r}; it must be a finite number")
    return out


def plan_order_set(target_weights: Mapping[str, float], positions: Mapping[str, float],
                   prices: Mapping[str, float], equity: float, cfg: ExecutionConfig, *,
                   decision_id: str, portfolio_id: str, decided_on: Any,
                   mode: Mode = "BACKTEST") -> OrderPlan:
    """``plan_orders`` with the target shares and the skipped instruments and reasons."""
    equity = _number("equity", equity)
    if equity <= 0:
        raise OrderValidationError(f"equity must be positive to size orders, got {equity:g}")
    day = as_date(decided_on, "decided_on")
    names = sorted(set(map(str, target_weights)) | {str(i) for i, q in positions.items()
                                                     if abs(float(q)) > QTY_TOL})
    sells: list[Order] = []
    buys: list[Order] = []
    targets: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for iid in names:
        weight = _number(f"target weight of {iid}", target_weights.get(iid, 0.0))
        held = _number(f"position of {iid}", positions.get(iid, 0.0))
        raw_price = prices.get(iid)
        price = math.nan if raw_price is None else float(raw_price)
        if not (math.isfinite(price) and price > 0):
            if weight != 0.0 or held != 0.0:
                skipped[iid] = f"no usable reference price ({raw_price!r})"
            continue
        target = round_to_lot(weight * equity / price, cfg.lot_size)
        targets[iid] = target
        delta = target - held
        if abs(delta) <= QTY_TOL:
            continue
        value = abs(delta) * price
        if value < cfg.min_order_value:
            skipped[iid] = (f"order value {value:.2f} below min_order_value "
                            f"{cfg.min_order_value:g}")
            continue
        order = Order(order_id=order_id_for(portfolio_id, day, iid), decision_id=decision_id,
                      portfolio_id=portfolio_id, instrument_id=iid,
                      side="BUY" if delta > 0 else "SELL", quantity=abs(delta),
                      decided_on=day, mode=mode)
        (buys if delta > 0 else sells).append(order)
    for iid, why in skipped.items():
        if why.startswith("no usable"):
            log.warning("portfolio %s on %s: %s skipped: %s", portfolio_id, day, iid, why)
    return OrderPlan(sells + buys, targets, skipped)


def plan_orders(target_weights: Mapping[str, float], positions: Mapping[str, float],
                prices: Mapping[str, float], equity: float, cfg: ExecutionConfig, *,
                decision_id: str, portfolio_id: str, decided_on: Any,
                mode: Mode = "BACKTEST") -> list[Order]:
    """MARKET orders that move ``positions`` (shares) to ``target_weights`` (fractions of
    ``equity``) at the reference ``prices`` (closes of ``decided_on``): sells first, then
    buys. Instruments held but without a target weight are sold out."""
    return plan_order_set(target_weights, positions, prices, equity, cfg,
                          decision_id=decision_id, portfolio_id=portfolio_id,
                          decided_on=decided_on, mode=mode).orders
