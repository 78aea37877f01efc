"""The history start is one setting (configs/markets.yaml ``history_start``, per market with a
default, or PROMETHEUS_HISTORY_START): partitions start on it, calendars reach before it for
look-backs, and a date before it is an error naming the setting."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from prometheus_dagster.core.calendars import (
    GLOBAL,
    history_start,
    load_markets,
    trading_calendar,
)
from prometheus_dagster.core.config import validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.partitions import global_partitions_def, market_partitions_def
from tests.history_start import history_start_env

NOW = dt.datetime(2025, 1, 1)


def first_key(pdef) -> str:
    return pdef.get_first_partition_key()


def test_shipped_default_applies_to_every_market():
    default = load_markets().history_start
    assert default == dt.date(2005, 1, 3)
    assert {history_start(m) for m in load_markets().markets} == {default}
    assert first_key(market_partitions_def("US_EQ")) == "2005-01-03"


def test_us_history_reaches_1990_with_partitions_and_calendar(monkeypatch):
    with history_start_env(monkeypatch, "US_EQ=1990-01-02"):
        assert history_start("US_EQ") == dt.date(1990, 1, 2)
        assert history_start("EU_EQ") == dt.date(2005, 1, 3)
        assert history_start(GLOBAL) == dt.date(1990, 1, 2)
        assert first_key(market_partitions_def("US_EQ")) == "1990-01-02"
        assert first_key(market_partitions_def("EU_EQ")) == "2005-01-03"
        assert first_key(global_partitions_def()) == "1990-01-02"
        cal = trading_calendar("US_EQ")
        assert len(cal.sessions("1990-01-01", "1990-12-31")) == 253
        # the calendar reaches two years back: look-backs from the first partition work
        assert cal.first_session == pd.Timestamp("1988-01-04")
        assert cal.lookback_start("1990-01-02", 21) == pd.Timestamp("1989-11-30")
        assert cal.lookback_start("1990-01-02", 5000) == cal.first_session
        keys = market_partitions_def("US_EQ").get_partition_keys(current_time=NOW)
        assert "1990-01-01" not in keys and "1990-01-03" in keys


def test_default_and_per_market_values_combine(monkeypatch):
    with history_start_env(monkeypatch, "1999-01-04, EU_EQ=2001-01-02"):
        assert history_start("US_EQ") == dt.date(1999, 1, 4)
        assert history_start("EU_EQ") == dt.date(2001, 1, 2)
        assert first_key(market_partitions_def("FX_GLOB")) == "1999-01-04"


def test_a_date_before_the_calendar_names_the_setting():
    cal = trading_calendar("US_EQ")
    with pytest.raises(ValueError, match=r"1999-01-04 is outside .*history starts on "
                                         r"2005-01-03.*history_start in configs/markets.yaml "
                                         r"\(or the environment variable "
                                         r"PROMETHEUS_HISTORY_START\)"):
        cal.previous_trading_day("1999-01-04")


@pytest.mark.parametrize("value, message", [
    ("1990-13-45", "is not a date"),
    ("MOON_EQ=1990-01-02", "unknown market 'MOON_EQ'"),
    ("JP_EQ=1990-01-04", "before 1997-01-01, the first day its calendar \\(XTKS\\) knows"),
])
def test_a_bad_override_is_a_config_error(monkeypatch, value, message):
    with history_start_env(monkeypatch, value), pytest.raises(ConfigError, match=message):
        trading_calendar("JP_EQ")


def test_the_former_name_partitions_start_still_loads():
    body = {"engine": "markets", "version": "1", "partitions_start": "2010-01-04",
            "markets": {}}
    assert validate_config(body).config.history_start == dt.date(2010, 1, 4)  # type: ignore
