import pandas as pd
import pytest

from prometheus_dagster.core.calendars import MarketState, TradingCalendar, market_state
from prometheus_dagster.core.errors import ConfigError

UTC = "UTC"


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz=UTC)


def test_independence_day_is_not_a_us_session():
    assert not TradingCalendar("US_EQ").is_trading_day("2024-07-04")
    assert TradingCalendar("US_EQ").is_trading_day("2024-07-05")


def test_day_after_thanksgiving_closes_early_at_18_utc():
    cal = TradingCalendar("US_EQ")
    assert cal.session_close("2024-11-29") == utc("2024-11-29 18:00")
    assert cal.is_early_close("2024-11-29")
    assert not cal.is_early_close("2024-11-27")


def test_good_friday_closed_in_us_and_europe():
    for market in ("US_EQ", "EU_EQ"):
        assert not TradingCalendar(market).is_trading_day("2024-03-29"), market


def test_constitution_day_closed_in_japan():
    assert not TradingCalendar("JP_EQ").is_trading_day("2024-05-03")


def test_us_close_follows_daylight_saving():
    cal = TradingCalendar("US_EQ")
    assert cal.session_close("2024-01-10") == utc("2024-01-10 21:00")
    assert cal.session_close("2024-07-10") == utc("2024-07-10 20:00")
    assert cal.session_open("2024-01-10") == utc("2024-01-10 14:30")
    assert cal.session_open("2024-07-10") == utc("2024-07-10 13:30")


def test_session_counts_per_market_2024():
    expected = {"US_EQ": 252, "EU_EQ": 254, "JP_EQ": 245, "ASIA_EQ": 246, "FX_GLOB": 262,
                "US_FUT": 259}
    for market, n in expected.items():
        assert TradingCalendar(market).trading_days_between("2024-01-01", "2024-12-31") == n


def test_previous_and_next_trading_day_skip_holidays_and_weekends():
    cal = TradingCalendar("US_EQ")
    assert cal.previous_trading_day("2024-07-05") == pd.Timestamp("2024-07-03")
    assert cal.next_trading_day("2024-07-03") == pd.Timestamp("2024-07-05")
    assert cal.next_trading_day("2024-07-06") == pd.Timestamp("2024-07-08")
    assert cal.previous_trading_day("2024-07-08", n=3) == pd.Timestamp("2024-07-02")


def test_holidays_of_a_year():
    hol = TradingCalendar("US_EQ").holidays(2024)
    assert pd.Timestamp("2024-07-04").date() in hol
    assert pd.Timestamp("2024-12-25").date() in hol
    assert len(hol) == 262 - 252


def test_sessions_frame_has_utc_times_and_early_close_flag():
    frame = TradingCalendar("US_EQ").sessions_frame("2024-11-27", "2024-11-29")
    assert list(frame["date"].dt.strftime("%Y-%m-%d")) == ["2024-11-27", "2024-11-29"]
    assert list(frame["early_close"]) == [False, True]
    assert frame["close_utc"].iloc[1] == pd.Timestamp("2024-11-29 18:00")


@pytest.mark.parametrize(
    ("instant", "state"),
    [
        ("2024-07-10 11:59", MarketState.OVERNIGHT),   # before the 90 min pre-open window
        ("2024-07-10 12:00", MarketState.PRE_OPEN),
        ("2024-07-10 13:29", MarketState.PRE_OPEN),
        ("2024-07-10 13:30", MarketState.SESSION),     # 09:30 New York
        ("2024-07-10 19:59", MarketState.SESSION),
        ("2024-07-10 20:00", MarketState.POST_CLOSE),  # 16:00 New York
        ("2024-07-10 20:59", MarketState.POST_CLOSE),
        ("2024-07-10 21:00", MarketState.OVERNIGHT),
        ("2024-07-04 15:00", MarketState.HOLIDAY),
        ("2024-07-06 15:00", MarketState.HOLIDAY),     # Saturday
        ("2024-11-29 18:30", MarketState.POST_CLOSE),  # early close at 18:00 UTC
        ("2024-01-10 20:30", MarketState.SESSION),     # winter: close 21:00 UTC
        ("2024-01-10 21:30", MarketState.POST_CLOSE),
    ],
)
def test_us_market_state_transitions(instant, state):
    assert market_state("US_EQ", instant) == state


def test_tokyo_state_uses_local_date():
    # 2024-07-10 06:00 UTC is 15:00 in Tokyo (close 15:00 local until Nov 2024 -> POST_CLOSE)
    assert market_state("JP_EQ", "2024-07-10 06:10") == MarketState.POST_CLOSE
    assert market_state("JP_EQ", "2024-07-10 01:00") == MarketState.SESSION


def test_session_for_state_names_the_session():
    cal = TradingCalendar("US_EQ")
    assert cal.session_for_state("2024-07-10 20:30", MarketState.POST_CLOSE) == pd.Timestamp(
        "2024-07-10"
    )
    assert cal.session_for_state("2024-07-04 20:30", MarketState.POST_CLOSE) is None


def test_unknown_market_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown market_id 'MARS_EQ'"):
        TradingCalendar("MARS_EQ")


def test_a_calendar_kept_on_disk_equals_a_built_one(tmp_path, monkeypatch):
    import exchange_calendars as xcals

    from prometheus_dagster.core import calendars

    monkeypatch.setenv("PROMETHEUS_HOME", str(tmp_path))
    calendars._exchange_calendar.cache_clear()
    try:
        start = calendars.calendar_start("ASIA_EQ")
        built = calendars._exchange_calendar("XHKG", start)  # built, then stored
        assert len(list((tmp_path / "cache" / "calendars").glob("XHKG-*.pkl"))) == 1
        calendars._exchange_calendar.cache_clear()
        loaded = calendars._exchange_calendar("XHKG", start)  # a new process: from the file
    finally:
        calendars._exchange_calendar.cache_clear()
    assert loaded is not built and isinstance(loaded, xcals.ExchangeCalendar)
    pd.testing.assert_index_equal(loaded.sessions, built.sessions)
    pd.testing.assert_frame_equal(loaded.schedule, built.schedule)
    day = pd.Timestamp("2024-02-09")  # lunar new year's eve: a half day
    assert loaded.session_close(day) == built.session_close(day)
