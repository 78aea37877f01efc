"""What a data vendor would deliver from the simulated truth: daily bars, the market index, FX
bars and corporate actions.

Bars. Each session's close is the latent close of that business day. The open sits between the
previous close (adjusted for that day's dividend and split) and the close, high and low extend
beyond both by an amount scaled to the day's volatility, volume scales with shares outstanding,
regime, the size of the move and distress. ``adjusted_close`` is the point-in-time total-return
index: it starts at the first close and compounds total returns, so later events never rewrite
it.

Vendor glitches (equities only, at the configured per-row rates, never on a name's first row,
on a corporate-action day or on a distress event day): a *stale* row repeats the previous close
as a flat bar with no volume, a *spike* misprints the close of one day (high/low widened to
stay consistent), a *missing* row is absent. The truth path continues, so later rows are unaffected.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig
from prometheus_dagster.engines.synthetic_market.equities import DEFAULT, EquityHistory
from prometheus_dagster.engines.synthetic_market.regimes import (
    TRADING_DAYS,
    GlobalState,
    RegionalState,
    regime_param,
)
from prometheus_dagster.engines.synthetic_market.rng import DayDraws
from prometheus_dagster.engines.synthetic_market.universe import index_id

INDEX_BASE = 1000.0
PRICE_COLUMNS = get_schema("prices_daily").column_names
ACTION_COLUMNS = get_schema("corporate_actions").column_names


def _bars(base: np.ndarray, close: np.ndarray, sigma: np.ndarray,
          z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open, high, low from the reference price before the session, the close, the daily vol
    and three standard normals per bar (last axis)."""
    move = np.log(close / base)
    open_ = base * np.exp(0.35 * move + 0.3 * sigma * z[..., 0])
    high = np.maximum(open_, close) * np.exp(0.6 * sigma * np.abs(z[..., 1]))
    low = np.minimum(open_, close) * np.exp(-0.6 * sigma * np.abs(z[..., 2]))
    return open_, high, low


def _consistent(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                decimals: int = 4) -> tuple[np.ndarray, ...]:
    o, h, lo, c = (np.round(a, decimals) for a in (open_, high, low, close))
    tick = 10.0 ** -decimals
    c = np.maximum(c, tick)
    o = np.maximum(o, tick)
    h = np.maximum.reduce([h, o, c])
    lo = np.maximum(np.minimum.reduce([lo, o, c]), tick)
    return o, h, lo, c


def equity_bars(config: SyntheticMarketConfig, hist: EquityHistory) -> dict[str, np.ndarray]:
    """Session x name arrays of the vendor's bars (truth plus glitches) and the row mask."""
    u = hist.universe
    s = np.nonzero(hist.is_session)[0]
    k_n = len(s)
    close = hist.price[s]
    tr = hist.total_return[s]
    alive = hist.alive[s]
    div = hist.dividend[s]
    ratio = hist.split_ratio[s].astype(float)
    sigma = hist.sigma[s].astype(float)
    prev = np.vstack([close[:1], close[:-1]])
    base = np.where(np.arange(k_n)[:, None] == 0, close, (prev - div) / ratio)
    z = DayDraws(config.seed, f"ohlc:{u.market_id}",
                 {"z": ("normal", (u.n, 4))}).all(len(hist.days))["z"][s]
    open_, high, low = _bars(base, close, sigma, z)
    move = np.abs(np.log(close / base))
    prog = np.nan_to_num(hist.progress[s].astype(float), nan=0.0)
    vol_mult = regime_param(config, "volume_multiplier")[hist.regime[s]][:, None]
    volume = np.round(hist.shares[s] * u.share_turnover.astype(float) * vol_mult
                      * np.exp(0.35 * z[..., 3] + 0.4 * np.minimum(move / sigma, 6.0))
                      * (1 + 2 * prog))
    volume = np.maximum(volume, 1.0)
    adjusted = close[0] * tr / tr[0]

    # vendor glitches
    event_rows = np.zeros_like(alive)
    pos = np.searchsorted(s, [e.event_day for e in hist.events])
    for e, k in zip(hist.events, pos, strict=True):
        if k < k_n and s[k] == e.event_day:
            event_rows[k, e.name] = True
    eligible = alive & np.vstack([np.zeros((1, u.n), bool), alive[:-1]]) \
        & (div == 0) & (ratio == 1) & ~event_rows
    bad = DayDraws(config.seed, f"bad:{u.market_id}", {"u": ("uniform", (u.n, 2))}) \
        .all(len(hist.days))["u"][s]
    r1, r2 = config.stale_price_rate, config.stale_price_rate + config.spike_rate
    r3 = r2 + config.missing_row_rate
    stale = eligible & (bad[..., 0] < r1)
    spike = eligible & (bad[..., 0] >= r1) & (bad[..., 0] < r2)
    missing = eligible & (bad[..., 0] >= r2) & (bad[..., 0] < r3)

    prev_adj = np.vstack([adjusted[:1], adjusted[:-1]])
    close_out = np.where(stale, prev, close)
    open_ = np.where(stale, prev, open_)
    high = np.where(stale, prev, high)
    low = np.where(stale, prev, low)
    volume = np.where(stale, 0.0, volume)  # a stale print reports no trading
    adjusted = np.where(stale, prev_adj, adjusted)
    sign = np.where(bad[..., 1] < 0.5, 1.0, -1.0)
    size = 0.2 + 0.5 * ((bad[..., 1] * 2.0) % 1.0)
    factor = np.where(spike, np.exp(sign * size), 1.0)
    close_out = close_out * factor
    adjusted = adjusted * factor
    high = np.maximum(high, close_out)
    low = np.minimum(low, close_out)
    open_, high, low, close_out = _consistent(open_, high, low, close_out)
    return {"sessions": s, "open": open_, "high": high, "low": low, "close": close_out,
            "adjusted_close": adjusted, "volume": volume, "row": alive & ~missing,
            "stale": stale, "spike": spike, "missing": missing}


def index_bars(config: SyntheticMarketConfig, hist: EquityHistory,
               volume: np.ndarray) -> dict[str, np.ndarray]:
    """Cap-weighted index of the names from the truth (previous-close weights): ``close`` is
    the price index, ``adjusted_close`` the total-return index, both starting at 1000."""
    s = np.nonzero(hist.is_session)[0]
    close = hist.price[s]
    tr = hist.total_return[s]
    alive = hist.alive[s]
    ratio = hist.split_ratio[s].astype(float)
    k_n = len(s)
    price_ret = np.zeros(k_n)
    total_ret = np.zeros(k_n)
    if k_n > 1:
        both = alive[1:] & alive[:-1]
        w = np.where(both, close[:-1] * hist.shares[s][:-1], 0.0)
        wsum = np.maximum(w.sum(axis=1), 1e-12)
        pr = close[1:] * ratio[1:] / close[:-1] - 1.0
        trr = tr[1:] / tr[:-1] - 1.0
        price_ret[1:] = (np.where(both, pr, 0.0) * w).sum(axis=1) / wsum
        total_ret[1:] = (np.where(both, trr, 0.0) * w).sum(axis=1) / wsum
    level = INDEX_BASE * np.cumprod(1 + price_ret)
    adjusted = INDEX_BASE * np.cumprod(1 + total_ret)
    prev = np.concatenate([[level[0]], level[:-1]])
    vol = regime_param(config, "market_vol")[hist.regime[s]] / np.sqrt(TRADING_DAYS)
    z = DayDraws(config.seed, f"ohlc_index:{hist.universe.market_id}",
                 {"z": ("normal", (3,))}).all(len(hist.days))["z"][s]
    open_, high, low = _bars(prev, level, 0.5 * vol, z)
    open_, high, low, level = _consistent(open_, high, low, level)
    return {"open": open_, "high": high, "low": low, "close": level,
            "adjusted_close": adjusted, "volume": np.maximum(np.where(alive, volume, 0.0)
                                                              .sum(axis=1), 1.0)}


def prices_frame(config: SyntheticMarketConfig, hist: EquityHistory, currency: str,
                 bars: dict[str, np.ndarray]) -> pd.DataFrame:
    """All price rows of a market (names and index), sorted by date then instrument."""
    u = hist.universe
    s = bars["sessions"]
    dates = hist.days.values[s]
    k, i = np.nonzero(bars["row"])
    names = pd.DataFrame({
        "market_id": u.market_id,
        "instrument_id": u.instrument_ids[i],
        "date": dates[k],
        **{c: bars[c][k, i] for c in ("open", "high", "low", "close", "adjusted_close",
                                      "volume")},
        "currency": currency,
    })
    idx = index_bars(config, hist, np.where(bars["row"], bars["volume"], 0.0))
    index = pd.DataFrame({
        "market_id": u.market_id, "instrument_id": index_id(u.market_id), "date": dates,
        **idx, "currency": currency,
    })
    out = pd.concat([index, names], ignore_index=True)
    out = out.sort_values(["date", "instrument_id"], kind="mergesort", ignore_index=True)
    return out[PRICE_COLUMNS]


def corporate_actions_frame(hist: EquityHistory, currency: str) -> pd.DataFrame:
    u = hist.universe
    sess = hist.is_session[:, None]
    rows: list[tuple[int, int, str, float | None, str]] = []  # (day, name, type, value, details)
    t, i = np.nonzero((hist.dividend > 0) & sess)
    for tt, ii in zip(t.tolist(), i.tolist(), strict=True):
        rows.append((tt, ii, "DIVIDEND", float(hist.dividend[tt, ii]),
                     json.dumps({"currency": currency, "frequency": "quarterly"})))
    t, i = np.nonzero((hist.split_ratio != 1) & sess)
    for tt, ii in zip(t.tolist(), i.tolist(), strict=True):
        r = float(hist.split_ratio[tt, ii])
        rows.append((tt, ii, "SPLIT", r, json.dumps({"ratio": f"{r:g}-for-1"})))
    for e in hist.events:
        if e.kind == DEFAULT:
            rows.append((e.event_day, e.name, "DELISTING", None,
                         json.dumps({"reason": "insolvency"})))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return pd.DataFrame({
        "market_id": u.market_id,
        "instrument_id": pd.Series(u.instrument_ids[[r[1] for r in rows]], dtype=object),
        "date": pd.DatetimeIndex(hist.days.values[[r[0] for r in rows]]),
        "action_type": pd.Series([r[2] for r in rows], dtype=object),
        "value": pd.Series([r[3] for r in rows], dtype=float),
        "details": pd.Series([r[4] for r in rows], dtype=object),
    })[ACTION_COLUMNS]


def fx_frame(config: SyntheticMarketConfig, glob: GlobalState, us: RegionalState,
             eu: RegionalState, is_session: np.ndarray) -> pd.DataFrame:
    """Daily bars of the FX pairs: log moves load on US risk appetite and the EU-US equity
    difference; their vol scales with the global regime."""
    days = glob.days
    s = np.nonzero(is_session)[0]
    mult = regime_param(config, "idio_vol_multiplier")[glob.regime]
    vol_mult = regime_param(config, "volume_multiplier")[glob.regime]
    frames = []
    for pair, p in config.fx_pairs.items():
        d = DayDraws(config.seed, f"fx:{pair}", {"z": ("normal", (5,))}).all(len(days))["z"]
        sigma = p.annual_vol / np.sqrt(TRADING_DAYS) * mult
        move = (p.risk_beta * us.market_return
                + p.europe_beta * (eu.market_return - us.market_return)
                + sigma * d[:, 0] - 0.5 * sigma * sigma)
        close = p.initial_rate * np.exp(np.cumsum(move))[s]
        prev = np.concatenate([[close[0]], close[:-1]])
        open_, high, low = _bars(prev, close, 0.5 * sigma[s], d[s, 1:4])
        open_, high, low, close = _consistent(open_, high, low, close, decimals=6)
        frames.append(pd.DataFrame({
            "market_id": config.fx_market, "instrument_id": f"FX:{pair}",
            "date": days.values[s], "open": open_, "high": high, "low": low, "close": close,
            "adjusted_close": close,
            "volume": np.round(1e9 * vol_mult[s] * np.exp(0.2 * d[s, 4])),
            "currency": pair[3:6] if len(pair) == 6 else "USD",
        }))
    if not frames:
        return pd.DataFrame({c: [] for c in PRICE_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["date", "instrument_id"], kind="mergesort",
                           ignore_index=True)[PRICE_COLUMNS]
