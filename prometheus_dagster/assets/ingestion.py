"""Ingestion assets: per market, reference data and the daily tables; GLOBAL macro series; the
embedded market's ground truth (group ``truth``, never read by engines).

Every (market, date, table) is a unit: the staged batch is fetched, validated by the
great-expectations suite of its table, and only the dates that pass are swapped in, in one
transaction. A date that fails keeps its previous rows, is logged FAILED in ``ingestion_runs``,
fails the blocking ``quality`` check and so stops everything downstream.

The gate also sees what is stored: a date whose new delivery would delete all of its stored rows
(or most of its instruments) fails unless ``quality.allow_row_loss`` is set in the ingestion
config or the run carries the tag ``prometheus/allow_row_loss=true``.
"""


import dataclasses
import json
import uuid
from collections.abc import Iterator

import pandas as pd
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
from prometheus_dagster.core.calendars import GLOBAL, trading_calendar
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.errors import DataQualityError, DataSchemaError, SourceError
from prometheus_dagster.core.ingestion_config import ALLOW_ROW_LOSS_TAG, ingestion_config
from prometheus_dagster.core.partitions import partitions_def_for
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.ingestion.quality import GateLimits
from prometheus_dagster.resources.io_manager import WarehouseResource, add_partition_metadata
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "ingestion"
MARKET_TABLES = ("prices_daily", "corporate_actions", "fundamentals", "news_articles",
                 "news_links")
MAX_MESSAGES = 25


def _now() -> pd.Timestamp:
    """Wall-clock time for run bookkeeping only (never for data decisions)."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def _issue_date(issue, staged: pd.DataFrame, date_col: str) -> pd.Timestamp | None:
    """The date an issue concerns: its own (a whole-date issue) or its staged row's (None when
    it names neither)."""
    if getattr(issue, "date", None) is not None:
        return pd.Timestamp(issue.date).normalize()
    index = getattr(issue, "index", None)
    if index is None or index not in staged.index:
        return None
    return pd.Timestamp(staged.at[index, date_col]).normalize()


def _history(warehouse: Warehouse, table: str, market_id: str | None, first: pd.Timestamp,
             sessions: int) -> pd.DataFrame | None:
    if table != "prices_daily" or market_id is None:
        return None
    start = trading_calendar(market_id).previous_trading_day(first, sessions)
    end = trading_calendar(market_id).previous_trading_day(first, 1)
    return warehouse.read_partitions(table, market_id=market_id, start=start, end=end)


def _stored_keys(warehouse: Warehouse, table: str, market_id: str | None,
                 dates: list[pd.Timestamp]) -> pd.DataFrame:
    """Partition and key columns of the rows stored now for ``dates`` (what a write replaces)."""
    schema = get_schema(table)
    part = schema.partition_column
    columns = [part, *[k for k in schema.primary_key if k != part]]
    return warehouse.read_partitions(table, market_id=market_id, dates=dates, columns=columns)


def _corporate_actions(source, warehouse: Warehouse, market_id: str,
                       dates: list[pd.Timestamp]) -> pd.DataFrame:
    """SPLITs and DELISTINGs known up to the run's last date: stored ones, plus those of the
    same delivery for the run's dates (its corporate_actions may not be ingested yet)."""
    cols = ["instrument_id", "date", "action_type"]
    stored = warehouse.read_partitions(
        "corporate_actions", market_id=market_id, end=dates[-1], columns=cols,
        extra={"action_type": ["SPLIT", "DELISTING"]})
    try:
        fresh = source.fetch("corporate_actions", market_id, dates[0].date(), dates[-1].date())
    except (SourceError, DataSchemaError):
        return stored  # the corporate_actions asset reports its own defects
    return pd.concat([stored, fresh[cols]], ignore_index=True) if len(fresh) else stored


def gate_limits(context: AssetExecutionContext | None = None) -> GateLimits:
    """The configurable limits of the quality gate; the run tag ``prometheus/allow_row_loss``
    (true) accepts row loss for that run only."""
    limits = GateLimits(**ingestion_config().quality.model_dump())
    tags = context.run.tags if context is not None else {}
    if str(tags.get(ALLOW_ROW_LOSS_TAG, "")).strip().lower() == "true":
        limits = dataclasses.replace(limits, allow_row_loss=True)
    return limits


def _run_rows(context: AssetExecutionContext, source_name: str, table: str, market: str,
              dates: list[pd.Timestamp], counts: dict, status: dict, warnings: dict,
              errors: dict, started: pd.Timestamp, config_id: str) -> pd.DataFrame:
    finished = _now()
    return pd.DataFrame([
        {
            "ingestion_run_id": uuid.uuid4().hex,
            "market_id": market,
            "date": d,
            "source": source_name,
            "table_name": table,
            "status": status[d],
            "row_count": int(counts.get(d, 0)),
            "warnings": json.dumps(warnings.get(d, [])[:MAX_MESSAGES]),
            "error": "\n".join(errors.get(d, [])[:MAX_MESSAGES]) or None,
            "started_at": started,
            "finished_at": finished,
            "dagster_run_id": context.run.run_id,
            "config_id": config_id,
        }
        for d in dates
    ])


def ingest_unit_batch(
    context: AssetExecutionContext,
    *,
    table: str,
    market_id: str | None,
    source,
    warehouse: Warehouse,
    history_sessions: int,
    mlflow: MlflowTracking | None = None,
    limits: GateLimits | None = None,
) -> Iterator[AssetCheckResult | MaterializeResult]:
    """Fetch, validate and swap in the units (dates) of this run; see the module docstring.
    ``limits``: the gate's limits (default: the ingestion config and the run's tags)."""
    from prometheus_dagster.engines.ingestion.quality import check_staged
    from prometheus_dagster.engines.ingestion.sources import strip_provenance

    schema = get_schema(table)
    date_col = schema.partition_column
    assert date_col is not None
    dates = run_dates(context)
    market = market_id or GLOBAL
    started = _now()
    config_id = register_config(warehouse, load_engine_config("ingestion"))
    wanted = set(dates)
    errors: dict[pd.Timestamp, list[str]] = {}
    warnings: dict[pd.Timestamp, list[str]] = {}
    try:
        staged = source.fetch(table, market_id, dates[0].date(), dates[-1].date())
    except (SourceError, DataSchemaError) as exc:
        failed = {d: [str(exc)] for d in dates}
        runs = _run_rows(context, source.name, table, market, dates, {},
                         dict.fromkeys(dates, "FAILED"), {}, failed, started, config_id)
        warehouse.append("ingestion_runs", runs)
        yield AssetCheckResult(
            check_name="quality", passed=False, severity=AssetCheckSeverity.ERROR,
            metadata={"error": str(exc), "failed_dates": len(dates)},
        )
        raise DataQualityError(f"{market} {table}: nothing written: {exc}") from exc

    staged = staged.reset_index(drop=True)
    staged_dates = pd.to_datetime(staged[date_col]).dt.normalize()
    # A row on a date that is not one of this run's partitions (e.g. not a session) is refused.
    stray = ~staged_dates.isin(wanted)
    if stray.any():
        staged = staged[~stray].reset_index(drop=True)
        staged_dates = staged_dates[~stray].reset_index(drop=True)
    history = _history(warehouse, table, market_id, dates[0], history_sessions)
    actions = (_corporate_actions(source, warehouse, market_id, dates)
               if table == "prices_daily" and market_id is not None else None)
    report = check_staged(table, staged, history=history, limits=limits or gate_limits(context),
                          corporate_actions=actions,
                          stored=_stored_keys(warehouse, table, market_id, dates))
    for issue in report.errors:
        day = _issue_date(issue, staged, date_col)
        for d in [day] if day is not None else dates:  # an issue with no row fails every date
            errors.setdefault(d, []).append(issue.message)
    for issue in report.warnings:
        day = _issue_date(issue, staged, date_col)
        warnings.setdefault(day if day is not None else dates[-1], []).append(issue.message)
    bad_dates = set(errors)

    good_dates = [d for d in dates if d not in bad_dates]
    good = staged[staged_dates.isin(good_dates)]
    counts = staged_dates[staged_dates.isin(good_dates)].value_counts().to_dict()
    n_warn = sum(len(v) for v in warnings.values())
    lineage: dict = {}
    if mlflow is not None and not bad_dates:
        # Tracking comes before the commit (see resources/mlflow_tracking.py): a tracking
        # failure leaves the warehouse and ingestion_runs untouched.
        with mlflow.asset_run(context, GROUP, market_id=market, config_id=config_id,
                              params={"source": source.name, "table": table}) as run:
            run.log_metrics({"rows_written": len(good), "dates": len(dates),
                             "warnings": n_warn, "stray_rows_refused": int(stray.sum())})
            if n_warn:
                run.log_dict({d.strftime("%Y-%m-%d"): w for d, w in sorted(warnings.items())},
                             "quality_warnings.json")
            lineage = run.metadata()
    written = 0
    if good_dates:
        written = warehouse.write_partitions(
            table, strip_provenance(good), market_id=market_id, dates=good_dates
        )
    status = {d: ("FAILED" if d in bad_dates else "SUCCESS") for d in dates}
    warehouse.append("ingestion_runs", _run_rows(
        context, source.name, table, market, dates, counts, status, warnings, errors, started,
        config_id,
    ))
    messages = [m for d in sorted(errors) for m in errors[d]][:MAX_MESSAGES]
    yield AssetCheckResult(
        check_name="quality",
        passed=not bad_dates,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "failed_dates": ", ".join(d.strftime("%Y-%m-%d") for d in sorted(bad_dates)) or "none",
            "errors": "\n".join(messages) or "none",
            "warnings": n_warn,
            "stray_rows_refused": int(stray.sum()),
        },
    )
    if bad_dates:
        raise DataQualityError(
            f"{market} {table}: {len(bad_dates)} of {len(dates)} date(s) failed data quality and "
            f"kept their previous rows; {written} rows written for the others.\n"
            + "\n".join(messages)
        )
    if n_warn:
        context.log.warning(f"{market} {table}: {n_warn} data-quality warning(s)")
    # each partition's own row count; the rest of the metadata is the run's
    add_partition_metadata(context.get_step_execution_context(), context.assets_def.key, {
        day.strftime("%Y-%m-%d"): {"rows": int(counts.get(day, 0))} for day in dates})
    yield MaterializeResult(metadata={
        **lineage,
        "config_id": config_id, "rows_written": written, "dates": len(dates), "warnings": n_warn,
        "first_date": dates[0].strftime("%Y-%m-%d"), "last_date": dates[-1].strftime("%Y-%m-%d"),
    })


def market_table_asset(market_id: str, table: str) -> AssetsDefinition:
    key = AssetKey([market_id, table])
    deps = [AssetKey([market_id, "instruments"])]
    if table == "news_links":
        deps.append(AssetKey([market_id, "news_articles"]))

    @asset(
        key=key,
        group_name=GROUP,
        partitions_def=partitions_def_for(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[AssetCheckSpec("quality", asset=key, blocking=True,
                                    description="great-expectations suite of the table")],
        deps=deps,
        tags={"prometheus/tier": "1"},
        description=f"{table} of {market_id}, validated and swapped in per date.",
        metadata={"table": table},
    )
    def _ingest(context: AssetExecutionContext, source: SourceResource,
                warehouse: WarehouseResource, mlflow: MlflowTracking):
        yield from ingest_unit_batch(
            context, table=table, market_id=market_id, source=source.get(),
            warehouse=warehouse.get(), history_sessions=ingestion_config().history_sessions,
            mlflow=mlflow,
        )

    return _ingest


def reference_table_asset(market_id: str, table: str) -> AssetsDefinition:
    @asset(
        key=[market_id, table],
        group_name=GROUP,
        tags={"prometheus/tier": "1"},
        description=f"{table} of {market_id} (reference data, replaced as a whole).",
        metadata={"table": table},
    )
    def _reference(context: AssetExecutionContext, source: SourceResource,
                   warehouse: WarehouseResource) -> MaterializeResult:
        frame = source.get().reference(market_id).get(table)
        if frame is None:
            frame = pd.DataFrame(columns=get_schema(table).column_names)
        n = warehouse.get().replace_all(table, frame, where={"market_id": market_id})
        return MaterializeResult(metadata={"rows": n})

    return _reference


@asset(
    key=["GLOBAL", "macro_time_series"],
    group_name=GROUP,
    partitions_def=partitions_def_for(GLOBAL),
    backfill_policy=BackfillPolicy.single_run(),
    check_specs=[AssetCheckSpec("quality", asset=AssetKey(["GLOBAL", "macro_time_series"]),
                                blocking=True)],
    tags={"prometheus/tier": "1"},
    description="Macro series (rates, spreads, implied vol, commodities, CPI...) per business day.",
    metadata={"table": "macro_time_series"},
)
def macro_time_series(context: AssetExecutionContext, source: SourceResource,
                      warehouse: WarehouseResource, mlflow: MlflowTracking):
    yield from ingest_unit_batch(
        context, table="macro_time_series", market_id=None, source=source.get(),
        warehouse=warehouse.get(), history_sessions=ingestion_config().history_sessions,
        mlflow=mlflow,
    )


@asset(key=["GLOBAL", "truth_regime_path"], group_name="truth",
       description="Hidden regime path of the embedded market (evaluation only).")
def truth_regime_path(source: SourceResource, warehouse: WarehouseResource) -> MaterializeResult:
    market = source.synthetic_market()
    if market is None:
        return MaterializeResult(metadata={"rows": 0, "note": "no embedded market configured"})
    n = warehouse.get().replace_all("truth.regime_path", market.truth_regimes())
    return MaterializeResult(metadata={"rows": n})


@asset(key=["GLOBAL", "truth_distress_events"], group_name="truth",
       description="Distress events of the embedded market's issuers (evaluation only).")
def truth_distress_events(source: SourceResource,
                          warehouse: WarehouseResource) -> MaterializeResult:
    market = source.synthetic_market()
    if market is None:
        return MaterializeResult(metadata={"rows": 0, "note": "no embedded market configured"})
    n = warehouse.get().replace_all("truth.distress_events", market.truth_distress_events())
    return MaterializeResult(metadata={"rows": n})


def ingestion_assets(market_ids: list[str]) -> list[AssetsDefinition]:
    out: list[AssetsDefinition] = [macro_time_series, truth_regime_path, truth_distress_events]
    for m in market_ids:
        out += [reference_table_asset(m, "issuers"), reference_table_asset(m, "instruments")]
        out += [market_table_asset(m, t) for t in MARKET_TABLES]
    return out
