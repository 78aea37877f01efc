"""Backtest engine (SPEC §3.14) and decision outcomes (SPEC §3.15).

* ``timemachine``: :class:`TimeMachine`, a read-only warehouse view gated to a current date
  (strict mode raises :class:`~prometheus_dagster.core.errors.LookAheadError` on future reads).
* ``metrics``: whole-period metrics of a daily equity frame and metrics per regime label or
  stability bucket.
* ``tearsheet``: the tear-sheet figure (equity vs benchmark on regime shading, drawdown,
  rolling Sharpe, exposures) and a self-contained HTML page.
* ``outcomes``: realised return, P&L and drawdown of each engine decision over horizons.

Importing the package declares ``backtest_runs``, ``backtest_trades``,
``backtest_daily_equity`` and ``decision_outcomes``.
"""

from prometheus_dagster.engines.backtest import schemas  # noqa: F401  (declares the tables)
from prometheus_dagster.engines.backtest.metrics import (
    SLICE_COLUMNS,
    TRADING_DAYS,
    backtest_metrics,
    daily_returns,
    drawdown,
    drawdown_stats,
    metrics_by_slice,
    rolling_sharpe,
    sliced_metrics,
    with_returns_and_drawdown,
)
from prometheus_dagster.engines.backtest.outcomes import (
    DEFAULT_HORIZONS,
    decision_outcomes,
    parse_weights,
)
from prometheus_dagster.engines.backtest.tearsheet import (
    tear_sheet_figure,
    tear_sheet_html,
    tear_sheet_png,
)
from prometheus_dagster.engines.backtest.timemachine import TimeMachine, TimeMachineAccessError

__all__ = ["DEFAULT_HORIZONS", "SLICE_COLUMNS", "TRADING_DAYS", "TimeMachine",
           "TimeMachineAccessError", "backtest_metrics", "daily_returns", "decision_outcomes",
           "drawdown", "drawdown_stats", "metrics_by_slice", "parse_weights", "rolling_sharpe",
           "sliced_metrics", "tear_sheet_figure", "tear_sheet_html", "tear_sheet_png",
           "with_returns_and_drawdown"]
