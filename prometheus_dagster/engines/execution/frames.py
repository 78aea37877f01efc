"""Orders, fills and positions snapshots as validated ``orders`` / ``fills`` /
``positions_snapshots`` frames."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict

import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.execution.broker import SimulatedBroker
from prometheus_dagster.engines.execution.orders import Fill, Order
from prometheus_dagster.engines.execution.schemas import (
    CASH_ROW,
    FILLS,
    ORDERS,
    POSITIONS_SNAPSHOTS,
)
from prometheus_dagster.engines.execution.simulator import PositionsSnapshot


def _check_backtest_id(table: str, modes: set[str], backtest_id: str | None) -> None:
    if backtest_id is None and "BACKTEST" in modes:
        raise DataSchemaError(f"table {table}: BACKTEST rows need a backtest_id")
    if backtest_id is not None and modes - {"BACKTEST"}:
        raise DataSchemaError(
            f"table {table}: {', '.join(sorted(modes - {'BACKTEST'}))} rows must not carry "
            f"a backtest_id (got {backtest_id!r})")


def _book(mode: str, market_id: str, backtest_id: str | None, config_id: str) -> dict:
    return {"market_id": market_id, "mode": mode, "backtest_id": backtest_id,
            "config_id": config_id}


def orders_frame(orders: Iterable[Order], *, market_id: str, config_id: str,
                 backtest_id: str | None = None) -> pd.DataFrame:
    """One ``orders`` row per order."""
    orders = list(orders)
    _check_backtest_id("orders", {o.mode for o in orders}, backtest_id)
    rows = [{**asdict(o), **_book(o.mode, market_id, backtest_id, config_id)} for o in orders]
    return validate_frame(ORDERS, pd.DataFrame(rows, columns=ORDERS.column_names))


def fills_frame(fills: Iterable[Fill], *, market_id: str, config_id: str,
                backtest_id: str | None = None) -> pd.DataFrame:
    """One ``fills`` row per fill."""
    fills = list(fills)
    _check_backtest_id("fills", {f.mode for f in fills}, backtest_id)
    rows = [{**asdict(f), "value": f.value, **_book(f.mode, market_id, backtest_id, config_id)}
            for f in fills]
    return validate_frame(FILLS, pd.DataFrame(rows, columns=FILLS.column_names))


def snapshots_frame(snapshots: Iterable[PositionsSnapshot], *, market_id: str, config_id: str,
                    backtest_id: str | None = None) -> pd.DataFrame:
    """Per snapshot one row per held instrument plus a CASH row (shares = cash, close 1), so
    that market values sum to equity and a portfolio in cash still has its row."""
    snapshots = list(snapshots)
    _check_backtest_id("positions_snapshots", {s.mode for s in snapshots}, backtest_id)
    rows = []
    for s in snapshots:
        common = {"portfolio_id": s.portfolio_id, "date": s.date, "cash": s.cash,
                  "positions_value": s.positions_value, "equity": s.equity,
                  **_book(s.mode, market_id, backtest_id, config_id)}
        for p in s.positions:
            rows.append({**common, "instrument_id": p.instrument_id, "shares": p.shares,
                         "close": p.close, "market_value": p.market_value,
                         "weight": None if math.isnan(p.weight) else p.weight})
        rows.append({**common, "instrument_id": CASH_ROW, "shares": s.cash, "close": 1.0,
                     "market_value": s.cash,
                     "weight": s.cash / s.equity if s.equity > 0 else None})
    return validate_frame(POSITIONS_SNAPSHOTS,
                          pd.DataFrame(rows, columns=POSITIONS_SNAPSHOTS.column_names))


def execution_tables(orders: Iterable[Order], fills: Iterable[Fill],
                     snapshots: Iterable[PositionsSnapshot], *, market_id: str, config_id: str,
                     backtest_id: str | None = None) -> dict[str, pd.DataFrame]:
    """Table name -> frame of the orders, fills and snapshots."""
    ids = {"market_id": market_id, "config_id": config_id}
    return {"orders": orders_frame(orders, **ids, backtest_id=backtest_id),
            "fills": fills_frame(fills, **ids, backtest_id=backtest_id),
            "positions_snapshots": snapshots_frame(snapshots, **ids, backtest_id=backtest_id)}


def execution_frames(broker: SimulatedBroker,
                     snapshots: Iterable[PositionsSnapshot] = ()) -> dict[str, pd.DataFrame]:
    """Table name -> frame of a simulated broker's orders, fills and the given snapshots,
    with the broker's market, backtest_id and config_id."""
    return execution_tables(broker.orders(), broker.fills(), snapshots,
                            market_id=broker.market_id, config_id=broker.config_id,
                            backtest_id=broker.backtest_id)
