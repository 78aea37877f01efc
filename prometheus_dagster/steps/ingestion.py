"""Ingestion step: fetch a table's delivery for a run's dates from the source, validate it with
the table's quality gate against what is stored, and decide which dates are swapped in. See
``docs/engines/ingestion.md``.

Ingestion reads the source, not the warehouse, except for its quality rules: the rows stored
now for the run's dates (what a write would replace; row-loss rule), for prices the
``history_sessions`` before the first date (previous closes: return outliers, stale prices) and
the stored SPLITs and DELISTINGs (they excuse a large move or missing rows).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prometheus_dagster.core.calendars import (
    GLOBAL,
    HISTORY_START_SETTING,
    history_start,
    trading_calendar,
)
from prometheus_dagster.core.errors import DataSchemaError, SourceError
from prometheus_dagster.core.ingestion_config import ALLOW_ROW_LOSS_TAG, ingestion_config
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.ingestion.quality import GateLimits, check_staged
from prometheus_dagster.engines.ingestion.sources import describe_location

MARKET_TABLES = ("prices_daily", "corporate_actions", "fundamentals", "news_articles",
                 "news_links")
MAX_MESSAGES = 25
_ACTION_COLUMNS = ["instrument_id", "date", "action_type"]


def ingestion_inputs(table: str, market_id: str | None, history_sessions: int) -> Inputs:
    """What the quality gate of ``table`` reads from the warehouse for date D: its own stored
    rows (for prices the ``history_sessions`` before D too), and for prices the stored SPLITs
    and DELISTINGs up to D. The asset's own table is not a Dagster dependency (the asset
    replaces those rows); see :func:`upstream_inputs`."""
    own = market_id if market_id is not None else GLOBAL
    if table != "prices_daily" or market_id is None:
        return Inputs(Read(table, market=own, note="stored rows the delivery replaces"))
    return Inputs(Read(table, sessions=history_sessions,
                       note="previous closes and the stored rows the delivery replaces"),
                  Read("corporate_actions", history=True,
                       note="stored SPLITs and DELISTINGs up to D"))


def upstream_inputs(table: str, inputs: Inputs) -> Inputs:
    """The declared inputs other than the asset's own table (its Dagster dependencies)."""
    return Inputs(*(r for r in inputs if r.table != table))


def gate_limits(tags: Mapping[str, str] | None = None) -> GateLimits:
    """The configurable limits of the quality gate; the run tag ``prometheus/allow_row_loss``
    (true) accepts row loss for that run only."""
    limits = GateLimits(**ingestion_config().quality.model_dump())
    if str((tags or {}).get(ALLOW_ROW_LOSS_TAG, "")).strip().lower() == "true":
        limits = dataclasses.replace(limits, allow_row_loss=True)
    return limits


def now() -> pd.Timestamp:
    """Wall-clock time for run bookkeeping only (never for data decisions)."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


@dataclass
class UnitBatch:
    """The outcome of fetching and validating one table's delivery for a run's dates."""

    table: str
    market: str
    dates: list[pd.Timestamp]
    good: pd.DataFrame  # staged rows of the dates that passed
    good_dates: list[pd.Timestamp]
    counts: dict[pd.Timestamp, int]
    errors: dict[pd.Timestamp, list[str]] = field(default_factory=dict)
    warnings: dict[pd.Timestamp, list[str]] = field(default_factory=dict)
    stray: int = 0  # rows on dates that are not partitions of the run, refused

    @property
    def bad_dates(self) -> set[pd.Timestamp]:
        return set(self.errors)

    @property
    def n_warnings(self) -> int:
        return sum(len(v) for v in self.warnings.values())

    def messages(self) -> list[str]:
        return [m for d in sorted(self.errors) for m in self.errors[d]][:MAX_MESSAGES]


def _issue_date(issue: Any, staged: pd.DataFrame, date_col: str) -> pd.Timestamp | None:
    """The date an issue concerns: its own (a whole-date issue) or its staged row's (None when
    it names neither)."""
    if getattr(issue, "date", None) is not None:
        return pd.Timestamp(issue.date).normalize()
    index = getattr(issue, "index", None)
    if index is None or index not in staged.index:
        return None
    return pd.Timestamp(staged.at[index, date_col]).normalize()


def _corporate_actions(source: Any, window: InputWindow, market_id: str) -> pd.DataFrame:
    """SPLITs and DELISTINGs known up to the run's last date: stored ones, plus those of the
    same delivery for the run's dates (its corporate_actions may not be ingested yet)."""
    stored = window.frame("corporate_actions", columns=_ACTION_COLUMNS,
                          action_type=["SPLIT", "DELISTING"])
    try:
        fresh = source.fetch("corporate_actions", market_id, window.first.date(),
                             window.last.date())
    except (SourceError, DataSchemaError):
        return stored  # the corporate_actions asset reports its own defects
    return pd.concat([stored, fresh[_ACTION_COLUMNS]], ignore_index=True) if len(fresh) \
        else stored


def _gate_context(source: Any, reader: Any, table: str, market_id: str | None,
                  dates: list[pd.Timestamp], history_sessions: int) -> dict[str, Any]:
    """What the gate compares a delivery with: stored keys, prices history, corporate actions."""
    schema = get_schema(table)
    part = schema.partition_column
    keys = [str(part), *[k for k in schema.primary_key if k != part]]
    window = InputWindow(reader, ingestion_inputs(table, market_id, history_sessions),
                         market_id or GLOBAL, dates)
    if table != "prices_daily" or market_id is None:
        return {"history": None, "corporate_actions": None,
                "stored": window.frame(table, market=market_id or GLOBAL, columns=keys)}
    rows = window.frame(table)
    on = pd.to_datetime(rows[part])
    return {"history": rows[(on < dates[0]).to_numpy()].reset_index(drop=True),
            "corporate_actions": _corporate_actions(source, window, market_id),
            "stored": rows[on.isin(dates).to_numpy()][keys].reset_index(drop=True)}


def fetch_and_check(source: Any, reader: Any, table: str, market_id: str | None,
                    dates: list[pd.Timestamp], history_sessions: int,
                    limits: GateLimits) -> UnitBatch:
    """Fetch the delivery of ``dates`` and validate it; a fetch that fails raises
    (``SourceError`` / ``DataSchemaError``) before anything is read from the warehouse."""
    date_col = get_schema(table).partition_column
    assert date_col is not None
    staged = source.fetch(table, market_id, dates[0].date(), dates[-1].date())
    staged = staged.reset_index(drop=True)
    staged_dates = pd.to_datetime(staged[date_col]).dt.normalize()
    # a row on a date that is not one of this run's partitions (e.g. not a session) is refused
    stray = ~staged_dates.isin(set(dates))
    if stray.any():
        staged = staged[~stray].reset_index(drop=True)
        staged_dates = staged_dates[~stray].reset_index(drop=True)
    report = check_staged(table, staged, limits=limits,
                          **_gate_context(source, reader, table, market_id, dates,
                                          history_sessions))
    errors: dict[pd.Timestamp, list[str]] = {}
    warnings: dict[pd.Timestamp, list[str]] = {}
    for issue in report.errors:
        day = _issue_date(issue, staged, date_col)
        for d in [day] if day is not None else dates:  # an issue with no row fails every date
            errors.setdefault(d, []).append(issue.message)
    for issue in report.warnings:
        day = _issue_date(issue, staged, date_col)
        warnings.setdefault(day if day is not None else dates[-1], []).append(issue.message)
    if (early := predating_rows(source, table, market_id, dates[0])) is not None:
        warnings.setdefault(dates[0], []).append(early)
    good_dates = [d for d in dates if d not in errors]
    keep = staged_dates.isin(good_dates)
    return UnitBatch(table=table, market=market_id or GLOBAL, dates=dates,
                     good=staged[keep], good_dates=good_dates,
                     counts=staged_dates[keep].value_counts().to_dict(), errors=errors,
                     warnings=warnings, stray=int(stray.sum()))


def first_partition(market_id: str | None) -> pd.Timestamp:
    """The first partition date of ``market_id`` (None: GLOBAL, business days)."""
    start = pd.Timestamp(history_start(market_id or GLOBAL))
    if market_id is None:
        return pd.bdate_range(start, periods=1)[0]
    return trading_calendar(market_id).sessions(start, start + pd.Timedelta(days=14))[0]


def predating_rows(source: Any, table: str, market_id: str | None,
                   first: pd.Timestamp) -> str | None:
    """When ``first`` is the market's first partition and the source holds rows of ``table``
    dated before it (sources that can say so: ``first_row``), the message saying those rows
    are never ingested and which setting reaches them."""
    first_row = getattr(source, "first_row", None)
    if first_row is None or first > first_partition(market_id):
        return None
    found = first_row(table, market_id)
    if found is None or found[0] >= first:
        return None
    day, file, row = found
    return (f"{describe_location(file, row)}: {market_id or GLOBAL} {table} has rows from "
            f"{day.date()}, before its history start {history_start(market_id or GLOBAL)}; "
            f"they are not ingested: set an earlier {HISTORY_START_SETTING} to keep them")


def run_rows(batch: UnitBatch, source_name: str, run_id: str, started: pd.Timestamp,
             config_id: str) -> pd.DataFrame:
    """The ``ingestion_runs`` rows of a batch: one per date, SUCCESS or FAILED."""
    finished = now()
    return pd.DataFrame([
        {
            "ingestion_run_id": uuid.uuid4().hex,
            "market_id": batch.market,
            "date": d,
            "source": source_name,
            "table_name": batch.table,
            "status": "FAILED" if d in batch.errors else "SUCCESS",
            "row_count": int(batch.counts.get(d, 0)),
            "warnings": json.dumps(batch.warnings.get(d, [])[:MAX_MESSAGES]),
            "error": "\n".join(batch.errors.get(d, [])[:MAX_MESSAGES]) or None,
            "started_at": started,
            "finished_at": finished,
            "dagster_run_id": run_id,
            "config_id": config_id,
        }
        for d in batch.dates
    ])


def failed_fetch(table: str, market_id: str | None, dates: list[pd.Timestamp],
                 reason: str) -> UnitBatch:
    """The batch of a delivery that could not be fetched: every date failed, nothing staged."""
    return UnitBatch(table=table, market=market_id or GLOBAL, dates=dates,
                     good=pd.DataFrame(), good_dates=[], counts={},
                     errors={d: [reason] for d in dates})
