"""Regime assets per region (each data market and GLOBAL): prototype refits on the configured
cadence (``assets/regime_models.py``) and daily regimes made with the version trained strictly
before each date (``steps/regime.py``)."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    asset,
)

from prometheus_dagster.assets.common import (
    register_config,
    require_quality_passed,
    run_dates,
    write_decisions,
)
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.assets.regime_models import PLOT_SESSIONS, regime_training_asset
from prometheus_dagster.core.calendars import GLOBAL
from prometheus_dagster.core.partitions import partitions_def_for
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.regime import RegimeConfig, missing_inputs, regime_path_summary
from prometheus_dagster.engines.regime.config import RegionConfig
from prometheus_dagster.engines.regime.plots import regime_figure
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.regime import (  # noqa: F401  (read_region_inputs: re-exported)
    compute_regimes,
    imputed_features,
    index_returns,
    read_region_inputs,
    regime_config,
    regime_decisions,
    regime_refs,
    regime_regions,
    regimes_inputs,
)

GROUP = "regime"
ENGINE = "regime"


def regimes_asset(region: str, rc: RegionConfig, cfg: RegimeConfig) -> AssetsDefinition:
    inputs = regimes_inputs(region, rc)

    @asset(
        key=AssetKey([region, "regimes"]),
        group_name=GROUP,
        deps=asset_deps(inputs, region, rc.members),
        partitions_def=partitions_def_for(region),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "regimes", "partition_extra": {"market_id": region},
                  **declare(step_name(region, "regimes"), inputs, region, rc.members)},
        tags={"prometheus/tier": "1"},
        description=f"Regime of {region} per date: label, confidence, transition "
                    "probabilities, early-warning alert level, embedding.",
    )
    def _regimes(context: AssetExecutionContext, warehouse: WarehouseResource,
                 mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        for m in (rc.members if region == GLOBAL else (region,)):
            require_quality_passed(wh, m, dates, ["prices_daily"])
        loaded = regime_config()
        cfg = loaded.typed(RegimeConfig)
        config_id = register_config(wh, loaded)
        out, path, region_data = compute_regimes(wh, mlflow, region, rc, dates, cfg, config_id)
        lacking = missing_inputs(region_data)
        if lacking:
            context.log.warning(f"{region} regimes without: {'; '.join(lacking)}")
        done = set(out["as_of_date"]) if len(out) else set()
        without = [d for d in dates if d not in done]
        if without:
            context.log.warning(
                f"{region}: no regime for {len(without)} of {len(dates)} date(s) (first "
                f"{without[0].date()}): no internals that day, or no prototypes trained before "
                f"it; materialize {region}/regime_models for the period and re-run")
        imputed = imputed_features(out)
        if imputed:
            context.log.warning(
                f"{region}: model features missing and set to their training mean on some "
                "dates (stale or not yet ingested macro series?): "
                + ", ".join(f"{f} on {n} date(s)" for f, n in imputed.items()))
        with mlflow.asset_run(context, GROUP, market_id=region, config_id=config_id) as run:
            if len(out):
                daily = out.set_index("as_of_date")
                run.log_metric_series("confidence", daily["confidence"])
                run.log_metric_series("warning_count", daily["warning_count"].astype(float))
            run.log_metrics({**regime_path_summary(out), "rows": len(out),
                             "dates_without_regime": len(without),
                             **{f"dates_imputed_{f}": n for f, n in imputed.items()}})
            run.log_params({"missing_inputs": "; ".join(lacking)[:500] or "none"})
            if len(path):
                run.log_figure(regime_figure(region, path.tail(PLOT_SESSIONS),
                                             index_returns(region_data)), "regimes.png")
            lineage = run.metadata()
            run_id = run.run_id
        if len(out):
            refs = regime_refs(region, rc, region_data, cfg)
            write_decisions(wh, context, ENGINE, region, dates, regime_decisions(out, refs),
                            mlflow_run_id=run_id)
        latest = out.iloc[-1] if len(out) else None
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "models": ", ".join(sorted(set(out["model_id"]))) if len(out) else "none",
            "dates_without_regime": len(without),
            "imputed_features": ", ".join(f"{f}: {n}" for f, n in imputed.items()) or "none",
            "latest": MetadataValue.text("none" if latest is None else
                                         f"{pd.Timestamp(latest['as_of_date']).date()} "
                                         f"{latest['regime_label']} "
                                         f"({latest['confidence']:.2f}), {latest['alert_level']}"),
            "missing_inputs": "; ".join(lacking) or "none"})
        return out if len(out) else empty_frame("regimes")

    return _regimes


def regime_assets(data_markets: list[str]) -> list[AssetsDefinition]:
    cfg = regime_config().typed(RegimeConfig)
    out: list[AssetsDefinition] = []
    for region, rc in regime_regions(data_markets).items():
        out += [regime_training_asset(region, rc, cfg), regimes_asset(region, rc, cfg)]
    return out
