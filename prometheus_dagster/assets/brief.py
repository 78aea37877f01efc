"""The daily brief: one GLOBAL asset per business day that renders an HTML page with plots for
every data market, writes it under $PROMETHEUS_HOME/briefs/<date>/, logs it to MLflow and links
it from the materialization. Any past date can be rendered again (only data dated on or before
it is read). Its inputs are declared in ``steps/brief.py``."""

from collections.abc import Sequence

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    asset,
)

from prometheus_dagster.assets.common import run_dates
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.calendars import GLOBAL
from prometheus_dagster.core.partitions import partitions_def_for
from prometheus_dagster.core.paths import prometheus_home
from prometheus_dagster.engines.brief import write_brief
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.brief import brief_deps, brief_inputs

GROUP = "monitoring"


def brief_directory():
    return prometheus_home() / "briefs"


def daily_brief_asset(market_ids: list[str], encoded: Sequence[str] = (),
                      regions: Sequence[str] = ()) -> AssetsDefinition:
    inputs = brief_inputs(market_ids, encoded, regions)

    @asset(
        key=AssetKey([GLOBAL, "daily_brief"]),
        group_name=GROUP,
        deps=asset_deps(brief_deps(inputs), GLOBAL),
        partitions_def=partitions_def_for(GLOBAL),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "daily_briefs",
                  **declare(step_name(GLOBAL, "daily_brief"), inputs, GLOBAL)},
        tags={"prometheus/tier": "2"},
        description="The daily brief (HTML + PNG): regimes, market internals, weakest "
                    "profiles, models in use, pipeline status.",
    )
    def _daily_brief(context: AssetExecutionContext, warehouse: WarehouseResource,
                     mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        rows = []
        for d in run_dates(context):
            html_path, png_path, data = write_brief(wh, d, market_ids, brief_directory())
            sections = {"pipeline_rows": int(data.pipeline["rows"].sum())
                        if len(data.pipeline) else 0,
                        "weakest": 0 if data.weakest is None else len(data.weakest),
                        "regimes": 0 if data.regimes is None else len(data.regimes),
                        "models": len(data.models)}
            with mlflow.asset_run(context, GROUP, extra_tags={"brief_date": str(d.date())}) \
                    as run:
                run.log_artifact(html_path, f"brief/{d.date()}")
                run.log_artifact(png_path, f"brief/{d.date()}")
                run.log_metrics({f"brief_{k}": v for k, v in sections.items()})
                lineage = run.metadata()
            rows.append({"date": d, "html_path": str(html_path), "png_path": str(png_path),
                         "markets": list(market_ids), "sections": sections,
                         "mlflow_run_id": run.run_id, "dagster_run_id": context.run.run_id})
            context.log.info(f"daily brief {d.date()}: {html_path}")
        context.add_output_metadata({
            **lineage, "brief": MetadataValue.path(rows[-1]["html_path"]),
            "plots": MetadataValue.path(rows[-1]["png_path"])})
        return pd.DataFrame(rows)

    return _daily_brief
