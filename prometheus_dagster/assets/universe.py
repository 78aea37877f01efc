"""Universe assets per market: for every strategy trading the market, each instrument's tier
(CORE, SATELLITE, EXCLUDED with reasons) on each date (``steps/universe.py``), with its MLflow
run, decision records and metadata."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import run_dates, write_decisions
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.common import chunked
from prometheus_dagster.steps.universe import (  # noqa: F401  (re-exported for other modules)
    PREVIOUS_UNIVERSE,
    compute_universes,
    empty_selections,
    reason_list,
    register_strategies,
    strategies_of,
    universe_changes,
    universe_decisions,
    universe_inputs,
)

GROUP = "portfolio"
ENGINE = "universe"
TABLE = "universes"


def universe_asset(market_id: str) -> AssetsDefinition:
    inputs = universe_inputs(strategies_of(market_id)) + PREVIOUS_UNIVERSE
    # the previous date's universes are read for the decision record only: a dependency of
    # the asset on itself would make Dagster order a range backfill partition by partition
    deps = [d for d in asset_deps(inputs, market_id) if d.asset_key != AssetKey([market_id,
                                                                                   TABLE])]

    @asset(
        key=AssetKey([market_id, TABLE]),
        group_name=GROUP,
        deps=deps,
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": TABLE, **declare(step_name(market_id, TABLE), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Universe of each strategy trading {market_id}: hard filters, quality "
                    "screens, soft-target policy, ranking by assessment score, sector cap and "
                    "max size; CORE / SATELLITE / EXCLUDED with a reason for every exclusion.",
    )
    def _universes(context: AssetExecutionContext, warehouse: WarehouseResource,
                   mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return empty_frame(TABLE)
        parts = [compute_universes(wh, market_id, chunk, strategies)
                 for chunk in chunked(dates, context.log, f"{market_id} universes")]
        out = pd.concat([p for p in parts if len(p)] or [empty_frame(TABLE)], ignore_index=True)
        no_score = out[out["reasons"].apply(lambda r: "no assessment score" in r)]
        if len(no_score) == len(out) and len(out):
            context.log.warning(f"{market_id}: no assessment scores on these dates: every name "
                                "is EXCLUDED (materialize instrument_scores first)")
        for line in empty_selections(out):
            context.log.warning(f"{market_id} {line}")
        counts = out.groupby(["strategy_id", "tier"]).size()
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=",".join(c for _, c in strategies.values())) as run:
            for sid, g in out.groupby("strategy_id"):
                run.log_metric_series(f"{sid}_selected", g.groupby("as_of_date")["tier"].apply(
                    lambda s: float((s != "EXCLUDED").sum())))
            run.log_metrics({f"{sid}_{tier}_rows": int(n) for (sid, tier), n in counts.items()})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, ENGINE, market_id, dates,
                        universe_decisions(wh, market_id, out, strategies),
                        mlflow_run_id=run_id)
        context.add_output_metadata({
            **lineage, "rows": len(out),
            "strategies": ", ".join(f"{sid} ({cid})" for sid, (_, cid) in strategies.items()),
            **{f"{sid} {tier}": int(n) for (sid, tier), n in counts.items()}})
        return out

    return _universes


def universe_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [universe_asset(m) for m in markets]
