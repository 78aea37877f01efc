"""``SyntheticMarket``: the embedded market as a data vendor.

The market is simulated once per instance, lazily: the global regime chain first, then each
region's market factor, the macro series, and each market's names on first use. Frames are built
once per market and cached; ``prices(market_id, start, end)`` and friends only slice them.

Determinism: every random number comes from a per-day stream (``rng``), the universe is fixed
from the seed and the market config, and every process runs forward in time, so the same
config gives identical frames and data for a date D never depends on ``end_date``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from prometheus_dagster.core.calendars import TradingCalendar, market_spec
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.schemas import empty_frame, get_schema
from prometheus_dagster.engines.synthetic_market.config import (
    MAX_DATE,
    MIN_DATE,
    SyntheticMarketConfig,
)
from prometheus_dagster.engines.synthetic_market.equities import (
    DEFAULT,
    EquityHistory,
    simulate_equities,
)
from prometheus_dagster.engines.synthetic_market.fundamentals import fundamentals_frames
from prometheus_dagster.engines.synthetic_market.macro import (
    MacroState,
    macro_frame,
    simulate_macro,
)
from prometheus_dagster.engines.synthetic_market.news import (
    SessionTimes,
    equity_news,
    fx_news,
)
from prometheus_dagster.engines.synthetic_market.prices import (
    corporate_actions_frame,
    equity_bars,
    fx_frame,
    prices_frame,
)
from prometheus_dagster.engines.synthetic_market.regimes import (
    GlobalState,
    RegionalState,
    regime_names,
    simulate_global,
    simulate_region,
)
from prometheus_dagster.engines.synthetic_market.simulation_cache import SimulationCache
from prometheus_dagster.engines.synthetic_market.universe import (
    Universe,
    build_universe,
    index_id,
    instruments_frame,
    issuers_frame,
)

GLOBAL_MARKET = "GLOBAL"
DateLike: TypeAlias = dt.date | str | pd.Timestamp


@dataclass
class _EquityMarket:
    history: EquityHistory
    prices: pd.DataFrame
    actions: pd.DataFrame
    fundamentals: pd.DataFrame
    facts: pd.DataFrame
    news: tuple[pd.DataFrame, pd.DataFrame] | None = None


def _day(d: DateLike | None, default: pd.Timestamp) -> pd.Timestamp:
    if d is None:
        return default
    ts = pd.Timestamp(d)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)
    return ts.normalize()


def _slice(df: pd.DataFrame, column: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Rows with ``column`` in [start, end] of a frame sorted by that column (a copy)."""
    values = df[column].to_numpy()
    lo = np.searchsorted(values, start.to_datetime64(), side="left")
    hi = np.searchsorted(values, end.to_datetime64(), side="right")
    return df.iloc[lo:hi].reset_index(drop=True).copy()


class SyntheticMarket:
    """Deterministic synthetic markets (equities with fundamentals, news, corporate actions; FX;
    macro) on real trading calendars, with their hidden ground truth."""

    def __init__(self, config: SyntheticMarketConfig | None = None,
                 cache_dir: Path | None = None):
        self.config = config if config is not None else SyntheticMarketConfig()
        # simulated equity markets are kept here across processes (see ``simulation_cache``)
        self._cache = (SimulationCache(cache_dir, self.config, calendars=repr(
            [market_spec(m) for m in self.config.market_ids])) if cache_dir is not None
            else None)
        cfg = self.config
        for market_id in cfg.market_ids:
            market_spec(market_id)  # raises ConfigError for unknown markets
        self.days = pd.bdate_range(cfg.start_date, cfg.end_date)
        if len(self.days) == 0:
            raise ConfigError(
                f"synthetic_market: no business day between {cfg.start_date} and {cfg.end_date}")
        self._calendars: dict[str, TradingCalendar] = {}
        self._universes: dict[str, Universe] = {}
        self._regions: dict[str, RegionalState] = {}
        self._equity: dict[str, _EquityMarket] = {}
        self._global: GlobalState | None = None
        self._macro: MacroState | None = None
        self._macro_frame: pd.DataFrame | None = None
        self._fx: pd.DataFrame | None = None
        self._fx_news: tuple[pd.DataFrame, pd.DataFrame] | None = None

    def __repr__(self) -> str:
        c = self.config
        return (f"SyntheticMarket(seed={c.seed}, {c.start_date}..{c.end_date}, "
                f"markets={self.market_ids})")

    # --- reference -------------------------------------------------------------------------
    @property
    def market_ids(self) -> list[str]:
        return self.config.market_ids

    def markets(self) -> pd.DataFrame:
        """``markets`` rows of the simulated markets."""
        rows = []
        for m in self.market_ids:
            s = market_spec(m)
            rows.append({"market_id": m, "name": s.name, "region": s.region,
                         "timezone": s.timezone, "calendar_code": s.calendar_code,
                         "currency": s.currency})
        return pd.DataFrame(rows, columns=get_schema("markets").column_names)

    def issuers(self, market_id: str) -> pd.DataFrame:
        """Issuers of an equity market (the FX market has none)."""
        self._check(market_id)
        if market_id == self.config.fx_market:
            return empty_frame("issuers")
        return issuers_frame(self._universe(market_id))

    def instruments(self, market_id: str) -> pd.DataFrame:
        """Equities and the cap-weighted index of an equity market, or the FX pairs."""
        self._check(market_id)
        listed = self._first_session(market_id)
        if market_id == self.config.fx_market:
            spec = market_spec(market_id)
            return pd.DataFrame({
                "instrument_id": [f"FX:{p}" for p in self.config.fx_pairs],
                "issuer_id": None, "market_id": market_id, "asset_class": "FX",
                "symbol": list(self.config.fx_pairs), "exchange": spec.calendar_code,
                "currency": [p[3:6] if len(p) == 6 else spec.currency
                             for p in self.config.fx_pairs],
                "multiplier": 1.0, "status": "ACTIVE", "listed_date": listed,
            }, columns=get_schema("instruments").column_names)
        return instruments_frame(self._universe(market_id), listed)

    # --- market history --------------------------------------------------------------------
    def prices(self, market_id: str, start: DateLike, end: DateLike) -> pd.DataFrame:
        """Daily bars on the market's sessions in [start, end]."""
        self._check(market_id)
        frame = self._fx_prices() if market_id == self.config.fx_market \
            else self._equities(market_id).prices
        return _slice(frame, "date", _day(start, self.days[0]), _day(end, self.days[-1]))

    def corporate_actions(self, market_id: str, start: DateLike, end: DateLike) -> pd.DataFrame:
        self._check(market_id)
        if market_id == self.config.fx_market:
            return empty_frame("corporate_actions")
        return _slice(self._equities(market_id).actions, "date", _day(start, self.days[0]),
                      _day(end, self.days[-1]))

    def fundamentals(self, market_id: str, start: DateLike, end: DateLike) -> pd.DataFrame:
        """Statements whose report_date lies in [start, end]."""
        self._check(market_id)
        if market_id == self.config.fx_market:
            return empty_frame("fundamentals")
        return _slice(self._equities(market_id).fundamentals, "report_date",
                      _day(start, self.days[0]), _day(end, self.days[-1]))

    def macro(self, start: DateLike, end: DateLike) -> pd.DataFrame:
        """Macro series on weekdays (D) and monthly releases (M) dated in [start, end]."""
        if self._macro_frame is None:
            self._macro_frame = macro_frame(self._macro_state())
        return _slice(self._macro_frame, "date", _day(start, self.days[0]),
                      _day(end, self.days[-1]))

    def news(self, market_id: str, start: DateLike,
             end: DateLike) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(articles, links) dated in [start, end]."""
        self._check(market_id)
        s, e = _day(start, self.days[0]), _day(end, self.days[-1])
        if market_id == self.config.fx_market:
            if self._fx_news is None:
                self._fx_news = fx_news(self.config, self._session_times(market_id),
                                        self._fx_prices(), self._global_state().regime)
            arts, links = self._fx_news
        else:
            arts, links = self._equity_news(market_id)
        return _slice(arts, "date", s, e), _slice(links, "date", s, e)

    # --- ground truth ----------------------------------------------------------------------
    def truth_regimes(self, start: DateLike | None = None,
                      end: DateLike | None = None) -> pd.DataFrame:
        """Hidden regime per business day (``GLOBAL``) and per market session."""
        glob = self._global_state()
        frames = [pd.DataFrame({"market_id": GLOBAL_MARKET, "date": self.days,
                                "regime": regime_names(glob.regime)})]
        for m in self.market_ids:
            codes = glob.regime if m == self.config.fx_market else self._region(m).regime
            mask = self._session_mask(m)
            frames.append(pd.DataFrame({"market_id": m, "date": self.days[mask],
                                        "regime": regime_names(codes[mask])}))
        out = pd.concat(frames, ignore_index=True)
        out = out.sort_values(["date", "market_id"], kind="mergesort", ignore_index=True)
        return _slice(out, "date", _day(start, self.days[0]), _day(end, self.days[-1]))

    def truth_distress_events(self) -> pd.DataFrame:
        """Completed distress episodes (onset to crash or default) of all equity markets.
        ``peak_to_trough`` is trough / peak - 1 of the total-return path (negative)."""
        rows = []
        for m in self.config.markets:
            hist = self._equities(m).history
            sess = self._session_mask(m)
            sess_days = self.days[sess]
            u = hist.universe
            for e in hist.events:
                onset = sess_days[min(np.searchsorted(sess_days, self.days[e.onset_day]),
                                      len(sess_days) - 1)]
                rows.append({
                    "issuer_id": u.issuer_ids[e.name], "market_id": m,
                    "instrument_id": u.instrument_ids[e.name], "onset_date": onset,
                    "event_date": self.days[e.event_day],
                    "event_type": "DEFAULT_DELISTING" if e.kind == DEFAULT else "CRASH",
                    "peak_to_trough": e.trough / e.peak - 1.0,
                })
        cols = get_schema("truth.distress_events").column_names
        out = pd.DataFrame(rows, columns=cols)
        if len(out):
            out = out.sort_values(["event_date", "issuer_id"], ignore_index=True)
        return out

    # --- internals -------------------------------------------------------------------------
    def _check(self, market_id: str) -> None:
        if market_id not in self.market_ids:
            raise ConfigError(f"synthetic_market: unknown market_id {market_id!r}; simulated "
                              f"markets: {', '.join(self.market_ids)}")

    def _calendar(self, market_id: str) -> TradingCalendar:
        if market_id not in self._calendars:
            self._calendars[market_id] = TradingCalendar(market_id)
        return self._calendars[market_id]

    def _session_mask(self, market_id: str) -> np.ndarray:
        sessions = self._calendar(market_id).sessions(self.days[0], self.days[-1])
        return self.days.isin(sessions)

    def _first_session(self, market_id: str) -> pd.Timestamp | None:
        mask = self._session_mask(market_id)
        return self.days[mask][0] if mask.any() else None

    def _session_times(self, market_id: str) -> SessionTimes:
        mask = self._session_mask(market_id)
        frame = self._calendar(market_id).sessions_frame(self.days[0], self.days[-1])
        frame = frame[frame["date"].isin(self.days[mask])]
        return SessionTimes(np.nonzero(mask)[0], frame["date"].to_numpy(),
                            frame["open_utc"].to_numpy(), frame["close_utc"].to_numpy())

    def _universe(self, market_id: str) -> Universe:
        if market_id not in self._universes:
            spec = market_spec(market_id)
            self._universes[market_id] = build_universe(
                self.config, market_id, spec.currency, spec.calendar_code, spec.region)
        return self._universes[market_id]

    def _global_state(self) -> GlobalState:
        if self._global is None:
            self._global = simulate_global(self.config, self.days)
        return self._global

    def _region(self, market_id: str) -> RegionalState:
        if market_id not in self._regions:
            self._regions[market_id] = simulate_region(self.config, market_id,
                                                       self._global_state())
        return self._regions[market_id]

    def _macro_state(self) -> MacroState:
        if self._macro is None:
            self._macro = simulate_macro(self.config, self._global_state(),
                                         self._region("US_EQ"), self._region("EU_EQ"))
        return self._macro

    def _equities(self, market_id: str) -> _EquityMarket:
        if market_id in self._equity:
            return self._equity[market_id]
        stored = self._cache.load(market_id) if self._cache is not None else None
        if stored is not None:
            self._equity[market_id] = stored
            return stored
        u = self._universe(market_id)
        cal = self._calendar(market_id)
        lo = max(pd.Timestamp(MIN_DATE), self.days[0] - pd.Timedelta(days=200))
        hi = min(pd.Timestamp(MAX_DATE), self.days[-1] + pd.Timedelta(days=200))
        hist = simulate_equities(self.config, u, self.days, self._session_mask(market_id),
                                 self._region(market_id), cal.sessions(lo, hi))
        bars = equity_bars(self.config, hist)
        rate_series = "EU_RATE_10Y" if market_spec(market_id).region == "EU" else "US_RATE_10Y"
        fundamentals, facts = fundamentals_frames(
            self.config.seed, hist, u.currency, self._macro_state().daily[rate_series])
        self._equity[market_id] = _EquityMarket(
            history=hist, prices=prices_frame(self.config, hist, u.currency, bars),
            actions=corporate_actions_frame(hist, u.currency), fundamentals=fundamentals,
            facts=facts)
        if self._cache is not None:
            self._cache.store(market_id, self._equity[market_id])
        return self._equity[market_id]

    def _equity_news(self, market_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        eq = self._equities(market_id)
        if eq.news is None:
            spec = market_spec(market_id)
            eu = spec.region == "EU"
            daily = self._macro_state().daily
            index = eq.prices[eq.prices["instrument_id"] == index_id(market_id)]
            level = index["close"].to_numpy()
            ret = np.concatenate([[0.0], level[1:] / level[:-1] - 1.0])
            eq.news = equity_news(
                self.config, eq.history, self._session_times(market_id), eq.facts,
                spec.currency, ret, daily["EU_IMPLIED_VOL" if eu else "US_IMPLIED_VOL"],
                daily["EU_CREDIT_SPREAD" if eu else "US_CREDIT_SPREAD_IG"], spec.region)
            if self._cache is not None:
                self._cache.store(market_id, eq)
        return eq.news

    def _fx_prices(self) -> pd.DataFrame:
        if self._fx is None:
            self._fx = fx_frame(self.config, self._global_state(), self._region("US_EQ"),
                                self._region("EU_EQ"), self._session_mask(self.config.fx_market))
        return self._fx

    def cache_info(self) -> dict[str, Any]:
        """What has been simulated so far (for logs)."""
        return {"markets_simulated": sorted(self._equity), "macro": self._macro is not None,
                "fx": self._fx is not None}
