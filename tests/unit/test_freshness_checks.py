"""Dagster freshness checks of a market's daily partitions: deadlines from the close and the qc
config, evaluated against what was materialized (time frozen)."""

import datetime as dt

import pytest
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    asset,
    define_asset_job,
    materialize,
)
from dagster._core.test_utils import freeze_time

from prometheus_dagster.assets.freshness import deadline_cron, freshness_checks
from prometheus_dagster.core.partitions import market_partitions_def


def test_deadline_is_close_plus_minutes_in_the_exchange_timezone():
    assert deadline_cron("US_EQ", 180) == ("0 19 * * 1-5", "America/New_York")
    assert deadline_cron("EU_EQ", 240) == ("30 21 * * 1-5", "Europe/Berlin")
    # past midnight: the next weekday
    assert deadline_cron("US_EQ", 8 * 60 + 30) == ("30 0 * * 2-6", "America/New_York")


@pytest.fixture(scope="module")
def market():
    sessions = market_partitions_def("US_EQ")

    @asset(key=AssetKey(["US_EQ", "prices_daily"]), partitions_def=sessions)
    def prices():
        return 1

    @asset(key=AssetKey(["US_EQ", "returns_daily"]), partitions_def=sessions)
    def returns():
        return 1

    checks = freshness_checks([prices, returns], ["US_EQ", "GLOBAL"])
    job = define_asset_job("freshness", selection=AssetSelection.checks(*checks))
    defs = Definitions(assets=[prices, returns], asset_checks=checks, jobs=[job])
    instance = DagsterInstance.ephemeral()
    assert materialize([prices], partition_key="2024-03-13", instance=instance).success
    return defs, instance, checks


def evaluate(defs, instance, now: str) -> dict[str, bool]:
    with freeze_time(dt.datetime.fromisoformat(now)):
        result = defs.resolve_job_def("freshness").execute_in_process(instance=instance)
    return {e.event_specific_data.asset_key.to_user_string(): e.event_specific_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_ingested_tables_and_the_chain_are_checked_on_their_own_deadlines(market):
    _, _, checks = market
    keys = sorted(k.asset_key.to_user_string() for c in checks for k in c.check_keys)
    assert keys == ["US_EQ/prices_daily", "US_EQ/returns_daily"]
    assert len(checks) == 2  # one per deadline; GLOBAL has no close and no check


def test_a_session_materialized_by_its_deadline_is_fresh_and_stale_after_the_next(market):
    defs, instance, _ = market
    # Thu 2024-03-14 19:00 New York has passed: 2024-03-13's partition is expected and there
    got = evaluate(defs, instance, "2024-03-15T00:30:00+00:00")
    assert got == {"US_EQ/prices_daily": True, "US_EQ/returns_daily": False}
    # a day later 2024-03-14 is expected and never came
    got = evaluate(defs, instance, "2024-03-16T00:30:00+00:00")
    assert got == {"US_EQ/prices_daily": False, "US_EQ/returns_daily": False}
