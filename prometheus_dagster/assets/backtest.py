"""Backtest assets per market: one strategy config over a range of sessions in one Dagster run,
through the time machine (strict by default), with the production engines deciding and the
execution simulator filling; metrics overall and per regime and stability bucket, a tear sheet
in MLflow. And ``decision_outcomes``: what each logged portfolio decision realised."""

import json
import tempfile
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from prometheus_dagster.assets.backtest_loop import BacktestSpec, annotate, run_backtest
from prometheus_dagster.assets.common import register_config, run_dates
from prometheus_dagster.assets.universe import register_strategies
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame, get_schema, validate_frame
from prometheus_dagster.engines.backtest import (
    TimeMachine,
    backtest_metrics,
    decision_outcomes,
    sliced_metrics,
    tear_sheet_figure,
    tear_sheet_html,
    tear_sheet_png,
    with_returns_and_drawdown,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "backtest"
OUTCOME_HORIZONS = (1, 5, 21)


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


def _sessions(wh: Warehouse, market_id: str, start: pd.Timestamp,
              end: pd.Timestamp) -> list[pd.Timestamp]:
    days = trading_calendar(market_id).sessions(start, end)
    priced = wh.query(f"select distinct date from {wh.sql_name('prices_daily')} where "
                      f"market_id = '{market_id}' and date between '{start.date()}' and "
                      f"'{end.date()}'")
    have = {pd.Timestamp(d).normalize() for d in priced["date"]}
    return [pd.Timestamp(d).normalize() for d in days if pd.Timestamp(d).normalize() in have]


def _spec(context, wh: Warehouse, market_id: str, config: BacktestRunConfig) -> BacktestSpec:
    strategies = register_strategies(wh, market_id)
    if config.strategy_id not in strategies:
        raise ConfigError(f"backtest: strategy {config.strategy_id!r} does not trade "
                          f"{market_id} (strategies here: {', '.join(sorted(strategies))})")
    strategy, strategy_cid = strategies[config.strategy_id]
    start, end = pd.Timestamp(config.start), pd.Timestamp(config.end)
    if end < start:
        raise ConfigError(f"backtest: end {config.end} is before start {config.start}")
    sessions = _sessions(wh, market_id, start, end)
    if len(sessions) < 2:
        raise ConfigError(f"backtest: {market_id} has {len(sessions)} priced session(s) in "
                          f"{config.start}..{config.end}; ingest prices first")
    loaded = {e: load_engine_config(e) for e in ("execution", "assessment", "risk")}
    cids = {e: register_config(wh, c) for e, c in loaded.items()}
    backtest_id = (f"{config.strategy_id}:{market_id}:{sessions[0].date()}:"
                   f"{sessions[-1].date()}:{context.run.run_id[:8]}")
    return BacktestSpec(
        backtest_id=backtest_id, strategy_id=config.strategy_id, strategy=strategy,
        strategy_config_id=strategy_cid, market_id=market_id, sessions=sessions,
        rebalance_every=config.rebalance_every, initial_capital=config.initial_capital,
        execution=loaded["execution"].config, execution_config_id=cids["execution"],
        assessment=loaded["assessment"].config, assessment_config_id=cids["assessment"],
        risk=loaded["risk"].config)  # type: ignore[arg-type]


def backtest_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "backtest_runs"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in (
            "prices_daily", "instrument_scores", "assessment_models", "universes",
            "risk_specific", "soft_target_classes", "stability_vectors", "regimes")],
        metadata={"table": "backtest_runs"},
        tags={"prometheus/tier": "3"},
        description=f"Backtest of one strategy on {market_id} over a date range (run config): "
                    "the time machine gates every read to the session being decided, the "
                    "production engines decide, the simulator fills; metrics, regime and "
                    "stability slices and a tear sheet in MLflow.",
    )
    def _backtest(context: AssetExecutionContext, config: BacktestRunConfig,
                  warehouse: WarehouseResource, mlflow: MlflowTracking) -> MaterializeResult:
        wh = warehouse.get()
        spec = _spec(context, wh, market_id, config)
        context.log.info(f"backtest {spec.backtest_id}: {len(spec.sessions)} sessions, "
                         f"rebalancing every {spec.rebalance_every}, strict={config.strict}")
        tm = TimeMachine(wh, strict=config.strict)
        result = run_backtest(tm, mlflow, spec, context.log)
        equity = with_returns_and_drawdown(annotate(tm, spec, result.equity))
        metrics = backtest_metrics(equity)
        sliced = sliced_metrics(equity)
        title = f"{spec.strategy_id} on {market_id}, {spec.sessions[0].date()} .. " \
                f"{spec.sessions[-1].date()}"
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=spec.strategy_config_id,
                              params={"strategy_id": spec.strategy_id,
                                      "backtest_id": spec.backtest_id,
                                      "start": str(spec.sessions[0].date()),
                                      "end": str(spec.sessions[-1].date()),
                                      "strict": config.strict,
                                      "rebalance_every": spec.rebalance_every,
                                      "execution_config_id": spec.execution_config_id,
                                      "assessment_config_id": spec.assessment_config_id},
                              extra_tags={"backtest_id": spec.backtest_id}) as run:
            run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)
                             and not isinstance(v, bool)})
            run.log_metric_series("equity", equity.set_index("date")["equity"])
            fig = tear_sheet_figure(equity, title)
            png = tear_sheet_png(fig)
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
        _write(wh, context, spec, result, equity, metrics, sliced, tm, run_id, config.strict)
        return MaterializeResult(metadata={
            **lineage, "backtest_id": spec.backtest_id,
            "sessions": len(spec.sessions), "rebalances": len(result.decisions),
            "fills": len(result.fills()),
            "walk_seconds": MetadataValue.json({k: round(v, 2)
                                                for k, v in result.seconds.items()}),
            "scores_computed_in_run": result.scores_computed,
            **{k: float(metrics[k]) for k in ("total_return", "cagr", "sharpe",
                                              "max_drawdown") if metrics.get(k) is not None},
            "data_reads": MetadataValue.json(tm.reads)})

    return _backtest


def _write(wh: Warehouse, context, spec: BacktestSpec, result, equity: pd.DataFrame,
           metrics: dict, sliced: dict, tm: TimeMachine, run_id: str, strict: bool) -> None:
    """The run's rows: its trades, daily equity, orders, fills and snapshots (rows of other
    backtests untouched) and its ``backtest_runs`` row."""
    bid, market = spec.backtest_id, spec.market_id
    dates = spec.sessions
    frames = result.frames()
    fills = frames["fills"]
    trades = pd.DataFrame({
        "backtest_id": bid, "market_id": market, "date": fills["date"],
        "instrument_id": fills["instrument_id"], "side": fills["side"],
        "quantity": fills["quantity"], "price": fills["price"],
        "commission": fills["commission"], "slippage_cost": fills["slippage_cost"],
        "decision_id": fills["decision_id"]})
    daily = equity.drop(columns=["dividends"]).assign(backtest_id=bid, market_id=market)
    extra = {"backtest_id": bid}
    wh.write_partitions("backtest_trades", trades, market_id=market, dates=dates, extra=extra)
    wh.write_partitions("backtest_daily_equity", daily, market_id=market, dates=dates,
                        extra=extra)
    pid = f"{spec.strategy_id}:{market}"
    for table in ("orders", "fills", "positions_snapshots"):
        wh.write_partitions(table, frames[table], market_id=market, dates=dates,
                            extra={"portfolio_id": pid, "backtest_id": bid})
    wh.insert_missing("backtest_runs", pd.DataFrame([{
        "backtest_id": bid, "strategy_id": spec.strategy_id, "market_id": market,
        "config_id": spec.strategy_config_id, "start_date": dates[0], "end_date": dates[-1],
        "strict": strict, "metrics": metrics,
        "sliced_metrics": {k: v.to_dict("records") for k, v in sliced.items()},
        "data_reads": tm.reads, "mlflow_run_id": run_id,
        "dagster_run_id": context.run.run_id,
        "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None)}]))


# --- decision outcomes ------------------------------------------------------------------------
def decision_outcomes_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "decision_outcomes"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in ("returns_daily", "target_portfolios")],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "decision_outcomes"},
        tags={"prometheus/tier": "2"},
        description=f"Realised return, P&L per unit of gross and drawdown of each {market_id} "
                    f"portfolio decision over {', '.join(map(str, OUTCOME_HORIZONS))} sessions, "
                    "dated by the last session included (known from then on).",
    )
    def _outcomes(context: AssetExecutionContext, warehouse: WarehouseResource
                  ) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        first = dates[0] - pd.Timedelta(days=int(max(OUTCOME_HORIZONS) * 7 / 5) + 10)
        decisions = wh.read_partitions("engine_decisions", market_id=market_id, start=first,
                                       end=dates[-1], extra={"engine_name": "portfolio"})
        returns = wh.read_partitions("returns_daily", market_id=market_id, start=first,
                                     end=dates[-1], columns=["instrument_id", "date", "ret_1d"])
        rows = []
        for r in decisions.itertuples():
            action = (json.loads(r.proposed_action) if isinstance(r.proposed_action, str)
                      else r.proposed_action) or {}
            if action.get("weights"):
                rows.append({"decision_id": r.decision_id, "engine_name": r.engine_name,
                             "market_id": market_id, "as_of_date": r.as_of_date,
                             "weights": action["weights"]})
        if not rows:
            return empty_frame("decision_outcomes")
        out = decision_outcomes(pd.DataFrame(rows), returns, OUTCOME_HORIZONS)
        out = out[pd.to_datetime(out["end_date"]).isin(set(dates))]
        context.add_output_metadata({"rows": len(out), "decisions": len(rows)})
        return validate_frame(get_schema("decision_outcomes"), out.reset_index(drop=True))

    return _outcomes


def backtest_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [a for m in markets for a in (backtest_asset(m), decision_outcomes_asset(m))]
