"""One broker interface for the three modes (docs/engines/execution.md).

* ``BacktestBroker`` (BACKTEST): the market simulator, moved on explicitly with
  ``advance(session_date, bars)``; its rows carry a ``backtest_id``.
* ``PaperBroker`` (PAPER): the same simulator and fill logic, fed each new session's bars as
  they arrive (``on_session``); production rows, no ``backtest_id``.
* LIVE: a real broker adapter (e.g. Interactive Brokers) is an optional extra that is not part
  of this package; ``make_broker("LIVE", ...)`` says so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd

from prometheus_dagster.core.config import make_config_id
from prometheus_dagster.engines.execution.config import ExecutionConfig
from prometheus_dagster.engines.execution.errors import (
    ExecutionError,
    LiveBrokerUnavailableError,
)
from prometheus_dagster.engines.execution.orders import MODES, Fill, Mode, Order, as_date
from prometheus_dagster.engines.execution.simulator import (
    Account,
    MarketSimulator,
    PositionsSnapshot,
)

LIVE_UNAVAILABLE = (
    "LIVE mode needs a live broker adapter (e.g. Interactive Brokers), an optional extra that "
    "is not installed in this environment; use mode BACKTEST (market simulator) or PAPER "
    "(simulated fills on live sessions)")


class BrokerInterface(ABC):
    """What every execution mode offers. Quantities are shares, orders are ``Order``s."""

    mode: Mode
    portfolio_id: str

    @abstractmethod
    def submit_order(self, order: Order) -> Order:
        """Accept (status NEW) or reject (REJECTED, with a reason) an order."""

    @abstractmethod
    def cancel_order(self, order_id: str) -> Order:
        """Cancel an open order; a closed one is returned unchanged."""

    @abstractmethod
    def order_status(self, order_id: str) -> Order:
        """The order as it stands now."""

    @abstractmethod
    def orders(self, *, open_only: bool = False) -> list[Order]:
        """All orders in submission order (only NEW / PARTIALLY_FILLED with ``open_only``)."""

    @abstractmethod
    def fills(self, since: Any = None) -> list[Fill]:
        """Fills in execution order, only those dated strictly after ``since`` when given."""

    @abstractmethod
    def positions(self) -> dict[str, float]:
        """Instrument -> shares held (negative: short); flat instruments are absent."""

    @abstractmethod
    def account(self) -> Account:
        """Cash, positions value at the latest marks, and equity."""

    @abstractmethod
    def sync(self) -> Account:
        """Reconcile with the broker's books (a no-op for simulated modes); the account."""


class SimulatedBroker(BrokerInterface):
    """A broker whose fills come from the market simulator (BACKTEST and PAPER modes)."""

    def __init__(self, cfg: ExecutionConfig, *, mode: Mode, portfolio_id: str, market_id: str,
                 cash: float, positions: Mapping[str, float] | None = None,
                 marks: Mapping[str, float] | None = None, backtest_id: str | None = None,
                 config_id: str | None = None):
        if (mode == "BACKTEST") != (backtest_id is not None):
            raise ExecutionError(
                f"mode {mode}: " + ("a backtest_id is required" if mode == "BACKTEST" else
                                    "backtest_id must be None outside BACKTEST mode"))
        self.mode = mode
        self.portfolio_id = portfolio_id
        self.market_id = market_id
        self.backtest_id = backtest_id
        self.config = cfg
        self.config_id = config_id or make_config_id(cfg)[0]
        self._sim = MarketSimulator(cfg, portfolio_id=portfolio_id, mode=mode, cash=cash,
                                    positions=positions, marks=marks)

    @property
    def last_session(self) -> date | None:
        """The latest session processed (None before the first)."""
        return self._sim.last_session

    def submit_order(self, order: Order) -> Order:
        return self._sim.submit(order)

    def cancel_order(self, order_id: str) -> Order:
        return self._sim.cancel(order_id)

    def restore_order(self, order: Order) -> Order:
        """Put an order still open from an earlier session back on the book, as it stands."""
        return self._sim.restore(order)

    def order_status(self, order_id: str) -> Order:
        return self._sim.get(order_id)

    def orders(self, *, open_only: bool = False) -> list[Order]:
        orders = self._sim.orders.values()
        return [o for o in orders if o.is_open] if open_only else list(orders)

    def fills(self, since: Any = None) -> list[Fill]:
        if since is None:
            return list(self._sim.fills)
        after = as_date(since, "since")
        return [f for f in self._sim.fills if f.date > after]

    def positions(self) -> dict[str, float]:
        return dict(self._sim.positions)

    def account(self) -> Account:
        return self._sim.account()

    def sync(self) -> Account:
        return self._sim.account()

    def positions_snapshot(self, date: Any,
                           closes: Mapping[str, float] | None = None) -> PositionsSnapshot:
        """Shares, close, market value and weight per held instrument at the close of
        ``date``, with cash and equity, valued at ``closes`` (the latest marks for
        instruments it lacks)."""
        return self._sim.snapshot(date, closes)

    def apply_corporate_actions(self, actions: pd.DataFrame) -> dict[str, float]:
        """Splits and dividends of an ex-date on the holdings (see ``MarketSimulator``)."""
        return self._sim.apply_corporate_actions(actions)

    def _process(self, session_date: Any,
                 bars: pd.DataFrame | Mapping[str, Any] | None) -> list[Fill]:
        return self._sim.process_session(session_date, bars)


class BacktestBroker(SimulatedBroker):
    """BACKTEST mode: the caller walks the sessions with ``advance``."""

    def __init__(self, cfg: ExecutionConfig, *, portfolio_id: str, market_id: str,
                 backtest_id: str, cash: float, positions: Mapping[str, float] | None = None,
                 marks: Mapping[str, float] | None = None, config_id: str | None = None):
        super().__init__(cfg, mode="BACKTEST", portfolio_id=portfolio_id, market_id=market_id,
                         cash=cash, positions=positions, marks=marks, backtest_id=backtest_id,
                         config_id=config_id)

    def advance(self, session_date: Any,
                bars: pd.DataFrame | Mapping[str, Any] | None) -> list[Fill]:
        """Process the next session: orders decided before ``session_date`` execute on its
        bars (frame with instrument_id, open, high, low, close, volume, or a mapping
        instrument -> Bar). Returns the session's fills."""
        return self._process(session_date, bars)


class PaperBroker(SimulatedBroker):
    """PAPER mode: the simulator fed each new session's bars as they arrive."""

    def __init__(self, cfg: ExecutionConfig, *, portfolio_id: str, market_id: str,
                 cash: float, positions: Mapping[str, float] | None = None,
                 marks: Mapping[str, float] | None = None, config_id: str | None = None):
        super().__init__(cfg, mode="PAPER", portfolio_id=portfolio_id, market_id=market_id,
                         cash=cash, positions=positions, marks=marks, backtest_id=None,
                         config_id=config_id)

    def on_session(self, session_date: Any,
                   bars: pd.DataFrame | Mapping[str, Any] | None) -> list[Fill]:
        """The bars of a newly closed session arrived: fill what was decided before it."""
        return self._process(session_date, bars)

    advance = on_session


def make_broker(mode: str, cfg: ExecutionConfig, **kwargs: Any) -> BrokerInterface:
    """The broker of ``mode``: BACKTEST -> ``BacktestBroker(cfg, **kwargs)``, PAPER ->
    ``PaperBroker(cfg, **kwargs)``; LIVE raises ``LiveBrokerUnavailableError``."""
    if mode == "BACKTEST":
        return BacktestBroker(cfg, **kwargs)
    if mode == "PAPER":
        return PaperBroker(cfg, **kwargs)
    if mode == "LIVE":
        raise LiveBrokerUnavailableError(LIVE_UNAVAILABLE)
    raise ExecutionError(f"unknown execution mode {mode!r} (known: {', '.join(MODES)})")
