import datetime as dt

import pytest

from prometheus_dagster.core.calendars import TradingCalendar
from prometheus_dagster.core.partitions import (
    global_partitions_def,
    lookback_mapping,
    market_partitions_def,
    same_day_mapping,
)

NOW = dt.datetime(2025, 1, 1)


def keys_in_2024(pdef) -> list[str]:
    return [k for k in pdef.get_partition_keys(current_time=NOW) if k.startswith("2024")]


@pytest.mark.parametrize("market", ["US_EQ", "EU_EQ", "JP_EQ", "ASIA_EQ", "FX_GLOB", "US_FUT"])
def test_partition_keys_equal_sessions(market):
    sessions = TradingCalendar(market).sessions("2024-01-01", "2024-12-31")
    assert keys_in_2024(market_partitions_def(market)) == [d.strftime("%Y-%m-%d") for d in sessions]


def test_us_2024_has_252_partitions_without_holidays():
    keys = keys_in_2024(market_partitions_def("US_EQ"))
    assert len(keys) == 252
    assert "2024-07-04" not in keys and "2024-03-29" not in keys and "2024-07-06" not in keys


def test_global_partitions_are_business_days():
    keys = keys_in_2024(global_partitions_def())
    assert len(keys) == 262
    assert "2024-07-04" in keys and "2024-07-06" not in keys


def test_market_partitions_map_to_global_by_date():
    us, glob = market_partitions_def("US_EQ"), global_partitions_def()
    mapping = same_day_mapping()
    for key in ("2024-07-03", "2024-07-05"):
        down = mapping.get_downstream_partitions_for_partitions(
            us.subset_with_partition_keys([key]), us, glob, current_time=NOW
        )
        assert list(down.get_partition_keys()) == [key]
    up = mapping.get_upstream_mapped_partitions_result_for_partitions(
        glob.subset_with_partition_keys(["2024-07-04"]), glob, us, current_time=NOW
    )
    assert list(up.partitions_subset.get_partition_keys()) == []


def test_lookback_mapping_counts_trading_sessions():
    us = market_partitions_def("US_EQ")
    up = lookback_mapping(2).get_upstream_mapped_partitions_result_for_partitions(
        us.subset_with_partition_keys(["2024-07-05"]), us, us, current_time=NOW
    )
    assert sorted(up.partitions_subset.get_partition_keys()) == [
        "2024-07-02", "2024-07-03", "2024-07-05"
    ]
