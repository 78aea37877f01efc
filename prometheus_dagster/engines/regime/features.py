"""Cross-asset window features of a region, per session, each using only data dated on or
before its session.

Inputs are a region's daily internals (index return, average correlation, dispersion, breadth:
the ``market_correlation_daily`` columns) and the macro series mapped to roles (implied vol,
credit spreads, rates, commodities...). Whatever is missing is simply absent from the output
(``missing_inputs`` says what). Every window statistic is computed over its own window slice
(never a running sum), so a session's value depends only on the sessions in its window: not
on later data, nor on how much earlier history was read (a window needs 80% of its sessions;
the first windows of a history are short of data until they fill).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from prometheus_dagster.engines.regime.config import RegimeConfig

TRADING_DAYS = 252.0
INTERNAL_COLUMNS = {"index_ret_1d": "index_ret", "avg_pairwise_corr_63d": "avg_corr",
                    "dispersion_1d": "dispersion_1d", "breadth_1d": "breadth_1d"}
# fitted on their logarithm: levels of volatility and spreads are closer to Gaussian in logs
LOG_FEATURES: tuple[str, ...] = ("implied_vol", "vol_short", "vol_long", "credit_level",
                                 "dispersion")
# counted by their negative in a stress level (a deeper drawdown is more stress)
STRESS_SIGNS: dict[str, float] = {"drawdown": -1.0, "ret_short": -1.0, "ret_long": -1.0,
                                  "breadth": -1.0}
MIN_WINDOW_COVERAGE = 0.8


@dataclass
class RegionInputs:
    """A region's raw inputs: internals per session (``date`` + the internals columns) and macro
    observations (``series_id, date, value, frequency``), plus the role -> series choices."""

    region: str
    internals: pd.DataFrame
    macro: pd.DataFrame
    roles: Mapping[str, Sequence[str]] = field(default_factory=dict)


def combine_internals(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """GLOBAL internals: per date, the mean over member markets that have a value (a market on
    holiday contributes nothing that day)."""
    parts = []
    for market, f in sorted(frames.items()):
        if len(f):
            cols = ["date", *[c for c in INTERNAL_COLUMNS if c in f.columns]]
            parts.append(f[cols].assign(member=market))
    if not parts:
        return pd.DataFrame(columns=["date", *INTERNAL_COLUMNS])
    allf = pd.concat(parts, ignore_index=True)
    allf["date"] = pd.to_datetime(allf["date"])
    value_cols = [c for c in INTERNAL_COLUMNS if c in allf.columns]
    # sum in member order, then divide: no dependence on how pandas groups internally
    out = allf.sort_values(["date", "member"]).groupby("date", sort=True)[value_cols].mean()
    return out.reset_index()


def resolve_roles(macro: pd.DataFrame, roles: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """role -> the first candidate series present in ``macro``."""
    present = set(macro["series_id"].astype(str)) if len(macro) else set()
    out = {}
    for role, candidates in roles.items():
        hit = next((s for s in candidates if s in present), None)
        if hit is not None:
            out[role] = hit
    return out


def _asof(sessions: pd.DatetimeIndex, series: pd.DataFrame, staleness: Mapping[str, int]
          ) -> np.ndarray:
    """Value of one series on each session: its last observation on or before the session, if
    no older than the staleness allowed for its frequency."""
    s = series.sort_values("date")
    freq = str(s["frequency"].iloc[-1]) if "frequency" in s.columns and len(s) else "D"
    tol = pd.Timedelta(days=int(staleness.get(freq, staleness.get("D", 7))))
    left = pd.DataFrame({"date": sessions})
    right = pd.DataFrame({"date": pd.to_datetime(s["date"]).astype("datetime64[ns]"),
                          "value": s["value"].astype(float).to_numpy()})
    merged = pd.merge_asof(left.astype({"date": "datetime64[ns]"}), right, on="date",
                           direction="backward", tolerance=tol)
    return merged["value"].to_numpy(dtype=float)


def _windows(x: np.ndarray, length: int) -> np.ndarray:
    """(n, length) trailing windows ending at each row (NaN-padded at the start)."""
    padded = np.concatenate([np.full(length - 1, np.nan), x])
    return sliding_window_view(padded, length)


def _window_sum(x: np.ndarray, length: int) -> np.ndarray:
    w = _windows(x, length)
    n = np.sum(~np.isnan(w), axis=1)
    total = np.nansum(w, axis=1)
    return np.where(n >= MIN_WINDOW_COVERAGE * length, total, np.nan)


def _window_mean(x: np.ndarray, length: int) -> np.ndarray:
    w = _windows(x, length)
    n = np.sum(~np.isnan(w), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(w, axis=1) / n
    return np.where(n >= MIN_WINDOW_COVERAGE * length, mean, np.nan)


def _window_vol(x: np.ndarray, length: int) -> np.ndarray:
    w = _windows(x, length)
    ok = ~np.isnan(w)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(w, axis=1) / n
        ss = np.nansum(np.where(ok, w - mean[:, None], 0.0) ** 2, axis=1)
        vol = np.sqrt(ss / (n - 1) * TRADING_DAYS)
    return np.where(n >= MIN_WINDOW_COVERAGE * length, vol, np.nan)


def _drawdown(logret: np.ndarray, length: int) -> np.ndarray:
    """Index level / its peak within the last ``length`` sessions - 1 (<= 0)."""
    w = np.nan_to_num(_windows(logret, length), nan=0.0)
    path = np.cumsum(w, axis=1)
    peak = np.maximum(np.max(path, axis=1), 0.0)  # the level before the window counts too
    seen = np.sum(~np.isnan(_windows(logret, length)), axis=1)
    return np.where(seen >= min(length, 20), np.expm1(path[:, -1] - peak), np.nan)


def _window_low(x: np.ndarray, length: int) -> np.ndarray:
    """Lowest value of the trailing window (NaN where the window has no value)."""
    w = _windows(x, length)
    seen = np.isfinite(w).any(axis=1)
    return np.where(seen, np.min(np.where(np.isfinite(w), w, np.inf), axis=1), np.nan)


def _change(x: np.ndarray, lag: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) > lag:
        out[lag:] = x[lag:] - x[:-lag]
    return out


def compute_region_features(inputs: RegionInputs, config: RegimeConfig) -> pd.DataFrame:
    """One row per session of the region (the dates of its internals), indexed by date."""
    internals = inputs.internals.copy()
    internals["date"] = pd.to_datetime(internals["date"])
    internals = internals.sort_values("date").drop_duplicates("date", keep="last")
    sessions = pd.DatetimeIndex(internals["date"])
    w, ws = config.window, config.short_window
    out = pd.DataFrame(index=sessions)
    out.index.name = "date"
    if len(sessions) == 0:
        return out
    r = internals["index_ret_1d"].to_numpy(dtype=float) if "index_ret_1d" in internals \
        else np.full(len(sessions), np.nan)
    if np.isfinite(r).any():
        lr = np.log1p(r)
        out["ret_short"] = _window_sum(lr, ws)
        out["ret_long"] = _window_sum(lr, w)
        out["vol_short"] = _window_vol(lr, ws)
        out["vol_long"] = _window_vol(lr, w)
        out["drawdown"] = _drawdown(lr, 4 * w)
        out["drawdown_low"] = _window_low(out["drawdown"].to_numpy(), w)
    if "avg_pairwise_corr_63d" in internals and internals["avg_pairwise_corr_63d"].notna().any():
        out["avg_corr"] = internals["avg_pairwise_corr_63d"].to_numpy(dtype=float)
    if "dispersion_1d" in internals and internals["dispersion_1d"].notna().any():
        out["dispersion"] = _window_mean(internals["dispersion_1d"].to_numpy(dtype=float), ws)
    if "breadth_1d" in internals and internals["breadth_1d"].notna().any():
        out["breadth"] = _window_mean(internals["breadth_1d"].to_numpy(dtype=float), ws)
    series = resolve_roles(inputs.macro, inputs.roles)
    macro = {}
    for role, sid in series.items():
        obs = inputs.macro[inputs.macro["series_id"].astype(str) == sid]
        macro[role] = _asof(sessions, obs, config.macro_max_staleness_days)
    if "implied_vol" in macro:
        out["implied_vol"] = macro["implied_vol"]
        out["implied_vol_change"] = _change(macro["implied_vol"], ws)
        if "vol_short" in out:
            out["implied_minus_realised"] = macro["implied_vol"] / 100.0 - out["vol_short"]
    if "credit_spread" in macro:
        out["credit_level"] = macro["credit_spread"]
        out["credit_change"] = _change(macro["credit_spread"], ws)
        if "credit_spread_hy" in macro:
            gap = macro["credit_spread_hy"] - macro["credit_spread"]
            out["credit_hy_gap"] = gap
            out["credit_hy_change"] = _change(gap, ws)
    if "rate_short" in macro:
        out["rate_short_change"] = _change(macro["rate_short"], ws)
    if "rate_long" in macro:
        out["rate_long_change"] = _change(macro["rate_long"], ws)
        if "rate_short" in macro:
            out["curve_slope"] = macro["rate_long"] - macro["rate_short"]
    for role, name in (("commodity", "commodity_return"), ("haven", "haven_return")):
        if role in macro:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = _change(np.log(np.where(macro[role] > 0, macro[role], np.nan)), ws)
    if "inflation" in macro:
        out["inflation_level"] = macro["inflation"]
    if "unemployment" in macro:
        out["unemployment_change"] = _change(macro["unemployment"], w)
    return out


def missing_inputs(inputs: RegionInputs) -> list[str]:
    """What a region lacks, in words a user can act on."""
    missing = []
    f = inputs.internals
    if "index_ret_1d" not in f or not f["index_ret_1d"].notna().any():
        missing.append("index returns (market_correlation_daily.index_ret_1d)")
    for col, what in (("avg_pairwise_corr_63d", "average correlation"),
                      ("dispersion_1d", "dispersion"), ("breadth_1d", "breadth")):
        if col not in f or not f[col].notna().any():
            missing.append(f"{what} (needs several instruments)")
    found = resolve_roles(inputs.macro, inputs.roles)
    for role, candidates in inputs.roles.items():
        if role not in found:
            missing.append(f"macro {role} (none of {', '.join(candidates)})")
    unmapped = [r for r in ("implied_vol", "credit_spread", "rate_short", "rate_long")
                if r not in inputs.roles]
    missing += [f"macro {r} (no series mapped in configs/engines/regime.yaml)" for r in unmapped]
    return missing
