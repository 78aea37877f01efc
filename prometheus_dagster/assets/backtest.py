"""Backtest assets per market: one strategy config over a range of sessions in one Dagster run,
through the time machine (strict by default), decided by the production steps and filled by
the execution simulator (``steps/backtest.py``); metrics overall and per regime and stability
bucket, a tear sheet in MLflow. And ``decision_outcomes`` (``decision_outcomes.py``)."""

import tempfile
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from prometheus_dagster.assets.decision_outcomes import decision_outcomes_asset
from prometheus_dagster.assets.lineage import declare, step_name
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.engines.assessment import AssessmentConfig
from prometheus_dagster.engines.backtest import (
    TimeMachine,
    backtest_metrics,
    sliced_metrics,
    tear_sheet_figure,
    tear_sheet_html,
    tear_sheet_png,
    with_returns_and_drawdown,
)
from prometheus_dagster.engines.risk import RiskModelConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.backtest import (  # noqa: F401  (re-exported)
    BacktestSpec,
    annotate,
    backtest_inputs,
    build_spec,
    fallback_inputs,
    result_tables,
    run_backtest,
    widest,
)
from prometheus_dagster.steps.universe import strategies_of

GROUP = "backtest"


class BacktestRunConfig(Config):
    """What to backtest (run config of ``<M>/backtest_runs``)."""

    strategy_id: str = Field(description="a strategy in configs/strategies that trades the "
                                         "market")
    start: str = Field(description="first session (YYYY-MM-DD)")
    end: str = Field(description="last session (YYYY-MM-DD)")
    strict: bool = Field(True, description="raise on any read dated after the session being "
                                           "decided (off: clip and warn)")
    rebalance_every: int = Field(5, ge=1, description="sessions between rebalances")
    initial_capital: float = Field(10_000_000.0, gt=0)


def backtest_asset(market_id: str) -> AssetsDefinition:
    inputs = backtest_inputs(strategies_of(market_id))
    fallback = fallback_inputs(load_engine_config("assessment").typed(AssessmentConfig),
                               load_engine_config("risk").typed(RiskModelConfig))

    # not partitioned: a backtest depends on its inputs' assets (fallbacks too) as a whole
    @asset(
        key=AssetKey([market_id, "backtest_runs"]),
        group_name=GROUP,
        deps=[AssetKey(c.key_path) for c in widest(inputs, fallback).concrete(market_id)],
        metadata={"table": "backtest_runs",
                  **declare(step_name(market_id, "backtest_runs"), inputs, market_id),
                  # read only on sessions the daily chain has not scored or risk-modelled
                  "prometheus/fallback_inputs": fallback.describe(market_id)},
        tags={"prometheus/tier": "3"},
        description=f"Backtest of one strategy on {market_id} over a date range (run config): "
                    "the time machine gates every read to the session being decided, the "
                    "production engines decide, the simulator fills; metrics, regime and "
                    "stability slices and a tear sheet in MLflow.",
    )
    def _backtest(context: AssetExecutionContext, config: BacktestRunConfig,
                  warehouse: WarehouseResource, mlflow: MlflowTracking) -> MaterializeResult:
        wh = warehouse.get()
        spec = build_spec(wh, market_id, config.strategy_id, pd.Timestamp(config.start),
                          pd.Timestamp(config.end), config.rebalance_every,
                          config.initial_capital, context.run.run_id[:8])
        context.log.info(f"backtest {spec.backtest_id}: {len(spec.sessions)} sessions, "
                         f"rebalancing every {spec.rebalance_every}, strict={config.strict}")
        tm = TimeMachine(wh, strict=config.strict)
        result = run_backtest(tm, mlflow, spec, context.log)
        equity = with_returns_and_drawdown(annotate(tm, spec, result.equity))
        metrics, sliced = backtest_metrics(equity), sliced_metrics(equity)
        first, last = spec.sessions[0].date(), spec.sessions[-1].date()
        title = f"{spec.strategy_id} on {market_id}, {first} .. {last}"
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=spec.strategy_config_id,
                              params={"strategy_id": spec.strategy_id,
                                      "backtest_id": spec.backtest_id, "start": str(first),
                                      "end": str(last), "strict": config.strict,
                                      "rebalance_every": spec.rebalance_every,
                                      "execution_config_id": spec.execution_config_id,
                                      "assessment_config_id": spec.assessment_config_id},
                              extra_tags={"backtest_id": spec.backtest_id}) as run:
            run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)
                             and not isinstance(v, bool)})
            run.log_metric_series("equity", equity.set_index("date")["equity"])
            png = tear_sheet_png(tear_sheet_figure(equity, title))
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "tear_sheet.png").write_bytes(png)
                (Path(tmp) / "tear_sheet.html").write_text(
                    tear_sheet_html(equity, metrics, sliced, png, title))
                run.log_artifact(Path(tmp) / "tear_sheet.png")
                run.log_artifact(Path(tmp) / "tear_sheet.html")
            run.log_dict({k: v.to_dict("records") for k, v in sliced.items()},
                         "sliced_metrics.json")
            run_id = run.run_id
            lineage = run.metadata()
        bid, dates = spec.backtest_id, spec.sessions
        pid = f"{spec.strategy_id}:{market_id}"
        for table, frame in result_tables(spec, result, equity).items():
            extra = ({"backtest_id": bid} if table.startswith("backtest_")
                     else {"portfolio_id": pid, "backtest_id": bid})
            wh.write_partitions(table, frame, market_id=market_id, dates=dates, extra=extra)
        wh.insert_missing("backtest_runs", pd.DataFrame([{
            "backtest_id": bid, "strategy_id": spec.strategy_id, "market_id": market_id,
            "config_id": spec.strategy_config_id, "start_date": dates[0], "end_date": dates[-1],
            "strict": config.strict, "metrics": metrics,
            "sliced_metrics": {k: v.to_dict("records") for k, v in sliced.items()},
            "data_reads": tm.reads, "mlflow_run_id": run_id,
            "dagster_run_id": context.run.run_id,
            "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None)}]))
        return MaterializeResult(metadata={
            **lineage, "backtest_id": bid, "sessions": len(dates),
            "rebalances": len(result.decisions), "fills": len(result.fills()),
            "walk_seconds": MetadataValue.json({k: round(v, 2)
                                                for k, v in result.seconds.items()}),
            "scores_computed_in_run": result.scores_computed,
            **{k: float(metrics[k]) for k in ("total_return", "cagr", "sharpe",
                                              "max_drawdown") if metrics.get(k) is not None},
            "data_reads": MetadataValue.json(tm.reads)})

    return _backtest


def backtest_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [a for m in markets for a in (backtest_asset(m), decision_outcomes_asset(m))]
