"""Dagster freshness checks of each market's daily partitions: a session's ingested tables must
be materialized by ``deadlines.ingestion`` minutes after its close, every other asset of the
daily job by ``deadlines.daily_chain`` (configs/engines/qc.yaml). The checks show stale assets
in the UI (asset page, "Checks"); the ``freshness_checks`` sensor evaluates them, and the
``slo_monitor`` sensor sends the alerts for the same deadlines.

Partition checks, not ``FreshnessPolicy``: Dagster's newer policies judge an asset by its last
materialization of any partition, so a backfill of 2005 would make today's missing session look
fresh; the time-partition checks ask for the session itself. Dagster marks them superseded; the
warning is silenced here for that reason.

The partitions are UTC days, so a session's partition counts as complete at the end of its UTC
day: the check asks for session D at the first deadline after that (for markets east of UTC,
the deadline of the next session). The ``slo_monitor`` alerts use each session's own close."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

from dagster import (
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    SensorDefinition,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

from prometheus_dagster.core.calendars import GLOBAL, trading_calendar
from prometheus_dagster.core.partitions import partitions_def_for
from prometheus_dagster.engines.qc.config import QcConfig
from prometheus_dagster.steps.ingestion import MARKET_TABLES
from prometheus_dagster.steps.qc import qc_config


def deadline_cron(market_id: str, minutes_after_close: int) -> tuple[str, str]:
    """(cron, timezone) of a market's deadline: its regular close plus ``minutes_after_close``,
    on weekdays, in the exchange's timezone. A deadline past midnight falls on the next day."""
    close, tz = trading_calendar(market_id).regular_close()
    at = dt.datetime.combine(dt.date(2000, 1, 3), close) + dt.timedelta(
        minutes=minutes_after_close)
    days = "1-5" if at.day == 3 else "2-6"
    return f"{at.minute} {at.hour} * * {days}", tz


def _daily_keys(assets: Sequence[AssetsDefinition], market_id: str) -> list[AssetKey]:
    """The keys of the market's daily job: partitioned by its sessions (pre-open checks and
    model refits excepted)."""
    return [k for a in assets if a.partitions_def == partitions_def_for(market_id)
            and "qc" not in a.group_names_by_key.values()
            for k in a.keys if k.path[0] == market_id]


def freshness_checks(assets: Sequence[AssetsDefinition], markets: Sequence[str],
                     cfg: QcConfig | None = None) -> list[AssetChecksDefinition]:
    """Per market (GLOBAL has no close: its macro series are checked by the markets' pre-open
    QC): one freshness check for its ingested tables, one for the rest of its daily job."""
    deadlines = (cfg or qc_config().typed(QcConfig)).freshness.deadlines
    out: list[AssetChecksDefinition] = []
    for market in markets:
        if market == GLOBAL:
            continue
        keys = _daily_keys(assets, market)
        ingested = [k for k in keys if k.path[-1] in MARKET_TABLES]
        chain = [k for k in keys if k not in ingested]
        for group, minutes in ((ingested, deadlines.ingestion), (chain, deadlines.daily_chain)):
            if group:
                cron, tz = deadline_cron(market, minutes)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # superseded: see the module docstring
                    out += build_time_partition_freshness_checks(
                        assets=group, deadline_cron=cron, timezone=tz,
                        severity=AssetCheckSeverity.WARN)
    return out


def freshness_sensor(checks: Sequence[AssetChecksDefinition]) -> SensorDefinition:
    """Evaluates the checks as their deadlines pass."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # superseded: see the module docstring
        return build_sensor_for_freshness_checks(freshness_checks=checks,
                                                 minimum_interval_seconds=300,
                                                 name="freshness_checks")
