"""GLOBAL after the regions: request ``GLOBAL_daily`` for business day D once every data market
that had a session on D has a successful daily run for D (a market closed on D is not waited
for). Follow-the-sun means the US is usually the last region to finish."""

import json
from collections.abc import Callable, Iterable

import pandas as pd
from dagster import (
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from prometheus_dagster.core.calendars import GLOBAL, trading_calendar
from prometheus_dagster.jobs.daily import MARKET_TAG, daily_job_name, tier_tags

LOOKBACK_DAYS = 5


def markets_trading(day: pd.Timestamp, markets: Iterable[str]) -> list[str]:
    return [m for m in markets if trading_calendar(m).is_trading_day(day)]


def global_days_due(now: pd.Timestamp, markets: list[str], done: Callable[[str, str], bool],
                    last_requested: str = "") -> list[str]:
    """GLOBAL partitions (business days up to ``now``'s date, after ``last_requested``, within
    ``LOOKBACK_DAYS``) whose trading regions have all finished (``done(market, day)``)."""
    today = pd.Timestamp(now).tz_localize(None).normalize() if pd.Timestamp(now).tzinfo \
        else pd.Timestamp(now).normalize()
    due = []
    for day in pd.bdate_range(today - pd.Timedelta(days=LOOKBACK_DAYS), today):
        key = day.strftime("%Y-%m-%d")
        if key <= last_requested:
            continue
        regions = markets_trading(day, markets)  # none trading: GLOBAL runs on macro data alone
        if all(done(m, key) for m in regions):
            due.append(key)
        else:
            break  # keep GLOBAL days in order: a later day waits for an earlier one
    return due


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def global_after_regional_sensor(markets: list[str], global_job,
                                 name: str = "global_after_regional",
                                 clock: Callable[[], pd.Timestamp] = _utc_now):
    """The sensor over ``markets``' daily jobs; ``clock`` gives the current instant (UTC)."""
    @sensor(name=name, minimum_interval_seconds=120, job=global_job,
            description="Runs GLOBAL_daily for a day once every region trading that day has "
                        "finished its daily job.")
    def _sensor(context: SensorEvaluationContext) -> SensorResult:
        def done(market: str, key: str) -> bool:
            records = context.instance.get_run_records(
                RunsFilter(job_name=daily_job_name(market), statuses=[DagsterRunStatus.SUCCESS],
                           tags={"dagster/partition": key}), limit=1)
            return bool(records)

        cursor = json.loads(context.cursor) if context.cursor else {}
        due = global_days_due(clock(), markets, done, cursor.get("last", ""))
        requests = [RunRequest(run_key=f"{GLOBAL}:{key}", partition_key=key,
                               tags={**tier_tags("1"), MARKET_TAG: GLOBAL}) for key in due]
        if due:
            cursor["last"] = due[-1]
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return _sensor
