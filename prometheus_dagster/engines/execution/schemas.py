"""Tables of the execution engine, declared in the one schema registry.

Every row names its portfolio, market, mode and config; ``backtest_id`` is set on BACKTEST
rows and null on PAPER / LIVE rows, so a backtest never mixes with production: writers
replace a partition together with ``{"portfolio_id": ..., "backtest_id": ...}`` (null selects
the production rows).
"""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

_BOOK = (
    _req("portfolio_id", "str"),
    _req("market_id", "str"),
    _req("mode", "str", "BACKTEST, PAPER or LIVE"),
    _opt("backtest_id", "str", "the backtest run (null for PAPER and LIVE)"),
)
_SLICE = ("portfolio_id", "backtest_id")

ORDERS = register_table(TableSchema("orders", (
    _req("order_id", "str", "{portfolio_id}:{decided_on}:{instrument_id}"),
    *_BOOK,
    _req("decision_id", "str", "the decision that asked for the order"),
    _req("decided_on", "date", "decided after the close of this session"),
    _req("instrument_id", "str"),
    _req("side", "str", "BUY or SELL"),
    _req("order_type", "str", "MARKET, LIMIT or STOP"),
    _req("quantity", "float", "shares ordered (> 0)"),
    _opt("limit_price", "float"),
    _opt("stop_price", "float"),
    _req("status", "str", "NEW, PARTIALLY_FILLED, FILLED, CANCELLED or REJECTED"),
    _req("filled_quantity", "float", "shares filled so far"),
    _opt("avg_fill_price", "float", "quantity-weighted fill price, slippage included"),
    _opt("status_reason", "str", "why rejected, cancelled or not (fully) filled"),
    _opt("updated_on", "date", "session of the last status change"),
    _req("config_id", "str", "the execution config"),
), primary_key=("portfolio_id", "backtest_id", "order_id"), partition_column="decided_on",
    market_column="market_id", extra_key_columns=_SLICE,
    description="Orders per portfolio with their mode, decision and latest status"))

FILLS = register_table(TableSchema("fills", (
    _req("fill_id", "str", "{order_id}:{date}"),
    *_BOOK,
    _req("order_id", "str"),
    _req("decision_id", "str"),
    _req("decided_on", "date"),
    _req("date", "date", "execution session (always after decided_on)"),
    _req("instrument_id", "str"),
    _req("side", "str", "BUY or SELL"),
    _req("quantity", "float", "shares filled (> 0)"),
    _req("price", "float", "fill price, slippage included"),
    _req("reference_price", "float", "price before slippage (open / close / vwap / limit / "
                                     "stop)"),
    _req("value", "float", "quantity x price"),
    _req("commission", "float"),
    _req("slippage_cost", "float", "quantity x |price - reference_price|"),
    _req("config_id", "str", "the execution config"),
), primary_key=("portfolio_id", "backtest_id", "fill_id"), partition_column="date",
    market_column="market_id", extra_key_columns=_SLICE,
    description="Executions per order and session, with costs"))

POSITIONS_SNAPSHOTS = register_table(TableSchema("positions_snapshots", (
    *_BOOK,
    _req("date", "date", "holdings at the close of this session"),
    _req("instrument_id", "str", "held instrument, or CASH for the cash row"),
    _req("shares", "float", "shares (negative: short); the cash amount on the CASH row"),
    _req("close", "float", "valuation price (1 on the CASH row)"),
    _req("market_value", "float", "shares x close (the rows sum to equity)"),
    _opt("weight", "float", "market_value / equity (null when equity <= 0)"),
    _req("cash", "float"),
    _req("positions_value", "float"),
    _req("equity", "float", "cash + positions_value"),
    _req("config_id", "str", "the execution config"),
), primary_key=("portfolio_id", "backtest_id", "date", "instrument_id"),
    partition_column="date", market_column="market_id", extra_key_columns=_SLICE,
    description="Holdings, cash and equity per portfolio and session"))

EXECUTION_TABLES: tuple[TableSchema, ...] = (ORDERS, FILLS, POSITIONS_SNAPSHOTS)
CASH_ROW = "CASH"
