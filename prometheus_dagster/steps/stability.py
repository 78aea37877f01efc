"""Stability step: the stability vectors of a market's issuers, sectors, the market itself and
its FX pairs for a range of sessions, from returns, volatility, liquidity, market internals,
the market's instruments and issuers, its profiles and its regime, point in time. See
``docs/engines/stability.md``.

A range is read once and computed a year of sessions at a time; each chunk sees exactly the
window a run of that chunk alone would read, so a range equals its dates computed one by one.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.stability import (
    StabilityConfig,
    StabilityInputs,
    compute_stability,
)
from prometheus_dagster.steps.common import CHUNK_SESSIONS, chunked

# the ingested table whose quality gate must have passed
GATED_TABLES = ("prices_daily",)
PROFILE_COLUMNS = ["issuer_id", "as_of_date", "leverage_score", "earnings_quality_score",
                   "liquidity_risk", "governance_risk_score", "profile_weakness"]
# tables read over the components' look-back
_LOOKBACK_TABLES = ("returns_daily", "volatility_daily", "liquidity_daily",
                    "market_correlation_daily")


def stability_lookback(cfg: StabilityConfig) -> int:
    """Sessions of history before a date that the components read (contagion window, vol and
    liquidity references over their own windows, a margin of 5)."""
    return max(cfg.contagion_window, cfg.vol_history_sessions + 63,
               cfg.liquidity_history_sessions + 21) + 5


def stability_inputs(cfg: StabilityConfig, with_profiles: bool, with_regime: bool) -> Inputs:
    """What the stability vectors of date D read. Profiles: the last ``profile_max_age_days``
    calendar days (declared as that many sessions, which span more). Regimes: the look-back
    plus ``regime_max_staleness_days`` sessions, since a label is carried forward that long."""
    lookback = stability_lookback(cfg)
    reads = [Read(t, sessions=lookback) for t in _LOOKBACK_TABLES]
    reads += [Read("instruments", reference=True), Read("issuers", reference=True)]
    if with_profiles:
        reads.append(Read("profiles", sessions=cfg.profile_max_age_days,
                          note="profiles at most profile_max_age_days calendar days old"))
    if with_regime:
        reads.append(Read("regimes", sessions=lookback + cfg.regime_max_staleness_days,
                          note="labels carried forward regime_max_staleness_days"))
    return Inputs(*reads)


def read_stability_inputs(reader: Any, market_id: str, dates: list[pd.Timestamp],
                          cfg: StabilityConfig, with_profiles: bool = True,
                          with_regime: bool = True) -> StabilityInputs:
    """Everything the stability components of ``dates`` read, dated on or before the last."""
    window = InputWindow(reader, stability_inputs(cfg, with_profiles, with_regime), market_id,
                         dates)
    internals = window.frame("market_correlation_daily", columns=["date", "index_ret_1d"])
    profiles = (window.frame("profiles", columns=PROFILE_COLUMNS) if with_profiles
                else pd.DataFrame({c: [] for c in PROFILE_COLUMNS}))
    regimes = (window.frame("regimes", columns=["as_of_date", "regime_label"]) if with_regime
               else pd.DataFrame({"as_of_date": [], "regime_label": []}))
    return StabilityInputs(
        returns=window.frame("returns_daily", columns=["instrument_id", "date", "ret_1d"]),
        volatility=window.frame("volatility_daily",
                                columns=["instrument_id", "date", "vol_21d", "vol_63d"]),
        liquidity=window.frame("liquidity_daily",
                               columns=["instrument_id", "date", "adv_21d", "amihud_21d"]),
        instruments=window.frame("instruments",
                                 columns=["instrument_id", "issuer_id", "asset_class"]),
        issuers=window.frame("issuers", columns=["issuer_id", "issuer_type", "sector"]),
        profiles=profiles,
        index_returns=_series(internals.dropna(), "date", "index_ret_1d"),
        regime_labels=_series(regimes.sort_values("as_of_date", kind="stable"), "as_of_date",
                              "regime_label"))


def _series(frame: pd.DataFrame, date: str, value: str) -> pd.Series | None:
    if not len(frame):
        return None
    return frame.set_index(pd.to_datetime(frame[date]))[value]


def within(data: StabilityInputs, window: InputWindow, cfg: StabilityConfig) -> StabilityInputs:
    """``data`` as a run of ``window``'s dates reads it (each table's declared window, and
    profiles of the last ``profile_max_age_days`` calendar days)."""
    end = window.last

    def cut(df: pd.DataFrame, col: str, start: pd.Timestamp) -> pd.DataFrame:
        d = pd.to_datetime(df[col])
        return df[((d >= start) & (d <= end)).to_numpy()]

    def cut_series(s: pd.Series | None, table: str) -> pd.Series | None:
        if s is None:
            return None
        part = s[(s.index >= window.start(table)) & (s.index <= end)]
        return part if len(part) else None

    start = window.start("returns_daily")
    assert start is not None
    return StabilityInputs(
        returns=cut(data.returns, "date", start),
        volatility=cut(data.volatility, "date", start),
        liquidity=cut(data.liquidity, "date", start),
        instruments=data.instruments, issuers=data.issuers,
        profiles=cut(data.profiles, "as_of_date",
                     window.first - pd.Timedelta(days=cfg.profile_max_age_days)),
        index_returns=cut_series(data.index_returns, "market_correlation_daily"),
        regime_labels=(None if data.regime_labels is None
                       else cut_series(data.regime_labels, "regimes")))


def stability_vectors(data: StabilityInputs, market_id: str, dates: list[pd.Timestamp],
                      cfg: StabilityConfig, config_id: str, inputs: Inputs, log: Any = None,
                      chunk: int = CHUNK_SESSIONS) -> pd.DataFrame:
    """The ``stability_vectors`` rows of ``dates``, a chunk of sessions at a time."""
    parts = []
    for part in chunked(dates, log, f"{market_id} stability", size=chunk):
        sub = within(data, InputWindow(None, inputs, market_id, part), cfg)
        parts.append(compute_stability(market_id, sub, part, cfg, config_id))
    found = [p for p in parts if len(p)]
    if len(found) <= 1:
        return found[0] if found else parts[0]
    return pd.concat(found, ignore_index=True)


def compute_stability_range(reader: Any, market_id: str, dates: list[pd.Timestamp],
                            cfg: StabilityConfig, config_id: str, with_profiles: bool,
                            with_regime: bool, log: Any = None) -> tuple[pd.DataFrame,
                                                                         StabilityInputs]:
    """Read once and compute the stability vectors of ``dates`` (and the inputs read)."""
    data = read_stability_inputs(reader, market_id, dates, cfg, with_profiles, with_regime)
    inputs = stability_inputs(cfg, with_profiles, with_regime)
    return stability_vectors(data, market_id, dates, cfg, config_id, inputs, log), data


def stability_decisions(out: pd.DataFrame, input_refs: dict) -> pd.DataFrame:
    """One decision record per date: the market's stability and its least stable entities."""
    rows = []
    for d, day in out.groupby("as_of_date", sort=True):
        market = day[day["entity_type"] == "MARKET"]["stability_score"]
        weakest = day[day["entity_type"] == "ISSUER"].nsmallest(5, "stability_score")
        rows.append({
            "context_id": f"{day['market_id'].iloc[0]}:{pd.Timestamp(d).date()}",
            "as_of_date": d, "config_id": day["config_id"].iloc[0], "model_id": None,
            "input_refs": input_refs,
            "proposed_action": {
                "market_stability": float(market.iloc[0]) if len(market) else None,
                "entities": int(len(day)),
                "below_0_5": int((day["stability_score"] < 0.5).sum()),
                "least_stable": {str(r.entity_id): round(float(r.stability_score), 4)
                                 for r in weakest.itertuples()}}})
    return pd.DataFrame(rows)
