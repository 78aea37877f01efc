"""The execution engine (docs/engines/execution.md): orders and fills, one broker interface with
BACKTEST (market simulator) and PAPER modes (LIVE needs an optional broker adapter), the order
planner (target weights -> share deltas -> orders) and the simulator's fill model (next-session
execution at open / close / vwap with slippage, participation cap, limit and stop orders,
commissions).

* ``orders``: ``Order``, ``Fill`` and their validation.
* ``planner``: ``plan_orders`` / ``plan_order_set``.
* ``fill_model``: ``Bar`` and the price, slippage, cap and commission rules.
* ``simulator``: ``MarketSimulator`` (cash, positions, open orders), ``Account``,
  ``PositionsSnapshot``.
* ``broker``: ``BrokerInterface``, ``BacktestBroker``, ``PaperBroker``, ``make_broker``.
* ``kernel`` / ``vectorized``: the simulator's fast path, ``ArrayBook`` on ``MarketArrays``
  (every instrument of a session at once, compiled with numba; same fills and equity as
  ``MarketSimulator``), used by backtests and paper trading.
* ``frames``: rows of ``orders``, ``fills`` and ``positions_snapshots``.

Importing the package declares the tables and registers the ``execution`` config.
"""

from prometheus_dagster.engines.execution import schemas  # noqa: F401  (declares the tables)
from prometheus_dagster.engines.execution.broker import (
    LIVE_UNAVAILABLE,
    BacktestBroker,
    BrokerInterface,
    PaperBroker,
    SimulatedBroker,
    make_broker,
)
from prometheus_dagster.engines.execution.config import FILL_PRICES, ExecutionConfig
from prometheus_dagster.engines.execution.errors import (
    ExecutionError,
    LiveBrokerUnavailableError,
    OrderValidationError,
)
from prometheus_dagster.engines.execution.fill_model import Bar, session_bars
from prometheus_dagster.engines.execution.frames import (
    execution_frames,
    execution_tables,
    fills_frame,
    orders_frame,
    snapshots_frame,
)
from prometheus_dagster.engines.execution.orders import (
    MODES,
    ORDER_STATUSES,
    ORDER_TYPES,
    SIDES,
    Fill,
    Order,
)
from prometheus_dagster.engines.execution.planner import (
    OrderPlan,
    order_id_for,
    plan_order_set,
    plan_orders,
    round_to_lot,
)
from prometheus_dagster.engines.execution.schemas import (
    EXECUTION_TABLES,
    FILLS,
    ORDERS,
    POSITIONS_SNAPSHOTS,
)
from prometheus_dagster.engines.execution.simulator import (
    Account,
    MarketSimulator,
    PositionRow,
    PositionsSnapshot,
)

__all__ = [
    "EXECUTION_TABLES", "FILLS", "FILL_PRICES", "LIVE_UNAVAILABLE", "MODES", "ORDERS",
    "ORDER_STATUSES", "ORDER_TYPES", "POSITIONS_SNAPSHOTS", "SIDES", "Account",
    "BacktestBroker", "Bar", "BrokerInterface", "ExecutionConfig", "ExecutionError", "Fill",
    "LiveBrokerUnavailableError", "MarketSimulator", "Order", "OrderPlan",
    "OrderValidationError", "PaperBroker", "PositionRow", "PositionsSnapshot",
    "SimulatedBroker", "execution_frames", "execution_tables", "fills_frame", "make_broker",
    "order_id_for",
    "orders_frame", "plan_order_set", "plan_orders", "round_to_lot", "session_bars",
    "snapshots_frame",
]
