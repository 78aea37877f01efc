"""Ingestion assets: per market the daily tables, GLOBAL macro series (``steps/ingestion.py``);
reference data and the embedded market's ground truth are in ``assets/ingestion_reference.py``.

Every (market, date, table) is a unit: the staged batch is fetched, validated by its table's
quality gate (which also sees the stored rows: losing them fails unless ``quality.
allow_row_loss`` or the run tag ``prometheus/allow_row_loss=true``), and only the dates that
pass are swapped in, in one transaction. A date that fails keeps its previous rows, is logged
FAILED in ``ingestion_runs`` and fails the blocking ``quality`` check, stopping everything
downstream. See ``docs/engines/ingestion.md``.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    asset,
)

from prometheus_dagster.assets.common import register_config, run_dates
from prometheus_dagster.assets.ingestion_reference import reference_assets_of, truth_assets
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.calendars import GLOBAL
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.errors import DataQualityError, DataSchemaError, SourceError
from prometheus_dagster.core.ingestion_config import ingestion_config
from prometheus_dagster.core.partitions import partitions_def_for
from prometheus_dagster.engines.ingestion.quality import GateLimits
from prometheus_dagster.engines.ingestion.sources import strip_provenance
from prometheus_dagster.resources.io_manager import WarehouseResource, add_partition_metadata
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.steps.ingestion import (  # noqa: F401  (MARKET_TABLES, gate_limits:
    MARKET_TABLES,  # re-exported for definitions and tests)
    failed_fetch,
    fetch_and_check,
    gate_limits,
    ingestion_inputs,
    now,
    run_rows,
    upstream_inputs,
)

GROUP = "ingestion"


def ingest_unit_batch(context: AssetExecutionContext, *, table: str, market_id: str | None,
                      source, warehouse, history_sessions: int,
                      mlflow: MlflowTracking | None = None, limits: GateLimits | None = None,
                      ) -> Iterator[AssetCheckResult | MaterializeResult]:
    """Fetch, validate and swap in the units (dates) of this run; see the module docstring.
    ``limits``: the gate's limits (default: the ingestion config and the run's tags)."""
    dates, started, run_id = run_dates(context), now(), context.run.run_id
    config_id = register_config(warehouse, load_engine_config("ingestion"))
    try:
        batch = fetch_and_check(source, warehouse, table, market_id, dates, history_sessions,
                                limits or gate_limits(context.run.tags))
    except (SourceError, DataSchemaError) as exc:
        failed = failed_fetch(table, market_id, dates, str(exc))
        warehouse.append("ingestion_runs", run_rows(failed, source.name, run_id, started,
                                                    config_id))
        yield AssetCheckResult(check_name="quality", passed=False,
                               severity=AssetCheckSeverity.ERROR,
                               metadata={"error": str(exc), "failed_dates": len(dates)})
        raise DataQualityError(f"{failed.market} {table}: nothing written: {exc}") from exc
    lineage: dict = {}
    if mlflow is not None and not batch.bad_dates:
        # Tracking comes before the commit (see resources/mlflow_tracking.py): a tracking
        # failure leaves the warehouse and ingestion_runs untouched.
        with mlflow.asset_run(context, GROUP, market_id=batch.market, config_id=config_id,
                              params={"source": source.name, "table": table}) as run:
            run.log_metrics({"rows_written": len(batch.good), "dates": len(dates),
                             "warnings": batch.n_warnings, "stray_rows_refused": batch.stray})
            if batch.n_warnings:
                run.log_dict({d.strftime("%Y-%m-%d"): w
                              for d, w in sorted(batch.warnings.items())},
                             "quality_warnings.json")
            lineage = run.metadata()
    written = 0
    if batch.good_dates:
        written = warehouse.write_partitions(table, strip_provenance(batch.good),
                                             market_id=market_id, dates=batch.good_dates)
    warehouse.append("ingestion_runs", run_rows(batch, source.name, run_id, started, config_id))
    messages = batch.messages()
    yield AssetCheckResult(check_name="quality", passed=not batch.bad_dates,
                           severity=AssetCheckSeverity.ERROR, metadata={
        "failed_dates": ", ".join(d.strftime("%Y-%m-%d") for d in sorted(batch.bad_dates))
        or "none",
        "errors": "\n".join(messages) or "none", "warnings": batch.n_warnings,
        "stray_rows_refused": batch.stray})
    if batch.bad_dates:
        raise DataQualityError(
            f"{batch.market} {table}: {len(batch.bad_dates)} of {len(dates)} date(s) failed "
            f"data quality and kept their previous rows; {written} rows written for the "
            "others.\n" + "\n".join(messages))
    if batch.n_warnings:
        context.log.warning(f"{batch.market} {table}: {batch.n_warnings} data-quality "
                            "warning(s)")
    # each partition's own row count; the rest of the metadata is the run's
    add_partition_metadata(context.get_step_execution_context(), context.assets_def.key, {
        day.strftime("%Y-%m-%d"): {"rows": int(batch.counts.get(day, 0))} for day in dates})
    yield MaterializeResult(metadata={
        **lineage, "config_id": config_id, "rows_written": written, "dates": len(dates),
        "warnings": batch.n_warnings, "first_date": dates[0].strftime("%Y-%m-%d"),
        "last_date": dates[-1].strftime("%Y-%m-%d")})


def daily_table_asset(market_id: str | None, table: str) -> AssetsDefinition:
    """The ingestion asset of a dated table of ``market_id`` (None: GLOBAL macro series)."""
    market = market_id or GLOBAL
    key = AssetKey([market, table])
    inputs = ingestion_inputs(table, market_id, ingestion_config().history_sessions)

    @asset(
        key=key,
        group_name=GROUP,
        partitions_def=partitions_def_for(market),
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[AssetCheckSpec("quality", asset=key, blocking=True,
                                    description="great-expectations suite of the table")],
        deps=asset_deps(upstream_inputs(table, inputs), market),
        tags={"prometheus/tier": "1"},
        description=(f"{table} of {market_id}, validated and swapped in per date."
                     if market_id else "Macro series (rates, spreads, implied vol, "
                     "commodities, CPI...) per business day."),
        metadata={"table": table, **declare(step_name(market, table), inputs, market)},
    )
    def _ingest(context: AssetExecutionContext, source: SourceResource,
                warehouse: WarehouseResource, mlflow: MlflowTracking):
        yield from ingest_unit_batch(
            context, table=table, market_id=market_id, source=source.get(),
            warehouse=warehouse.get(), history_sessions=ingestion_config().history_sessions,
            mlflow=mlflow)

    return _ingest


def ingestion_assets(market_ids: list[str]) -> list[AssetsDefinition]:
    out: list[AssetsDefinition] = [daily_table_asset(None, "macro_time_series"),
                                   *truth_assets()]
    for m in market_ids:
        out += reference_assets_of(m)
        out += [daily_table_asset(m, t) for t in MARKET_TABLES]
    return out
