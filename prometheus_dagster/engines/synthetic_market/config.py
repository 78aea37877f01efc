"""Configuration of the embedded synthetic market (``configs/engines/synthetic_market.yaml``).

Everything that shapes the simulated world is a field here: the seed and the simulated window,
the equity markets and their size, the FX pairs, the hidden regime process (durations,
transition weights and what each regime does to drift, volatility, correlation, spreads and
volumes), the factor premia, the distress process and the bad-data rates. Defaults give the
demo world (two equity markets of 120 and 80 names plus three FX pairs); the reference workload
is the same model with ``n_instruments: 500`` and a 20-year window.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

REGIMES: tuple[str, ...] = ("CALM", "HIGH_VOL", "GRINDING", "CRASH", "RECOVERY")
RISK_OFF: tuple[str, ...] = ("GRINDING", "CRASH")
SECTORS: tuple[str, ...] = (
    "Information Technology", "Financials", "Health Care", "Industrials",
    "Consumer Discretionary", "Consumer Staples", "Energy", "Materials", "Utilities",
    "Communication Services", "Real Estate",
)
# First and last dates exchange_calendars is asked about (core.calendars).
MIN_DATE = dt.date(2000, 1, 3)
MAX_DATE = dt.date(2030, 12, 31)


class EquityMarketConfig(StrictModel):
    """One simulated equity market: its universe and how its market factor relates to the
    global one."""

    n_instruments: int = Field(120, ge=1, le=5000, description="listed names (one issuer each)")
    n_sectors: int = Field(11, ge=1, le=len(SECTORS), description="first n of SECTORS")
    symbol_prefix: str | None = Field(
        None, min_length=1, max_length=4,
        description="symbols are <prefix><0001>; default: the market id's first two letters")
    countries: tuple[str, ...] = Field(
        (), description="issuer countries drawn uniformly; default: the market's region")
    global_loading: float = Field(
        0.85, ge=0, le=1, description="correlation of the regional market shock with the global")
    median_market_cap: float = Field(8e9, gt=0, description="in the market's currency")
    market_cap_dispersion: float = Field(1.0, gt=0, le=3, description="sd of log market cap")
    local_stress_rate: float = Field(
        0.003, ge=0, le=1, description="daily chance that the region escalates one notch alone")
    local_stress_days: float = Field(15.0, ge=1, description="mean length of a local escalation")


class FxPairConfig(StrictModel):
    """One FX pair (``EURUSD``: price of 1 EUR in USD)."""

    initial_rate: float = Field(gt=0)
    annual_vol: float = Field(0.08, gt=0, le=1)
    risk_beta: float = Field(
        0.0, description="loading on the US market factor (positive: rises in risk-on)")
    europe_beta: float = Field(
        0.0, description="loading on the EU minus US market factor difference")


class RegimeParams(StrictModel):
    """What one hidden regime does. Rates and vols are annualised; spreads in percent."""

    mean_duration_days: float = Field(gt=1, description="mean stay, in business days")
    market_drift: float = Field(description="annual drift of the market factor")
    market_vol: float = Field(gt=0, description="annual vol of the market factor")
    idio_vol_multiplier: float = Field(gt=0, description="scales sector and specific vols")
    jump_probability: float = Field(ge=0, le=1, description="daily chance of a market jump")
    jump_mean: float = Field(description="mean log size of a market jump")
    jump_sd: float = Field(ge=0)
    credit_spread_ig: float = Field(gt=0, description="target US IG spread in percent")
    rate_drift: float = Field(description="percentage points per year of the 3m rate")
    curve_slope: float = Field(description="target 10y minus 3m, percentage points")
    volume_multiplier: float = Field(gt=0)
    distress_multiplier: float = Field(gt=0, description="scales issuers' distress hazard")
    unemployment_drift: float = Field(description="percentage points per year")


def _default_regimes() -> dict[str, RegimeParams]:
    rows = {
        #            dur  drift  vol  idio  jp     jm     jsd   ig   rate  slope volm dist unemp
        "CALM":     (150, 0.20, 0.09, 1.00, 0.002, 0.000, 0.010, 0.9, 0.4, 1.0, 1.0, 1.0, -0.4),
        "HIGH_VOL": (45, 0.05, 0.18, 1.25, 0.010, -0.015, 0.015, 1.3, 0.0, 0.7, 1.3, 1.5, 0.0),
        "GRINDING": (70, -0.25, 0.26, 1.35, 0.010, -0.020, 0.020, 2.0, -1.0, 0.6, 1.3, 2.5, 1.5),
        "CRASH":    (15, -1.60, 0.55, 1.80, 0.060, -0.035, 0.030, 3.2, -4.0, 1.2, 2.2, 4.0, 6.0),
        "RECOVERY": (60, 0.50, 0.18, 1.20, 0.004, 0.000, 0.015, 1.5, -0.2, 1.8, 1.3, 1.2, -0.8),
    }
    names = ("mean_duration_days", "market_drift", "market_vol", "idio_vol_multiplier",
             "jump_probability", "jump_mean", "jump_sd", "credit_spread_ig", "rate_drift",
             "curve_slope", "volume_multiplier", "distress_multiplier", "unemployment_drift")
    return {k: RegimeParams(**dict(zip(names, v, strict=True))) for k, v in rows.items()}


def _default_transitions() -> dict[str, dict[str, float]]:
    """Relative weights of where a regime goes when it ends (normalised per row)."""
    return {
        "CALM": {"HIGH_VOL": 0.65, "GRINDING": 0.25, "CRASH": 0.10},
        "HIGH_VOL": {"CALM": 0.45, "GRINDING": 0.30, "CRASH": 0.25},
        "GRINDING": {"CRASH": 0.35, "RECOVERY": 0.45, "HIGH_VOL": 0.20},
        "CRASH": {"RECOVERY": 0.80, "GRINDING": 0.20},
        "RECOVERY": {"CALM": 0.75, "HIGH_VOL": 0.25},
    }


class FactorConfig(StrictModel):
    """Factor structure of equity returns. Premia are annual expected returns per unit of a
    cross-sectionally standardised characteristic, so signals built on observable data earn
    them."""

    value_premium: float = Field(0.04, description="per sd of log book-to-price")
    momentum_sd: float = Field(
        0.06, ge=0, description="sd of the persistent latent drift that past returns reveal")
    momentum_half_life_days: float = Field(120.0, gt=1)
    low_vol_premium: float = Field(0.02, description="per sd of lower specific volatility")
    size_premium: float = Field(0.01, description="per sd of smaller log market cap")
    quality_premium: float = Field(0.03, description="per sd of latent financial health")
    sector_vol: float = Field(0.06, ge=0, description="annual vol of each sector factor")
    style_vol: float = Field(0.03, ge=0, description="annual vol of size/value/momentum shocks")
    specific_vol_median: float = Field(0.21, gt=0, description="median annual specific vol")
    t_degrees_of_freedom: float = Field(5.0, gt=2.05, description="Student-t innovations")
    garch_alpha: float = Field(0.08, ge=0, lt=1)
    garch_beta: float = Field(0.90, ge=0, lt=1)
    stochastic_vol_sd: float = Field(
        0.5, ge=0, le=1.5, description="sd of each name's slow log-vol component")
    stochastic_vol_half_life_days: float = Field(40.0, gt=1)
    specific_jump_probability: float = Field(0.002, ge=0, le=1)
    specific_jump_sd: float = Field(0.07, ge=0)
    earnings_jump_sd: float = Field(0.03, ge=0, description="report-day move per unit surprise")

    @model_validator(mode="after")
    def _stationary(self) -> FactorConfig:
        if self.garch_alpha + self.garch_beta >= 1:
            raise ValueError("garch_alpha + garch_beta must be below 1")
        return self


class DistressConfig(StrictModel):
    """Issuer distress: a daily hazard (higher for weak health and in risk-off regimes) starts a
    deterioration phase that ends in a crash or a default and delisting."""

    annual_rate: float = Field(
        0.01, ge=0, le=1, description="onset hazard per year at average health in CALM")
    health_sensitivity: float = Field(0.9, ge=0, description="hazard *= exp(-this * health)")
    min_duration_days: int = Field(60, ge=5, description="deterioration phase, business days")
    max_duration_days: int = Field(180, ge=5)
    default_probability: float = Field(0.35, ge=0, le=1, description="else a crash")
    health_drop: float = Field(3.0, ge=0, description="latent health lost over a phase")
    annual_drift: float = Field(-0.8, description="extra drift while deteriorating")
    vol_increase: float = Field(1.5, ge=0, description="specific vol *= 1 + this * progress")
    crash_trough: tuple[float, float] = Field(
        (0.25, 0.45), description="crash-day trough as a fraction of the peak")
    default_trough: tuple[float, float] = Field(
        (0.02, 0.10), description="last print before delisting as a fraction of the peak")
    peak_lookback_days: int = Field(21, ge=0, description="peak searched from onset - this")
    cooldown_days: int = Field(250, ge=0, description="no new onset this soon after a crash")

    @model_validator(mode="after")
    def _ranges(self) -> DistressConfig:
        if self.max_duration_days < self.min_duration_days:
            raise ValueError("max_duration_days must be >= min_duration_days")
        for name in ("crash_trough", "default_trough"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi < 0.5:
                raise ValueError(f"{name} must satisfy 0 < low <= high < 0.5")
        return self


def _default_markets() -> dict[str, EquityMarketConfig]:
    return {
        "US_EQ": EquityMarketConfig(n_instruments=120, countries=("US",)),
        "EU_EQ": EquityMarketConfig(
            n_instruments=80, global_loading=0.8, median_market_cap=6e9,
            countries=("DE", "FR", "NL", "IT", "ES")),
    }


def _default_fx() -> dict[str, FxPairConfig]:
    return {
        "EURUSD": FxPairConfig(initial_rate=1.14, annual_vol=0.07, risk_beta=0.05,
                               europe_beta=0.15),
        "USDJPY": FxPairConfig(initial_rate=109.0, annual_vol=0.08, risk_beta=0.25),
        "GBPUSD": FxPairConfig(initial_rate=1.27, annual_vol=0.08, risk_beta=0.08,
                               europe_beta=0.08),
    }


@register_config_model("synthetic_market")
class SyntheticMarketConfig(VersionedConfig):
    """The embedded market. Same config (seed included) => identical data; data for a date
    never depends on ``end_date``."""

    engine: Literal["synthetic_market"] = "synthetic_market"
    version: str = "1"
    seed: int = Field(42, ge=0)
    start_date: dt.date = dt.date(2019, 1, 2)
    end_date: dt.date = dt.date(2024, 12, 31)

    markets: dict[str, EquityMarketConfig] = Field(default_factory=_default_markets)
    fx_market: str = Field("FX_GLOB", description="market id that lists the FX pairs")
    fx_pairs: dict[str, FxPairConfig] = Field(default_factory=_default_fx)

    regimes: dict[str, RegimeParams] = Field(default_factory=_default_regimes)
    regime_transitions: dict[str, dict[str, float]] = Field(
        default_factory=_default_transitions)
    factors: FactorConfig = Field(default_factory=FactorConfig)
    distress: DistressConfig = Field(default_factory=DistressConfig)

    # data-vendor glitches on equity price rows (per row); the truth price path continues
    stale_price_rate: float = Field(0.0005, ge=0, le=0.1)
    spike_rate: float = Field(0.0005, ge=0, le=0.1)
    missing_row_rate: float = Field(0.0005, ge=0, le=0.1)

    news_rate: float = Field(
        0.004, ge=0, le=1, description="daily chance of a routine article per listed name")
    report_lag_days: tuple[int, int] = Field(
        (21, 55), description="statement published this many days after period end (range)")
    cpi_release_lag_days: int = Field(9, ge=0, description="business days after month end + 1")
    unemployment_release_lag_days: int = Field(4, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticMarketConfig:
        if not MIN_DATE <= self.start_date <= self.end_date <= MAX_DATE:
            raise ValueError(
                f"need {MIN_DATE} <= start_date <= end_date <= {MAX_DATE}, got "
                f"{self.start_date}..{self.end_date}")
        if set(self.regimes) != set(REGIMES):
            raise ValueError(f"regimes must define exactly {list(REGIMES)}")
        for src, row in self.regime_transitions.items():
            if src not in REGIMES or any(dst not in REGIMES or dst == src for dst in row):
                raise ValueError(f"regime_transitions[{src!r}]: unknown or self transition")
            if any(w < 0 for w in row.values()) or sum(row.values()) <= 0:
                raise ValueError(f"regime_transitions[{src!r}]: weights must be >= 0, sum > 0")
        missing = [r for r in REGIMES if r not in self.regime_transitions]
        if missing:
            raise ValueError(f"regime_transitions lacks {missing}")
        if self.fx_market in self.markets:
            raise ValueError(f"fx_market {self.fx_market!r} is also an equity market")
        lo, hi = self.report_lag_days
        if not 1 <= lo <= hi <= 365:
            raise ValueError("report_lag_days must satisfy 1 <= low <= high <= 365")
        prefixes = [symbol_prefix(m, c) for m, c in self.markets.items()]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f"symbol prefixes must differ between markets: {prefixes}")
        if self.stale_price_rate + self.spike_rate + self.missing_row_rate > 0.3:
            raise ValueError("bad-data rates must add up to at most 0.3")
        return self

    @property
    def market_ids(self) -> list[str]:
        """Equity markets, then the FX market when pairs are configured."""
        return list(self.markets) + ([self.fx_market] if self.fx_pairs else [])


def symbol_prefix(market_id: str, market: EquityMarketConfig) -> str:
    """``US_EQ`` -> ``US`` unless the market config names a prefix."""
    return market.symbol_prefix or market_id.replace("_", "")[:2].upper()
