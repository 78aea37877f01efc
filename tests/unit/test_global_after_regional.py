"""GLOBAL waits for every region that traded that day, and only those."""

import pandas as pd
from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context
from dagster._core.test_utils import create_run_for_test

from prometheus_dagster.sensors.global_after_regional import (
    global_after_regional_sensor,
    global_days_due,
)

MARKETS = ["EU_EQ", "FX_GLOB", "US_EQ"]


def test_waits_for_the_last_region():
    done = {("EU_EQ", "2024-07-10"), ("FX_GLOB", "2024-07-10")}
    now = pd.Timestamp("2024-07-10 23:00", tz="UTC")
    assert global_days_due(now, MARKETS, lambda m, d: (m, d) in done, "2024-07-09") == []
    done.add(("US_EQ", "2024-07-10"))
    assert global_days_due(now, MARKETS, lambda m, d: (m, d) in done,
                           "2024-07-09") == ["2024-07-10"]


def test_a_region_on_holiday_is_not_waited_for():
    # 4 July 2024: US_EQ closed, EU_EQ and FX open
    done = {("EU_EQ", "2024-07-04"), ("FX_GLOB", "2024-07-04")}
    now = pd.Timestamp("2024-07-04 23:00", tz="UTC")
    assert global_days_due(now, MARKETS, lambda m, d: (m, d) in done,
                           "2024-07-03") == ["2024-07-04"]


def test_days_stay_in_order():
    done = {(m, "2024-07-11") for m in MARKETS}  # 10 July unfinished
    now = pd.Timestamp("2024-07-11 23:00", tz="UTC")
    assert global_days_due(now, MARKETS, lambda m, d: (m, d) in done, "2024-07-09") == []


def test_sensor_reads_successful_regional_runs_from_the_instance():
    from prometheus_dagster.definitions import build_definitions

    defs = build_definitions()
    job = defs.resolve_job_def("GLOBAL_daily")
    instance = DagsterInstance.ephemeral()
    clock = lambda: pd.Timestamp("2024-07-10 23:00", tz="UTC")  # noqa: E731
    sensor = global_after_regional_sensor(MARKETS, job, clock=clock)
    cursor = '{"last": "2024-07-09"}'
    for m in ("EU_EQ", "FX_GLOB"):
        create_run_for_test(instance, job_name=f"{m}_daily", status=DagsterRunStatus.SUCCESS,
                            tags={"dagster/partition": "2024-07-10"})
    create_run_for_test(instance, job_name="US_EQ_daily", status=DagsterRunStatus.FAILURE,
                        tags={"dagster/partition": "2024-07-10"})
    result = sensor(build_sensor_context(instance=instance, cursor=cursor))
    assert result.run_requests == []
    create_run_for_test(instance, job_name="US_EQ_daily", status=DagsterRunStatus.SUCCESS,
                        tags={"dagster/partition": "2024-07-10"})
    result = sensor(build_sensor_context(instance=instance, cursor=cursor))
    (request,) = result.run_requests
    assert request.partition_key == "2024-07-10"
    assert request.tags["prometheus/tier"] == "1"
