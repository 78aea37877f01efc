"""Macro series driven by the hidden regimes and the regional market factors.

Daily (weekday) series: implied-vol indices (the market factor's conditional vol plus a risk
premium and noise), credit spreads (mean-reverting toward a regime level and widening when
equities fall; HY a multiple of IG), the US 3m rate (drifting with the regime: cuts in
sell-offs and crashes), the curve (10y = 3m + a regime-driven slope), the EU 10y, oil (a risk
asset) and gold (a haven). Monthly series (US CPI YoY, US unemployment) are observed at each
month end and dated on the first weekday after it plus a release lag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig
from prometheus_dagster.engines.synthetic_market.regimes import (
    TRADING_DAYS,
    GlobalState,
    RegionalState,
    regime_param,
)
from prometheus_dagster.engines.synthetic_market.rng import DayDraws

DAILY_SERIES = (
    "US_IMPLIED_VOL", "EU_IMPLIED_VOL", "US_CREDIT_SPREAD_IG", "US_CREDIT_SPREAD_HY",
    "EU_CREDIT_SPREAD", "US_RATE_3M", "US_RATE_10Y", "EU_RATE_10Y", "OIL", "GOLD",
)
MONTHLY_SERIES = ("US_CPI_YOY", "US_UNEMPLOYMENT")


@dataclass(frozen=True)
class MacroState:
    days: pd.DatetimeIndex
    daily: dict[str, np.ndarray]
    monthly: pd.DataFrame  # series_id, date, value, frequency


def simulate_macro(config: SyntheticMarketConfig, glob: GlobalState, us: RegionalState,
                   eu: RegionalState) -> MacroState:
    days = glob.days
    n = len(days)
    z = DayDraws(config.seed, "macro", {"z": ("normal", (12,))}).all(n)["z"]
    ig_target = regime_param(config, "credit_spread_ig")
    rate_drift = regime_param(config, "rate_drift")
    slope_target = regime_param(config, "curve_slope")
    unemp_drift = regime_param(config, "unemployment_drift")
    out = {k: np.empty(n) for k in DAILY_SERIES}
    cpi_path, unemp_path = np.empty(n), np.empty(n)
    ig, hy_x, eu_sp = 1.0, 0.0, 1.1
    vx_us, vx_eu = 0.0, 0.0
    r3m, slope, eu_gap = 2.4, 0.4, -2.2
    oil, gold = np.log(55.0), np.log(1290.0)
    cpi, unemp = 2.0, 3.9
    sq = np.sqrt(TRADING_DAYS)
    for t in range(n):
        zt = z[t]
        g, ru, re = glob.regime[t], us.regime[t], eu.regime[t]
        mu, me = us.market_return[t], eu.market_return[t]
        ig = max(0.3, ig + 0.04 * (ig_target[ru] - ig) - 1.5 * mu + 0.02 * np.sqrt(ig) * zt[0])
        hy_x = 0.98 * hy_x + 0.05 * zt[1]
        eu_sp = max(0.3, eu_sp + 0.04 * (1.1 * ig_target[re] - eu_sp) - 1.5 * me
                    + 0.02 * np.sqrt(eu_sp) * zt[2])
        vx_us = 0.9 * vx_us + 0.8 * zt[3]
        vx_eu = 0.9 * vx_eu + 0.8 * zt[4]
        r3m = max(0.05, r3m + rate_drift[g] / TRADING_DAYS + 0.3 / sq * zt[5])
        slope += 0.02 * (slope_target[g] - slope) + 0.03 * zt[6]
        eu_gap = 0.995 * eu_gap + 0.005 * -2.2 + 0.02 * zt[7]
        oil += 0.8 * mu + 0.30 / sq * zt[8]
        gold += 0.03 / TRADING_DAYS - 0.15 * mu + 0.14 / sq * zt[9]
        cpi += 0.003 * (2.3 - cpi) - (0.5 / TRADING_DAYS if g in (2, 3) else 0.0) \
            + 0.03 * zt[10]
        unemp = float(np.clip(unemp + unemp_drift[g] / TRADING_DAYS
                              + 0.2 * (4.5 - unemp) / TRADING_DAYS + 0.01 * zt[11], 3.0, 15.0))
        us10 = max(r3m + slope, 0.3)
        out["US_IMPLIED_VOL"][t] = max(9.0, 100 * sq * us.market_vol[t] * 1.15 + 2.0 + vx_us)
        out["EU_IMPLIED_VOL"][t] = max(9.0, 100 * sq * eu.market_vol[t] * 1.15 + 2.5 + vx_eu)
        out["US_CREDIT_SPREAD_IG"][t] = ig
        out["US_CREDIT_SPREAD_HY"][t] = max(ig + 1.0, 3.2 * ig + hy_x)
        out["EU_CREDIT_SPREAD"][t] = eu_sp
        out["US_RATE_3M"][t] = r3m
        out["US_RATE_10Y"][t] = us10
        out["EU_RATE_10Y"][t] = us10 + eu_gap
        out["OIL"][t] = np.exp(oil)
        out["GOLD"][t] = np.exp(gold)
        cpi_path[t], unemp_path[t] = cpi, unemp
    daily = {k: np.round(v, 4) for k, v in out.items()}
    return MacroState(days, daily, _monthly(config, days, cpi_path, unemp_path))


def _monthly(config: SyntheticMarketConfig, days: pd.DatetimeIndex, cpi: np.ndarray,
             unemp: np.ndarray) -> pd.DataFrame:
    month_ends = pd.date_range(days[0], days[-1], freq="ME")
    idx = np.searchsorted(days, month_ends, side="right") - 1
    rows = []
    for series, path, lag in (("US_CPI_YOY", cpi, config.cpi_release_lag_days),
                              ("US_UNEMPLOYMENT", unemp, config.unemployment_release_lag_days)):
        release = month_ends + pd.offsets.BDay(1 + lag)
        keep = release <= days[-1]
        rows.append(pd.DataFrame({"series_id": series, "date": release[keep],
                                  "value": np.round(path[idx][keep], 1), "frequency": "M"}))
    return pd.concat(rows, ignore_index=True)


def macro_frame(state: MacroState) -> pd.DataFrame:
    """All macro rows, sorted by date and series."""
    daily = pd.concat([
        pd.DataFrame({"series_id": k, "date": state.days, "value": v, "frequency": "D"})
        for k, v in state.daily.items()
    ], ignore_index=True)
    out = pd.concat([daily, state.monthly], ignore_index=True)
    return out.sort_values(["date", "series_id"], kind="mergesort", ignore_index=True)
