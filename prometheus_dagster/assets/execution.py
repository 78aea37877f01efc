"""Paper execution per market: every strategy's target portfolio traded in PAPER mode, the
last step of the daily chain (``steps/execution.py``), with its MLflow run, decision records
and metadata. See ``docs/engines/execution.md``."""

from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    asset,
)

from prometheus_dagster.assets.common import register_config, run_dates, write_decisions
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.execution import ExecutionConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.execution import (  # noqa: F401  (re-exported)
    BOOK_TABLES,
    MARKET_INPUTS,
    PaperRows,
    compute_paper,
    paper_inputs,
    stale_after,
)
from prometheus_dagster.steps.universe import register_strategies

GROUP = "execution"
ASSET = "paper_execution"


def _write_books(wh: Any, market_id: str, dates: list[pd.Timestamp],
                 written: dict[str, PaperRows]) -> None:
    for pid, rows in written.items():
        extra = {"portfolio_id": pid, "backtest_id": None}
        wh.write_partitions("orders", rows.orders, market_id=market_id,
                            dates=rows.order_dates, extra=extra)
        wh.write_partitions("fills", rows.fills, market_id=market_id, dates=dates, extra=extra)
        wh.write_partitions("positions_snapshots", rows.snapshots, market_id=market_id,
                            dates=dates, extra=extra)


def paper_execution_asset(market_id: str) -> AssetsDefinition:
    inputs = paper_inputs(load_engine_config("execution").typed(ExecutionConfig))

    # the stored book (the asset's own earlier partitions) is read to resume from; a
    # dependency of the asset on itself would make Dagster order a range partition by partition
    @asset(
        key=AssetKey([market_id, ASSET]),
        group_name=GROUP,
        deps=asset_deps(MARKET_INPUTS, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"tables": ", ".join(BOOK_TABLES),
                  **declare(step_name(market_id, ASSET), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Paper trading of every strategy's {market_id} target portfolio: the "
                    "previous session's orders fill on this session's bars (the backtest fill "
                    "model), the book is marked at the close, and this session's target "
                    "becomes the orders for the next (orders, fills, positions_snapshots in "
                    "PAPER mode).",
    )
    def _paper(context: AssetExecutionContext, warehouse: WarehouseResource,
               mlflow: MlflowTracking) -> MaterializeResult:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return MaterializeResult(metadata={"portfolios": 0})
        loaded = load_engine_config("execution")
        config_id = register_config(wh, loaded)
        written, decisions = compute_paper(context.log, wh, market_id, dates, list(strategies),
                                           loaded.typed(ExecutionConfig), config_id)
        meta: dict = {"sessions": len(dates), "config_id": config_id}
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            for pid, rows in written.items():
                sid = pid.split(":")[0]
                snaps, fills = rows.snapshots, rows.fills
                run.log_metric_series(f"{sid}_paper_equity",
                                      snaps.groupby("date")["equity"].first())
                run.log_metrics({f"{sid}_fills": len(fills),
                                 f"{sid}_costs": float((fills["commission"]
                                                        + fills["slippage_cost"]).sum())})
                if stale_after(wh, market_id, pid, dates[-1], snaps):
                    context.log.warning(
                        f"{pid}: the stored paper book after {dates[-1].date()} was traded "
                        "from a different book; re-materialize the later sessions of "
                        f"{market_id}/paper_execution")
                last = snaps[snaps["date"] == snaps["date"].max()]
                meta[f"{pid} equity on {pd.Timestamp(last['date'].iloc[0]).date()}"] = \
                    round(float(last["equity"].iloc[0]), 2)
                meta[f"{pid} orders"] = int(rows.orders["decided_on"].isin(dates).sum())
                meta[f"{pid} fills"] = len(fills)
            lineage = run.metadata()
            run_id = run.run_id
        # The books are committed after their MLflow run (see resources/mlflow_tracking.py).
        _write_books(wh, market_id, dates, written)
        write_decisions(wh, context, "execution", market_id, dates, pd.DataFrame(decisions),
                        mlflow_run_id=run_id)
        return MaterializeResult(metadata={**lineage, **meta})

    return _paper


def execution_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [paper_execution_asset(m) for m in markets]
