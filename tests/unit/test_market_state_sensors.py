import json

import pandas as pd
from dagster import Definitions
from dagster import build_sensor_context as build_context

from prometheus_dagster.core.calendars import MarketState
from prometheus_dagster.definitions import build_assets
from prometheus_dagster.jobs.daily import jobs_for
from prometheus_dagster.resources import build_resources
from prometheus_dagster.sensors.market_state import due_runs, market_state_sensor

POST = MarketState.POST_CLOSE


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_post_close_of_a_us_trading_day_requests_that_partition():
    (due,) = due_runs(ts("2024-07-10 20:30"), ["US_EQ"], {}, POST)
    assert (due.market_id, due.partition_key, due.job_name) == ("US_EQ", "2024-07-10",
                                                                 "US_EQ_daily")


def test_holiday_gives_no_request():
    assert due_runs(ts("2024-07-04 20:30"), ["US_EQ"], {}, POST) == []
    assert due_runs(ts("2024-07-06 20:30"), ["US_EQ"], {}, POST) == []


def test_no_request_outside_post_close_or_when_already_requested():
    assert due_runs(ts("2024-07-10 19:30"), ["US_EQ"], {}, POST) == []
    assert due_runs(ts("2024-07-10 20:30"), ["US_EQ"], {"US_EQ": "2024-07-10"}, POST) == []


def test_pre_open_requests_the_session_about_to_open():
    (due,) = due_runs(ts("2024-07-11 12:30"), ["US_EQ"], {}, MarketState.PRE_OPEN,
                      job_name_for=lambda m: f"{m}_pre_open")
    assert due.partition_key == "2024-07-11" and due.job_name == "US_EQ_pre_open"


def test_pre_open_qc_checks_the_previous_session():
    # US_EQ pre-open on Friday 2024-07-05: the session before is 2024-07-03 (4 July is a holiday)
    (due,) = due_runs(ts("2024-07-05 12:45"), ["US_EQ"], {}, MarketState.PRE_OPEN,
                      job_name_for=lambda m: f"{m}_preopen_qc", previous_session=True)
    assert due.partition_key == "2024-07-03" and due.job_name == "US_EQ_preopen_qc"
    assert due_runs(ts("2024-07-05 12:50"), ["US_EQ"], {"US_EQ": "2024-07-03"},
                    MarketState.PRE_OPEN, previous_session=True) == []
    # the holiday itself has no pre-open, so no request
    assert due_runs(ts("2024-07-04 12:45"), ["US_EQ"], {}, MarketState.PRE_OPEN,
                    previous_session=True) == []


def _ticks(day: str, minutes: int = 5) -> list[pd.Timestamp]:
    return list(pd.date_range(ts(f"{day} 00:00"), ts(f"{day} 23:59"), freq=f"{minutes}min"))


def test_ticks_over_a_day_give_exactly_one_request_per_market_in_follow_the_sun_order():
    markets = ["US_EQ", "EU_EQ", "JP_EQ"]
    cursor: dict[str, str] = {}
    emitted = []
    for now in _ticks("2024-07-10"):
        for due in due_runs(now, markets, cursor, POST):
            cursor[due.market_id] = due.partition_key
            emitted.append((now, due.market_id, due.partition_key))
    assert [m for _, m, _ in emitted] == ["JP_EQ", "EU_EQ", "US_EQ"]
    assert all(key == "2024-07-10" for _, _, key in emitted)


def test_sensor_emits_one_tagged_run_request_and_advances_its_cursor():
    assets = build_assets()
    jobs = jobs_for(assets)
    daily = {j.name.removesuffix("_daily"): j for j in jobs if j.name in ("US_EQ_daily",
                                                                         "EU_EQ_daily")}
    clock = {"now": ts("2024-07-10 15:45")}  # Xetra closed at 15:30 UTC, New York still open
    sensor = market_state_sensor(daily, POST, "post_close", clock=lambda: clock["now"])
    repo = Definitions(assets=assets, jobs=jobs, sensors=[sensor],
                       resources=build_resources()).get_repository_def()

    def build_sensor_context(cursor=None):
        return build_context(repository_def=repo, cursor=cursor)

    result = sensor.evaluate_tick(build_sensor_context())
    (request,) = result.run_requests
    assert request.job_name == "EU_EQ_daily" and request.partition_key == "2024-07-10"
    assert request.tags["prometheus/tier"] == "1"
    cursor = result.cursor
    assert json.loads(cursor) == {"EU_EQ": "2024-07-10"}
    again = sensor.evaluate_tick(build_sensor_context(cursor=cursor))
    assert again.run_requests == []
    clock["now"] = ts("2024-07-10 20:05")
    later = sensor.evaluate_tick(build_sensor_context(cursor=cursor))
    assert [r.job_name for r in later.run_requests] == ["US_EQ_daily"]
