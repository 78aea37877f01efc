"""Trading calendars and market states, on exchange_calendars.

``TradingCalendar(market_id)`` answers session questions for a logical market in UTC;
``market_state(market_id, ts)`` says which state (HOLIDAY, PRE_OPEN, SESSION, POST_CLOSE,
OVERNIGHT) a market is in at an instant.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import exchange_calendars as xcals
import pandas as pd
from pydantic import Field, model_validator

from prometheus_dagster.core.config import (
    StrictModel,
    VersionedConfig,
    read_yaml,
    register_config_model,
    validate_config,
)
from prometheus_dagster.core.disk_cache import cache_dir, load_pickle, store_pickle
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.paths import CONFIG_DIR

CALENDAR_END = pd.Timestamp("2030-12-31")
# A calendar reaches this far before its market's history start, so that look-backs from the
# first partitions (previous closes, feature warm-ups) stay inside it; they find no data there.
CALENDAR_LOOKBACK = pd.DateOffset(years=2)
GLOBAL = "GLOBAL"
# Overrides history_start without editing configs/markets.yaml: "1990-01-02" (the default of
# every market) or "US_EQ=1990-01-02,EU_EQ=1999-01-04" (per market), or both, comma-separated.
HISTORY_START_ENV = "PROMETHEUS_HISTORY_START"
HISTORY_START_SETTING = (f"history_start in configs/markets.yaml (or the environment variable "
                         f"{HISTORY_START_ENV})")


# What a market runs, each level including the ones before it: its calendar only; ingestion and
# the data engines (features, stability, scenarios, fragility measures); its own regimes; the
# investment chain (encoders, profiles, risk, assessment, universes, portfolios, execution).
RUN_LEVELS = ("calendar", "data", "regimes", "investment")


class MarketSpec(StrictModel):
    name: str
    region: str
    timezone: str
    calendar_code: str
    currency: str
    pre_open_minutes: int = Field(90, ge=0, le=24 * 60)
    post_close_minutes: int = Field(60, ge=0, le=24 * 60)
    runs: Literal["calendar", "data", "regimes", "investment"] = "calendar"
    history_start: dt.date | None = Field(None, description="first date of this market's "
                                          "partitions (default: the top-level history_start)")
    global_member: bool = Field(False, description="a member of the GLOBAL region (its "
                                                   "regimes, stability and brief)")

    def runs_at_least(self, level: str) -> bool:
        return RUN_LEVELS.index(self.runs) >= RUN_LEVELS.index(level)


@register_config_model("markets")
class MarketsConfig(VersionedConfig):
    history_start: dt.date
    markets: dict[str, MarketSpec]

    @model_validator(mode="before")
    @classmethod
    def _partitions_start_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "partitions_start" in data:
            if "history_start" in data:
                raise ValueError("'partitions_start' is now 'history_start': keep only that")
            data = {("history_start" if k == "partitions_start" else k): v
                    for k, v in data.items()}
        return data

    @property
    def partitions_start(self) -> dt.date:
        """The default history start (the former name of ``history_start``)."""
        return self.history_start

    def start_of(self, market_id: str) -> dt.date:
        """The first date of ``market_id``'s partitions; GLOBAL starts with its earliest
        market."""
        if market_id == GLOBAL:
            return min([self.history_start, *(self.start_of(m) for m in self.markets)])
        spec = self.markets.get(market_id)
        return spec.history_start if spec and spec.history_start else self.history_start

    @model_validator(mode="after")
    def _members_run_data(self) -> MarketsConfig:
        lazy = [m for m, s in self.markets.items() if s.global_member and s.runs == "calendar"]
        if lazy:
            raise ValueError(f"global_member market(s) {lazy} must run at least 'data'")
        return self


def apply_history_start_override(body: dict[str, Any], value: str | None) -> dict[str, Any]:
    """``body`` (configs/markets.yaml) with the history starts of ``value`` (see
    :data:`HISTORY_START_ENV`); a malformed value is a :class:`ConfigError`."""
    if not value or not value.strip():
        return body
    body = {**body, "markets": {m: dict(s) for m, s in (body.get("markets") or {}).items()}}
    for part in (p.strip() for p in value.split(",") if p.strip()):
        market, _, date = part.rpartition("=")
        try:
            day = pd.Timestamp(date.strip()).date().isoformat()
        except ValueError:
            raise ConfigError(f"{HISTORY_START_ENV}={value!r}: {date!r} is not a date "
                              "(use YYYY-MM-DD or MARKET=YYYY-MM-DD, comma-separated)") from None
        if not market:
            body["history_start"] = day
            body.pop("partitions_start", None)
        elif market.strip() in body["markets"]:
            body["markets"][market.strip()]["history_start"] = day
        else:
            raise ConfigError(f"{HISTORY_START_ENV}={value!r}: unknown market {market!r}; "
                              f"configured markets: {', '.join(body['markets'])}")
    return body


@functools.cache
def load_markets(path: str | None = None) -> MarketsConfig:
    """configs/markets.yaml (or ``path``), with :data:`HISTORY_START_ENV` applied."""
    source = Path(path) if path else CONFIG_DIR / "markets.yaml"
    body = apply_history_start_override(read_yaml(source), os.environ.get(HISTORY_START_ENV))
    return validate_config(body, MarketsConfig, str(source)).typed(MarketsConfig)


def history_start(market_id: str) -> dt.date:
    """The first date of ``market_id``'s daily partitions (GLOBAL: of its earliest market)."""
    if market_id != GLOBAL:
        market_spec(market_id)  # an unknown market is a ConfigError naming the markets
    return load_markets().start_of(market_id)


def market_ids() -> list[str]:
    return list(load_markets().markets)


def markets_running(level: str) -> list[str]:
    """Markets whose ``runs`` is ``level`` or more (in the order of configs/markets.yaml):
    ``data`` (ingested), ``regimes``, ``investment``."""
    if level not in RUN_LEVELS:
        raise ConfigError(f"unknown run level {level!r}; use one of {', '.join(RUN_LEVELS)}")
    return [m for m, s in load_markets().markets.items() if s.runs_at_least(level)]


def global_members() -> list[str]:
    """The markets of the GLOBAL region (``global_member: true`` in configs/markets.yaml)."""
    return [m for m, s in load_markets().markets.items() if s.global_member]


def follow_the_sun(markets: list[str] | None = None) -> tuple[str, ...]:
    """``markets`` (default: all) ordered by their session close in UTC, GLOBAL last: Asia
    closes first, then Europe, then the Americas. The order of the daily jobs."""
    ref = pd.Timestamp("2024-06-03")  # a Monday every calendar trades
    closes = {}
    for m in markets if markets is not None else market_ids():
        cal = trading_calendar(m)
        day = ref if cal.is_trading_day(ref) else cal.next_trading_day(ref)
        close = cal.session_close(day)
        closes[m] = (close - pd.Timestamp(day).tz_localize("UTC")).total_seconds()
    return (*sorted(closes, key=lambda m: (closes[m], m)), GLOBAL)


def market_spec(market_id: str) -> MarketSpec:
    markets = load_markets().markets
    if market_id not in markets:
        raise ConfigError(
            f"unknown market_id {market_id!r}; configured markets: {', '.join(markets)}"
        )
    return markets[market_id]


class MarketState(StrEnum):
    HOLIDAY = "HOLIDAY"
    PRE_OPEN = "PRE_OPEN"
    SESSION = "SESSION"
    POST_CLOSE = "POST_CLOSE"
    OVERNIGHT = "OVERNIGHT"


def _to_date(d: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(d)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)
    return ts.normalize()


def _to_utc(ts: dt.datetime | str | pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


@functools.cache
def _exchange_calendar(code: str, start: pd.Timestamp) -> xcals.ExchangeCalendar:
    # building a calendar over 30 years takes seconds, in every run process: kept on disk
    path = cache_dir("calendars") / (f"{code.replace('/', '_')}-{start.date()}-"
                                     f"{CALENDAR_END.date()}-{xcals.__version__}.pkl")
    cal = load_pickle(path)
    if isinstance(cal, xcals.ExchangeCalendar):
        return cal
    cal = xcals.get_calendar(code, start=start, end=CALENDAR_END)
    store_pickle(path, cal)
    return cal


def _earliest_day(code: str) -> pd.Timestamp | None:
    """The first day exchange_calendars knows for ``code`` (None: no bound), read from the
    calendar's class: building the calendar to ask would take a second per process."""
    from exchange_calendars import calendar_utils

    factory = calendar_utils._default_calendar_factories.get(xcals.resolve_alias(code))
    return factory.bound_min() if factory is not None else xcals.get_calendar(code).bound_min()


def calendar_start(market_id: str) -> pd.Timestamp:
    """The first day of ``market_id``'s calendar: :data:`CALENDAR_LOOKBACK` before its history
    start, or the earliest day exchange_calendars knows for it."""
    wanted = pd.Timestamp(history_start(market_id)) - CALENDAR_LOOKBACK
    code = market_spec(market_id).calendar_code
    earliest = _earliest_day(code)
    if earliest is not None and wanted < earliest:
        if pd.Timestamp(history_start(market_id)) < earliest:
            raise ConfigError(
                f"{market_id}: history_start {history_start(market_id)} is before "
                f"{earliest.date()}, the first day its calendar ({code}) knows; set a later "
                f"{HISTORY_START_SETTING}")
        return pd.Timestamp(earliest)
    return wanted


class TradingCalendar:
    """Sessions of one logical market. Dates are session labels (the market's local date)."""

    def __init__(self, market_id: str):
        self.market_id = market_id
        self.spec = market_spec(market_id)
        self.start = calendar_start(market_id)
        self._cal = _exchange_calendar(self.spec.calendar_code, self.start)

    def __repr__(self) -> str:
        return f"TradingCalendar({self.market_id!r}, {self.spec.calendar_code})"

    def _in_range(self, d: pd.Timestamp) -> bool:
        return bool(self.start <= d <= CALENDAR_END)

    def _check_range(self, d: pd.Timestamp) -> None:
        if not self._in_range(d):
            hint = (f"; its history starts on {history_start(self.market_id)}: set an earlier "
                    f"{HISTORY_START_SETTING}" if d < self.start else "")
            raise ValueError(
                f"{self.market_id}: date {d.date()} is outside the supported calendar range "
                f"{self.start.date()}..{CALENDAR_END.date()}{hint}"
            )

    @property
    def first_session(self) -> pd.Timestamp:
        return self._cal.first_session.tz_localize(None)

    def is_trading_day(self, d: dt.date | str) -> bool:
        ts = _to_date(d)
        self._check_range(ts)
        return bool(self._cal.is_session(ts))

    def sessions(self, start: dt.date | str, end: dt.date | str) -> pd.DatetimeIndex:
        """Trading sessions between start and end, both inclusive."""
        s, e = _to_date(start), _to_date(end)
        if e < s:
            return pd.DatetimeIndex([])
        first = self._cal.first_session.tz_localize(None)
        last = self._cal.last_session.tz_localize(None)
        s, e = max(s, first), min(e, last)
        if e < s:
            return pd.DatetimeIndex([])
        return pd.DatetimeIndex(self._cal.sessions_in_range(s, e)).tz_localize(None)

    def trading_days_between(self, start: dt.date | str, end: dt.date | str) -> int:
        return len(self.sessions(start, end))

    def previous_trading_day(self, d: dt.date | str, n: int = 1) -> pd.Timestamp:
        """The n-th session strictly before d."""
        ts = _to_date(d)
        self._check_range(ts)
        # the first session on or after d; stepping back n from it lands strictly before d
        anchor = self._cal.date_to_session(ts, direction="next")
        return self._cal.session_offset(anchor, -n).tz_localize(None)

    def lookback_start(self, d: dt.date | str, n: int) -> pd.Timestamp:
        """The n-th session before d, or the calendar's first session when the look-back reaches
        before it (there is no history there to read)."""
        ts = _to_date(d)
        self._check_range(ts)
        anchor = self._cal.date_to_session(ts, direction="next")
        if self._cal.sessions.get_loc(anchor) < n:
            return self.first_session
        return self._cal.session_offset(anchor, -n).tz_localize(None)

    def next_trading_day(self, d: dt.date | str, n: int = 1) -> pd.Timestamp:
        """The n-th session strictly after d."""
        ts = _to_date(d)
        self._check_range(ts)
        anchor = self._cal.date_to_session(ts, direction="previous")
        return self._cal.session_offset(anchor, n).tz_localize(None)

    def session_open(self, d: dt.date | str) -> pd.Timestamp:
        return self._cal.session_open(self._session(d))

    def session_close(self, d: dt.date | str) -> pd.Timestamp:
        return self._cal.session_close(self._session(d))

    def regular_close(self) -> tuple[dt.time, str]:
        """The exchange's current regular closing time and its timezone."""
        return self._cal.close_times[-1][1], str(self._cal.tz)

    def is_early_close(self, d: dt.date | str) -> bool:
        s = self._session(d)
        return bool(s in self._cal.early_closes)

    def _session(self, d: dt.date | str) -> pd.Timestamp:
        ts = _to_date(d)
        if not self.is_trading_day(ts):
            raise ValueError(f"{self.market_id}: {ts.date()} is not a trading session")
        return ts

    def holidays(self, year: int) -> list[dt.date]:
        """Weekdays of ``year`` on which the market does not trade."""
        weekdays = pd.bdate_range(f"{year}-01-01", f"{year}-12-31")
        sessions = set(self.sessions(f"{year}-01-01", f"{year}-12-31"))
        return [d.date() for d in weekdays if d not in sessions]

    def non_session_weekdays(self, start: dt.date | str, end: dt.date | str) -> list[pd.Timestamp]:
        weekdays = pd.bdate_range(_to_date(start), _to_date(end))
        return list(weekdays.difference(self.sessions(start, end)))

    def sessions_frame(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """One row per session: open/close in UTC and whether it closes early."""
        sessions = self.sessions(start, end)
        if len(sessions) == 0:
            return pd.DataFrame(
                columns=["market_id", "date", "open_utc", "close_utc", "early_close"]
            )
        sched = self._cal.schedule.loc[sessions[0] : sessions[-1]]
        early = set(self._cal.early_closes)
        return pd.DataFrame({
            "market_id": self.market_id,
            "date": sessions,
            "open_utc": sched["open"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(),
            "close_utc": sched["close"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(),
            "early_close": [s in early for s in sched.index],
        })

    # --- market states -------------------------------------------------------------------
    def state_at(self, ts: dt.datetime | str | pd.Timestamp) -> MarketState:
        """The market's state at instant ``ts`` (naive timestamps are UTC)."""
        t = _to_utc(ts)
        pre = pd.Timedelta(minutes=self.spec.pre_open_minutes)
        post = pd.Timedelta(minutes=self.spec.post_close_minutes)
        local_day = t.tz_convert(self.spec.timezone).tz_localize(None).normalize()
        # The instant can belong to a session labelled the local day, the day before (after
        # midnight, inside POST_CLOSE) or the day after (a pre-open that starts before midnight).
        for offset in (0, -1, 1):
            day = local_day + pd.Timedelta(days=offset)
            if not self._in_range(day) or not self._cal.is_session(day):
                continue
            open_, close = self._cal.session_open(day), self._cal.session_close(day)
            if open_ - pre <= t < open_:
                return MarketState.PRE_OPEN
            if open_ <= t < close:
                return MarketState.SESSION
            if close <= t < close + post:
                return MarketState.POST_CLOSE
        if self._in_range(local_day) and self._cal.is_session(local_day):
            return MarketState.OVERNIGHT
        return MarketState.HOLIDAY

    def session_for_state(
        self, ts: dt.datetime | str | pd.Timestamp, state: MarketState
    ) -> pd.Timestamp | None:
        """The session date whose ``state`` window contains ``ts``, or None."""
        t = _to_utc(ts)
        pre = pd.Timedelta(minutes=self.spec.pre_open_minutes)
        post = pd.Timedelta(minutes=self.spec.post_close_minutes)
        local_day = t.tz_convert(self.spec.timezone).tz_localize(None).normalize()
        for offset in (0, -1, 1):
            day = local_day + pd.Timedelta(days=offset)
            if not self._in_range(day) or not self._cal.is_session(day):
                continue
            open_, close = self._cal.session_open(day), self._cal.session_close(day)
            windows = {
                MarketState.PRE_OPEN: (open_ - pre, open_),
                MarketState.SESSION: (open_, close),
                MarketState.POST_CLOSE: (close, close + post),
            }
            if state in windows and windows[state][0] <= t < windows[state][1]:
                return day
        return None


@functools.cache
def trading_calendar(market_id: str) -> TradingCalendar:
    return TradingCalendar(market_id)


def market_state(market_id: str, ts: dt.datetime | str | pd.Timestamp) -> MarketState:
    return trading_calendar(market_id).state_at(ts)
