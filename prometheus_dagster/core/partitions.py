"""Dagster partitions that follow trading calendars.

Each market's partitions are exactly its trading sessions from its ``history_start`` (weekends and
holidays are excluded; configs/markets.yaml). GLOBAL assets use business-day partitions from the
earliest market's start. All definitions share the UTC
timezone so that a partition key (the session date) means the same day everywhere and market
partitions map onto GLOBAL ones by date.
"""

from __future__ import annotations

import datetime as dt
import functools

import pandas as pd
from dagster import (
    DailyPartitionsDefinition,
    PartitionMapping,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from prometheus_dagster.core.calendars import CALENDAR_END, GLOBAL, history_start, trading_calendar

PARTITION_FMT = "%Y-%m-%d"
_WEEKEND_CRONS = ["0 0 * * 6", "0 0 * * 0"]


@functools.cache
def market_partitions_def(
    market_id: str, start: dt.date | None = None
) -> DailyPartitionsDefinition:
    """Daily partitions whose keys are exactly ``market_id``'s trading sessions."""
    start = start or history_start(market_id)
    cal = trading_calendar(market_id)
    holidays = cal.non_session_weekdays(start, CALENDAR_END)
    exclusions = [*_WEEKEND_CRONS, *(d.to_pydatetime() for d in holidays)]
    return DailyPartitionsDefinition(
        start_date=start.strftime(PARTITION_FMT),
        timezone="UTC",
        fmt=PARTITION_FMT,
        exclusions=exclusions,
    )


@functools.cache
def global_partitions_def(start: dt.date | None = None) -> DailyPartitionsDefinition:
    """GLOBAL business-day partitions (Monday to Friday)."""
    start = start or history_start(GLOBAL)
    return DailyPartitionsDefinition(
        start_date=start.strftime(PARTITION_FMT), timezone="UTC", fmt=PARTITION_FMT,
        exclusions=list(_WEEKEND_CRONS),
    )


def partitions_def_for(market_id: str) -> DailyPartitionsDefinition:
    return global_partitions_def() if market_id == GLOBAL else market_partitions_def(market_id)


REFIT_CRONS = {"yearly": "0 0 1 1 *", "quarterly": "0 0 1 */3 *", "monthly": "0 0 1 * *"}


@functools.cache
def refit_partitions_def(cadence: str, first_year: int) -> TimeWindowPartitionsDefinition:
    """Model refits: partition ``P`` (the first day of a year, quarter or month) is the model
    used for dates in that period, trained on data dated before ``P``. The current period's
    partition exists from its first day."""
    if cadence not in REFIT_CRONS:
        raise ValueError(f"unknown refit cadence {cadence!r}; use one of {', '.join(REFIT_CRONS)}")
    return TimeWindowPartitionsDefinition(
        cron_schedule=REFIT_CRONS[cadence], start=f"{first_year}-01-01", fmt=PARTITION_FMT,
        timezone="UTC", end_offset=1)


def yearly_refit_partitions_def(first_year: int) -> TimeWindowPartitionsDefinition:
    """Yearly refits: partition ``Y-01-01`` is trained on data dated before 1 January Y."""
    return refit_partitions_def("yearly", first_year)


def model_for_date_mapping() -> PartitionMapping:
    """Daily partition D -> the yearly refit partition of D's year (the model trained before
    that year began)."""
    return TimeWindowPartitionMapping()


def same_day_mapping() -> PartitionMapping:
    """Market partition D <-> GLOBAL partition D (a market holiday maps to nothing)."""
    return TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)


def lookback_mapping(sessions: int) -> PartitionMapping:
    """Depend on the ``sessions`` partitions before D as well as D itself (counted in trading
    partitions of the upstream definition)."""
    return TimeWindowPartitionMapping(start_offset=-sessions)


def partition_dates(keys: list[str]) -> list[pd.Timestamp]:
    return [pd.Timestamp(k) for k in keys]
