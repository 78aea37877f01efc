"""Scenario assets per market: the scenario sets generated as of each date (spec, seed,
calibration and path statistics) and their paths, regenerated from the stored specs so that
every stored path is reproducible from its set row (``steps/scenarios.py``)."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import (
    register_config,
    require_quality_passed,
    run_dates,
    write_decisions,
)
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.scenarios import ScenariosConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.scenarios import (  # noqa: F401  (ScenarioData: re-exported)
    ScenarioData,
    compute_scenario_paths,
    compute_scenario_sets,
    drop_older_step_returns,
    paths_as_stored,
    scenario_inputs,
    scenario_lookback,
    scenario_path_inputs,
    set_decisions,
    step_returns_kept_from,
)

GROUP = "scenarios"
ENGINE = "scenarios"


def scenarios_config() -> LoadedConfig:
    return load_engine_config("scenarios")


def _typed() -> ScenariosConfig:
    return scenarios_config().typed(ScenariosConfig)


def scenario_sets_asset(market_id: str, with_regime: bool) -> AssetsDefinition:
    inputs = scenario_inputs(_typed(), with_regime)

    @asset(
        key=AssetKey([market_id, "scenario_sets"]),
        group_name=GROUP,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "scenario_sets",
                  **declare(step_name(market_id, "scenario_sets"), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Scenario sets of {market_id} as of each date: historical (regime-"
                    "filtered), block bootstrap, factor bootstrap, shock overlays, "
                    "fragility-adversarial and named sets; spec, seed, calibration and path "
                    "statistics.",
    )
    def _sets(context: AssetExecutionContext, warehouse: WarehouseResource,
              mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, ["prices_daily"])
        loaded = scenarios_config()
        cfg = loaded.typed(ScenariosConfig)
        config_id = register_config(wh, loaded)
        result = compute_scenario_sets(wh, market_id, dates, cfg, config_id, with_regime,
                                       log=context.log)
        out = result.frame
        if result.partial:
            context.log.warning(f"{market_id}: {len(result.partial)} scenario set(s) not "
                                "generated: " + "; ".join(result.partial[:5]))
        if result.skipped:
            context.log.warning(f"{market_id}: no scenarios on {len(result.skipped)} date(s): "
                                + "; ".join(result.skipped[:5]))
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            run.log_metrics({"sets": len(out), "dates_without_scenarios": len(result.skipped),
                             "sets_not_generated": len(result.partial),
                             "clipped_moves": int(out["clipped_moves"].sum()) if len(out)
                             else 0})
            if len(out):
                latest = out[out["as_of_date"] == out["as_of_date"].max()]
                run.log_dict(latest[["set_id", "family", "calibration", "path_statistics"]]
                             .to_dict(orient="records"), "latest_sets.json")
            lineage = run.metadata()
            run_id = run.run_id
        if len(out):
            write_decisions(wh, context, ENGINE, market_id, dates,
                            set_decisions(out, inputs.refs(market_id)), mlflow_run_id=run_id)
        context.add_output_metadata({**lineage, "sets": len(out), "config_id": config_id,
                                     "dates_without_scenarios": len(result.skipped)})
        return out

    return _sets


def scenario_paths_asset(market_id: str, with_regime: bool) -> AssetsDefinition:
    inputs = scenario_path_inputs(_typed(), with_regime)

    @asset(
        key=AssetKey([market_id, "scenario_paths"]),
        group_name=GROUP,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "scenario_paths",
                  **declare(step_name(market_id, "scenario_paths"), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Scenario paths of {market_id}: per set, path and instrument the "
                    "cumulative return over the horizon, and the step returns for the last "
                    "store_paths_sessions sessions; regenerated from the stored set spec and "
                    "seed (a set that no longer reproduces fails the run).",
    )
    def _paths(context: AssetExecutionContext, warehouse: WarehouseResource,
               mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        cfg = _typed()
        out, stored = compute_scenario_paths(wh, market_id, dates, cfg, with_regime,
                                             log=context.log)
        if stored.empty:
            context.log.warning(f"{market_id}: no scenario sets on these dates; materialize "
                                f"{market_id}/scenario_sets first")
            return empty_frame("scenario_paths")
        kept_from = step_returns_kept_from(market_id, max(dates), cfg)
        out = paths_as_stored(out, kept_from)
        dropped = drop_older_step_returns(wh, market_id, kept_from)
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=str(stored["config_id"].iloc[0])) as run:
            run.log_metrics({"paths_rows": len(out), "sets": len(stored)})
            lineage = run.metadata()
        context.add_output_metadata({
            **lineage, "rows": len(out), "sets": len(stored),
            "step_returns_kept_from": "every date" if kept_from is None
            else kept_from.strftime("%Y-%m-%d"), "older_step_returns_dropped": dropped})
        return out

    return _paths


def scenario_assets(data_markets: list[str], regime_markets: list[str]) -> list[AssetsDefinition]:
    out: list[AssetsDefinition] = []
    for m in data_markets:
        out += [scenario_sets_asset(m, m in regime_markets),
                scenario_paths_asset(m, m in regime_markets)]
    return out
