"""Output tables of the backtest engine and of decision outcomes, declared in the one schema
registry.

``backtest_runs`` holds one row per run (unpartitioned, keyed by ``backtest_id``). Trades and
daily equity are partitioned by ``date`` and keyed by ``backtest_id`` first, so one run is
written with ``replace_all(..., where={"backtest_id": ...})`` (or ``write_partitions`` with
``extra={"backtest_id": ...}``) without touching other runs.

``decision_outcomes`` is partitioned by ``end_date``, the last session whose return the outcome
includes, i.e. the date the outcome became known (as ``fundamentals`` is partitioned by its
report date): a point-in-time reader, the backtest time machine included, then never sees an
outcome before the market data behind it existed. An outcome whose horizon is not complete yet
is a snapshot (``complete`` false) keyed by its ``end_date``; the complete row supersedes it.
"""

from __future__ import annotations

from prometheus_dagster.core.schemas import TableSchema, register_table
from prometheus_dagster.core.schemas import optional as _opt
from prometheus_dagster.core.schemas import required as _req

BACKTEST_RUNS = register_table(TableSchema("backtest_runs", (
    _req("backtest_id", "str"),
    _req("strategy_id", "str"),
    _req("market_id", "str"),
    _req("config_id", "str", "config of the strategy (and engines) backtested"),
    _req("start_date", "date", "first session simulated"),
    _req("end_date", "date", "last session simulated"),
    _req("strict", "bool", "whether the time machine raised on look-ahead reads"),
    _req("metrics", "json", "whole-period metrics (backtest.metrics.backtest_metrics)"),
    _opt("sliced_metrics", "json", "metrics per regime label and stability bucket"),
    _opt("data_reads", "json", "reads per table through the time machine"),
    _opt("mlflow_run_id", "str"),
    _opt("dagster_run_id", "str"),
    _req("created_at", "timestamp"),
), primary_key=("backtest_id",), market_column="market_id",
    description="One row per backtest run: period, config, metrics"))

BACKTEST_TRADES = register_table(TableSchema("backtest_trades", (
    _req("backtest_id", "str"),
    _req("market_id", "str"),
    _req("date", "date", "session of the fill"),
    _req("instrument_id", "str"),
    _req("side", "str", "BUY or SELL"),
    _req("quantity", "float", "units filled (positive)"),
    _req("price", "float", "fill price, costs excluded"),
    _req("commission", "float", "commission paid, in the account currency"),
    _req("slippage_cost", "float", "slippage versus the reference price, in the account "
                                   "currency"),
    _opt("decision_id", "str", "engine decision the order came from"),
), primary_key=("backtest_id", "date", "instrument_id", "side"), partition_column="date",
    market_column="market_id", description="Simulated fills of a backtest"))

BACKTEST_DAILY_EQUITY = register_table(TableSchema("backtest_daily_equity", (
    _req("backtest_id", "str"),
    _req("market_id", "str"),
    _req("date", "date"),
    _req("equity", "float", "account value after the session's fills and marks"),
    _req("cash", "float"),
    _req("gross_exposure", "float", "sum of |position value| / equity"),
    _req("net_exposure", "float", "sum of position value / equity"),
    _req("turnover", "float", "traded value / equity"),
    _req("costs", "float", "commission + slippage of the session, in the account currency"),
    _opt("benchmark_equity", "float", "benchmark total-return level"),
    _opt("regime_label", "str", "regime label known on the date"),
    _opt("stability_bucket", "str", "market stability bucket on the date"),
    _opt("daily_return", "float", "equity / previous equity - 1 (empty on the first session)"),
    _req("drawdown", "float", "equity / running peak - 1 (<= 0)"),
), primary_key=("backtest_id", "date"), partition_column="date", market_column="market_id",
    description="Daily account state of a backtest"))

DECISION_OUTCOMES = register_table(TableSchema("decision_outcomes", (
    _req("decision_id", "str"),
    _req("engine_name", "str"),
    _req("market_id", "str"),
    _req("as_of_date", "date", "date of the decision"),
    _req("horizon_days", "int", "sessions after the decision"),
    _req("end_date", "date", "last session included; the outcome is known from this date"),
    _req("sessions", "int", "sessions included (= horizon_days when complete)"),
    _req("realised_return", "float", "book return on capital over the sessions included"),
    _opt("realised_pnl", "float", "realised_return per unit of gross weight"),
    _req("max_drawdown", "float", "worst book value / running peak - 1 over the horizon (<= 0)"),
    _req("n_names", "int", "names with a non-zero weight"),
    _req("complete", "bool", "whether every session of the horizon is in the data"),
), primary_key=("decision_id", "horizon_days", "end_date"), partition_column="end_date",
    market_column="market_id",
    description="Realised outcome of each engine decision over fixed horizons"))
