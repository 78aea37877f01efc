"""Portfolio assets per market: each strategy's target portfolio of every date
(``steps/portfolio.py``) and its risk report (``steps/portfolio_report.py``), with their MLflow
runs, decision records and metadata. See ``docs/engines/portfolio.md``."""

import json

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import run_dates, write_decisions
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.common import chunked
from prometheus_dagster.steps.fragility import read_paths_by_date
from prometheus_dagster.steps.portfolio import (  # noqa: F401  (compute_targets: re-exported)
    TARGET_INPUTS,
    TARGET_STEP_INPUTS,
    compute_targets,
    compute_targets_chunked,
)
from prometheus_dagster.steps.portfolio_report import REPORT_INPUTS, compute_risk_reports
from prometheus_dagster.steps.universe import register_strategies

GROUP = "portfolio"


def target_portfolios_asset(market_id: str) -> AssetsDefinition:
    table = "target_portfolios"

    # the previous target is read to rebalance from; a dependency of the asset on itself
    # would make Dagster order a range backfill partition by partition
    @asset(
        key=AssetKey([market_id, table]),
        group_name=GROUP,
        deps=asset_deps(TARGET_INPUTS, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": table, **declare(step_name(market_id, table), TARGET_STEP_INPUTS,
                                            market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Target weights of each strategy's {market_id} portfolio: maximise "
                    "w'mu - lambda w'Sigma w - costs under budget, bounds, gross, sector, "
                    "factor, turnover and soft-target limits (factor-form QP, Clarabel), "
                    "rebalancing from the previous date's target.",
    )
    def _targets(context: AssetExecutionContext, warehouse: WarehouseResource,
                 mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return empty_frame(table)
        runs = list(compute_targets_chunked(context.log, wh, market_id, dates, strategies))
        out = pd.concat([r.frame() for r in runs if r.rows] or [empty_frame(table)],
                        ignore_index=True)
        decisions = [d for r in runs for d in r.decisions]
        statuses = pd.Series([d["proposed_action"]["status"] for d in decisions])
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=",".join(c for _, c in strategies.values())) as run:
            for pid, g in out.groupby("portfolio_id"):
                per_day = g.groupby("as_of_date")
                sid = pid.split(":")[0]
                run.log_metric_series(f"{sid}_volatility", per_day["portfolio_volatility"].first())
                run.log_metric_series(f"{sid}_turnover", per_day["turnover"].first())
                run.log_metric_series(f"{sid}_names", per_day["weight"].apply(
                    lambda w: float((w != 0).sum())))
            run.log_metrics({"rows": len(out), **{f"decisions_{k.lower()}": int(v)
                                                  for k, v in statuses.value_counts().items()}})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, "portfolio", market_id, dates, pd.DataFrame(decisions),
                        mlflow_run_id=run_id)
        infeasible = [d for d in decisions if d["proposed_action"]["status"] == "INFEASIBLE"]
        context.add_output_metadata({
            **lineage, "rows": len(out), "infeasible": len(infeasible),
            "first_infeasible": "; ".join(infeasible[0]["proposed_action"]["conflicts"])
            if infeasible else "none",
            **{f"{pid} names on {pd.Timestamp(g['as_of_date'].max()).date()}":
               int((g.loc[g["as_of_date"] == g["as_of_date"].max(), "weight"] != 0).sum())
               for pid, g in out.groupby("portfolio_id")}})
        return out

    return _targets


def risk_reports_asset(market_id: str) -> AssetsDefinition:
    table = "portfolio_risk_reports"

    @asset(
        key=AssetKey([market_id, table]),
        group_name=GROUP,
        deps=asset_deps(REPORT_INPUTS, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": table, **declare(step_name(market_id, table), REPORT_INPUTS,
                                            market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Risk report of each {market_id} target portfolio: exposures by factor, "
                    "sector, country, currency and fragility bucket; parametric and scenario "
                    "VaR / ES; P&L per scenario set; stability; binding constraints.",
    )
    def _reports(context: AssetExecutionContext, warehouse: WarehouseResource,
                 mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        parts = [compute_risk_reports(wh, market_id, chunk, strategies, read_paths_by_date)
                 for chunk in chunked(dates, context.log, f"{market_id} risk reports")]
        out = pd.concat([p for p in parts if len(p)] or [empty_frame(table)], ignore_index=True)
        with mlflow.asset_run(context, GROUP, market_id=market_id) as run:
            for pid, g in out.groupby("portfolio_id"):
                sid = pid.split(":")[0]
                series = g.set_index("as_of_date")
                run.log_metric_series(f"{sid}_volatility", series["volatility"])
                run.log_metric_series(f"{sid}_scenario_es_95", series["scenario_es"].map(
                    lambda v: (json.loads(v) if isinstance(v, str) else v or {}).get(
                        "95%", np.nan)))
            run.log_metrics({"reports": len(out)})
            lineage = run.metadata()
        context.add_output_metadata({**lineage, "rows": len(out)})
        return out

    return _reports


def portfolio_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [a for m in markets for a in (target_portfolios_asset(m), risk_reports_asset(m))]
