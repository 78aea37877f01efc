"""The issuer universe of an equity market, fixed up front from the seed and the market config.

Each name draws its static attributes from its own generator (seed, market, name number), so the
first names of a market stay the same when ``n_instruments`` grows and nothing depends on the
simulated window. Attributes: sector and industry, size, starting price, market beta, specific
volatility, book-to-price, latent financial health (start and long-run mean), the persistent
drift behind momentum, revenue growth, margin, balance-sheet ratios, dividend policy, split
threshold, trading turnover and reporting habit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.synthetic_market.config import (
    SECTORS,
    SyntheticMarketConfig,
    symbol_prefix,
)
from prometheus_dagster.engines.synthetic_market.rng import generator

INDUSTRIES = {
    "Information Technology": ("Software", "Semiconductors", "IT Services"),
    "Financials": ("Banks", "Insurance", "Capital Markets"),
    "Health Care": ("Pharmaceuticals", "Medical Devices", "Health Care Services"),
    "Industrials": ("Machinery", "Aerospace & Defense", "Transportation"),
    "Consumer Discretionary": ("Retail", "Automobiles", "Leisure"),
    "Consumer Staples": ("Food Products", "Beverages", "Household Products"),
    "Energy": ("Oil & Gas", "Energy Equipment"),
    "Materials": ("Chemicals", "Metals & Mining", "Packaging"),
    "Utilities": ("Electric Utilities", "Gas Utilities"),
    "Communication Services": ("Telecom", "Media"),
    "Real Estate": ("REITs", "Real Estate Development"),
}
# sector: (beta shift, ebitda margin, debt ratio shift, book-to-price shift, dividend payer prob)
SECTOR_TRAITS = {
    "Information Technology": (0.15, 0.26, -0.10, -0.35, 0.45),
    "Financials": (0.10, 0.32, 0.10, 0.30, 0.80),
    "Health Care": (-0.05, 0.22, -0.05, -0.10, 0.55),
    "Industrials": (0.05, 0.15, 0.00, 0.00, 0.65),
    "Consumer Discretionary": (0.15, 0.12, 0.00, -0.10, 0.50),
    "Consumer Staples": (-0.30, 0.15, 0.00, -0.05, 0.85),
    "Energy": (0.10, 0.20, 0.05, 0.35, 0.75),
    "Materials": (0.05, 0.17, 0.02, 0.20, 0.70),
    "Utilities": (-0.40, 0.32, 0.15, 0.25, 0.95),
    "Communication Services": (0.00, 0.28, 0.05, 0.00, 0.55),
    "Real Estate": (-0.15, 0.45, 0.20, 0.30, 0.90),
}
NAME_WORDS = (
    "Apex", "Northwind", "Blue Ridge", "Silverline", "Crescent", "Summit", "Harbor", "Ironwood",
    "Meridian", "Pioneer", "Redstone", "Evergreen", "Atlas", "Beacon", "Cobalt", "Falcon",
    "Granite", "Horizon", "Keystone", "Lakeshore", "Maple", "Nova", "Orion", "Pinnacle",
    "Quantum", "Riverside", "Sterling", "Titan", "Unity", "Vertex", "Westfield", "Zenith",
    "Aurora", "Bristle", "Cedar", "Delta", "Ember", "Fjord", "Glacier", "Helix",
)
SECTOR_WORDS = {
    "Information Technology": ("Systems", "Software", "Micro", "Networks", "Digital"),
    "Financials": ("Bancorp", "Financial", "Capital", "Assurance", "Trust"),
    "Health Care": ("Pharma", "Biosciences", "Medical", "Health", "Therapeutics"),
    "Industrials": ("Industries", "Machines", "Aerospace", "Logistics", "Engineering"),
    "Consumer Discretionary": ("Retail", "Motors", "Brands", "Leisure", "Apparel"),
    "Consumer Staples": ("Foods", "Beverages", "Household", "Farms", "Grocers"),
    "Energy": ("Petroleum", "Energy", "Drilling", "Resources", "Oil"),
    "Materials": ("Chemicals", "Mining", "Materials", "Steel", "Packaging"),
    "Utilities": ("Power", "Utilities", "Electric", "Gas", "Water"),
    "Communication Services": ("Telecom", "Media", "Communications", "Broadcasting", "Wireless"),
    "Real Estate": ("Properties", "Realty", "Estates", "Land", "REIT"),
}
REGION_COUNTRIES = {"US": ("US",), "EU": ("DE", "FR", "NL"), "JP": ("JP",), "ASIA": ("HK",)}
LEGAL_SUFFIX = {"US": ("Inc.", "Corp."), "DE": ("AG", "SE"), "FR": ("SA",), "NL": ("NV",),
                "IT": ("SpA",), "ES": ("SA",), "GB": ("plc",), "JP": ("KK",), "HK": ("Ltd",)}


@dataclass(frozen=True)
class Universe:
    """Static attributes of a market's names, as arrays aligned by name."""

    market_id: str
    currency: str
    exchange: str
    symbols: np.ndarray
    names: np.ndarray
    sector: np.ndarray          # index into sector_names
    sector_names: tuple[str, ...]
    industry: np.ndarray
    country: np.ndarray
    log_cap0: np.ndarray
    price0: np.ndarray
    beta: np.ndarray
    specific_vol: np.ndarray    # annual
    low_vol_score: np.ndarray   # standardised -log(specific_vol)
    book_to_price0: np.ndarray
    health0: np.ndarray
    health_mean: np.ndarray
    drift0: np.ndarray          # persistent latent drift (annual)
    growth: np.ndarray          # annual revenue growth
    margin: np.ndarray          # EBITDA margin at average health
    debt_ratio: np.ndarray      # debt / assets at average health
    other_liabilities: np.ndarray
    short_term_share: np.ndarray
    cash_ratio: np.ndarray
    capex_ratio: np.ndarray
    asset_turnover: np.ndarray  # annual revenue / assets
    dividend_yield: np.ndarray  # 0 for non-payers
    dividend_month: np.ndarray  # month within the quarter of the ex-date (0..2)
    dividend_day: np.ndarray
    split_threshold: np.ndarray
    share_turnover: np.ndarray  # daily volume / shares outstanding
    report_lag: np.ndarray      # typical days from period end to report

    @property
    def n(self) -> int:
        return len(self.symbols)

    @cached_property
    def instrument_ids(self) -> np.ndarray:
        return np.array([f"EQUITY:{s}" for s in self.symbols], dtype=object)

    @cached_property
    def issuer_ids(self) -> np.ndarray:
        return np.array([f"ISS:{s}" for s in self.symbols], dtype=object)


def build_universe(config: SyntheticMarketConfig, market_id: str, currency: str,
                   exchange: str, region: str) -> Universe:
    market = config.markets[market_id]
    prefix = symbol_prefix(market_id, market)
    sectors = SECTORS[: market.n_sectors]
    countries = market.countries or REGION_COUNTRIES.get(region, (region,))
    lag_lo, lag_hi = config.report_lag_days
    rows: dict[str, list] = {k: [] for k in (
        "symbols", "names", "sector", "industry", "country", "log_cap0", "price0", "beta",
        "specific_vol", "book_to_price0", "health0", "health_mean", "drift0", "growth",
        "margin", "debt_ratio", "other_liabilities", "short_term_share", "cash_ratio",
        "capex_ratio", "asset_turnover", "dividend_yield", "dividend_month", "dividend_day",
        "split_threshold", "share_turnover", "report_lag")}
    log_median = np.log(market.median_market_cap)
    for i in range(market.n_instruments):
        rng = generator(config.seed, f"universe:{market_id}", i)
        u = rng.random(16)
        z = rng.standard_normal(12)
        k = int(u[0] * len(sectors))
        sector = sectors[k]
        beta_shift, margin, debt_shift, bp_shift, payer_p = SECTOR_TRAITS[sector]
        country = countries[int(u[1] * len(countries))]
        suffixes = LEGAL_SUFFIX.get(country, ("Ltd",))
        name = (f"{NAME_WORDS[int(u[2] * len(NAME_WORDS))]} "
                f"{SECTOR_WORDS[sector][int(u[3] * len(SECTOR_WORDS[sector]))]} "
                f"{suffixes[int(u[4] * len(suffixes))]}")
        size_z = z[0]
        rows["symbols"].append(f"{prefix}{i + 1:04d}")
        rows["names"].append(name)
        rows["sector"].append(k)
        rows["industry"].append(INDUSTRIES[sector][int(u[5] * len(INDUSTRIES[sector]))])
        rows["country"].append(country)
        rows["log_cap0"].append(log_median + market.market_cap_dispersion * size_z)
        rows["price0"].append(float(np.exp(np.log(8.0) + u[6] * np.log(400.0 / 8.0))))
        rows["beta"].append(float(np.clip(1.0 + beta_shift + 0.22 * z[1], 0.35, 1.9)))
        rows["specific_vol"].append(
            config.factors.specific_vol_median * float(np.exp(0.3 * z[2] - 0.12 * size_z)))
        rows["book_to_price0"].append(float(np.exp(np.log(0.45) + bp_shift + 0.45 * z[3])))
        rows["health_mean"].append(0.5 * z[4])
        rows["health0"].append(0.5 * z[4] + 0.85 * z[5])
        rows["drift0"].append(config.factors.momentum_sd * z[6])
        rows["growth"].append(0.05 + 0.04 * z[7])
        rows["margin"].append(float(np.clip(margin + 0.04 * z[8], 0.03, 0.6)))
        other = 0.15 + 0.15 * u[7]
        rows["other_liabilities"].append(other)
        rows["debt_ratio"].append(float(np.clip(0.33 + debt_shift + 0.08 * z[9], 0.03,
                                                0.85 - other)))
        rows["short_term_share"].append(0.10 + 0.25 * u[8])
        rows["cash_ratio"].append(0.04 + 0.11 * u[9])
        rows["capex_ratio"].append(0.03 + 0.06 * u[10])
        turnover = 0.4 + 0.8 * u[11]
        if sector in ("Utilities", "Real Estate", "Financials"):
            turnover *= 0.4
        rows["asset_turnover"].append(turnover)
        rows["dividend_yield"].append(0.01 + 0.035 * u[12] if u[13] < payer_p else 0.0)
        rows["dividend_month"].append(int(u[14] * 3))
        rows["dividend_day"].append(3 + int(u[15] * 23))
        rows["split_threshold"].append(float(250.0 + 450.0 * rng.random()))
        rows["share_turnover"].append(0.006 * float(np.exp(0.4 * z[10] - 0.1 * size_z)))
        base_lag = lag_lo + 0.2 * (lag_hi - lag_lo) + 0.6 * (lag_hi - lag_lo) * rng.random()
        rows["report_lag"].append(base_lag)
    arrays = {k: np.asarray(v, dtype=object if k in ("symbols", "names", "industry",
                                                      "country") else None)
              for k, v in rows.items()}
    log_vol = np.log(arrays["specific_vol"].astype(float))
    sd = log_vol.std()
    arrays["low_vol_score"] = -(log_vol - log_vol.mean()) / (sd if sd > 0 else 1.0)
    return Universe(market_id=market_id, currency=currency, exchange=exchange,
                    sector_names=tuple(sectors), **arrays)


def issuers_frame(u: Universe) -> pd.DataFrame:
    meta = [json.dumps({"symbol": s, "source": "embedded"}) for s in u.symbols]
    return validate_frame("issuers", pd.DataFrame({
        "issuer_id": u.issuer_ids,
        "issuer_type": "COMPANY",
        "name": u.names,
        "country": u.country,
        "sector": np.asarray(u.sector_names, dtype=object)[u.sector],
        "industry": u.industry,
        "market_id": u.market_id,
        "metadata": meta,
    }))


def instruments_frame(u: Universe, listed: pd.Timestamp | None) -> pd.DataFrame:
    """The market's equities plus its cap-weighted index ``INDEX:<market_id>``."""
    equities = pd.DataFrame({
        "instrument_id": u.instrument_ids,
        "issuer_id": u.issuer_ids,
        "market_id": u.market_id,
        "asset_class": "EQUITY",
        "symbol": u.symbols,
        "exchange": u.exchange,
        "currency": u.currency,
        "multiplier": 1.0,
        "status": "ACTIVE",
        "listed_date": listed,
    })
    index = pd.DataFrame([{
        "instrument_id": index_id(u.market_id), "issuer_id": None, "market_id": u.market_id,
        "asset_class": "INDEX", "symbol": u.market_id, "exchange": u.exchange,
        "currency": u.currency, "multiplier": 1.0, "status": "ACTIVE", "listed_date": listed,
    }])
    return validate_frame("instruments", pd.concat([index, equities], ignore_index=True))


def index_id(market_id: str) -> str:
    return f"INDEX:{market_id}"
