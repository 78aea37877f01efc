"""Configuration of the feature engine (``configs/engines/features.yaml``).

Windows that name output columns (``ret_21d``, ``vol_63d``, ``max_drawdown_252d``...) are fixed
by the table schemas (``engines.features.schemas``); this config holds everything else.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import VersionedConfig, register_config_model
from prometheus_dagster.engines.features.schemas import (
    CORRELATION_WINDOW,
    DRAWDOWN_WINDOW,
    FACTOR_IDS,
    LIQUIDITY_WINDOW,
    RETURN_HORIZONS,
    VOL_WINDOWS,
)

FactorId = Literal["MARKET", "SIZE", "VALUE", "MOMENTUM", "LOW_VOL", "QUALITY"]

# Fixed affine standardisation of the numeric window features: (x - centre) / scale, chosen so
# that a typical equity lands in [-2, 2]; series that are logs say so in their name.
DEFAULT_WINDOW_FEATURE_SCALES: dict[str, tuple[float, float]] = {
    "ret_1d": (0.0, 0.02),
    "ret_5d": (0.0, 0.045),
    "ret_21d": (0.0, 0.09),
    "rel_ret_1d": (0.0, 0.015),
    "rel_ret_21d": (0.0, 0.07),
    "log_vol_21d": (math.log(0.2), 0.5),
    "log_vol_63d": (math.log(0.2), 0.5),
    "drawdown": (-0.1, 0.1),
    "log_rel_volume": (0.0, 0.5),
    "leverage": (0.6, 0.2),
    "roe": (0.1, 0.15),
    "net_margin": (0.08, 0.1),
    "log_interest_coverage": (math.log(8.0), 1.0),
    "log_cash_to_st_debt": (0.0, 1.0),
}


@register_config_model("features")
class FeaturesConfig(VersionedConfig):
    """Parameters of returns, risk, liquidity, factor and window-feature computations."""

    engine: Literal["features"] = "features"
    version: str = "1"

    annualisation_days: int = Field(252, gt=0, description="vol = daily std * sqrt(this)")
    min_obs_fraction: float = Field(
        0.8, gt=0, le=1,
        description="a rolling statistic needs at least ceil(fraction * window) observations")

    # universes (by instruments.asset_class; all names when no instruments table is given)
    universe_asset_classes: tuple[str, ...] = Field(
        ("EQUITY", "FX", "FUTURE"),
        description="names in the market index, breadth, dispersion and correlation")
    factor_asset_classes: tuple[str, ...] = Field(
        ("EQUITY",), description="names sorted into the long-short factor portfolios")

    # factor returns
    factors: tuple[FactorId, ...] = FACTOR_IDS  # type: ignore[assignment]
    market_weighting: Literal["cap", "equal"] = Field(
        "cap", description="MARKET factor: previous-close market-cap or equal weights")
    quantiles: int = Field(5, ge=2, le=20, description="long top / short bottom quantile")
    min_names_per_bucket: int = Field(
        2, ge=1, description="a factor needs quantiles * this many eligible names on a date")
    momentum_lookback: int = Field(252, ge=2, description="momentum window start (sessions)")
    momentum_skip: int = Field(21, ge=0, description="most recent sessions left out")
    value_measure: Literal["book_to_price", "earnings_yield"] = "book_to_price"
    quality_measure: Literal["roe", "ebitda_to_assets"] = "roe"
    size_proxy_min_coverage: float = Field(
        0.5, ge=0, le=1,
        description="below this share of names with a market cap, SIZE sorts on log ADV")
    fundamentals_max_age_days: int = Field(
        400, gt=0, description="a statement older than this (since report_date) is not used")

    # rolling betas
    beta_window: int = Field(126, ge=2)
    beta_min_obs: int = Field(63, ge=2)
    regression_return_clip: float | None = Field(
        0.5, gt=0, description="|instrument return| clipped to this in beta regressions")

    # numeric window features
    window_feature_scales: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_WINDOW_FEATURE_SCALES))
    window_feature_clip: float = Field(5.0, gt=0, description="standardised values clipped")

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesConfig:
        if self.momentum_skip >= self.momentum_lookback:
            raise ValueError(
                f"momentum_skip ({self.momentum_skip}) must be below momentum_lookback "
                f"({self.momentum_lookback})")
        if self.beta_min_obs > self.beta_window:
            raise ValueError(
                f"beta_min_obs ({self.beta_min_obs}) must not exceed beta_window "
                f"({self.beta_window})")
        if len(set(self.factors)) != len(self.factors):
            raise ValueError(f"factors listed twice: {list(self.factors)}")
        missing = sorted(set(DEFAULT_WINDOW_FEATURE_SCALES) - set(self.window_feature_scales))
        if missing:
            raise ValueError(f"window_feature_scales lacks {missing}")
        bad = [k for k, (_, s) in self.window_feature_scales.items() if not s > 0]
        if bad:
            raise ValueError(f"window_feature_scales: scale must be > 0 for {bad}")
        return self

    def min_obs(self, window: int) -> int:
        """Observations a rolling statistic over ``window`` sessions needs."""
        return max(1, math.ceil(self.min_obs_fraction * window - 1e-9))


def warmup_sessions(table: str, config: FeaturesConfig | None = None) -> int:
    """Sessions of price history needed before an output date so that every window behind that
    date's rows is fully covered; with at least this much history, results do not depend on how
    much more history is given."""
    cfg = config or FeaturesConfig()
    characteristics = 1 + max(cfg.momentum_lookback, max(VOL_WINDOWS), LIQUIDITY_WINDOW)
    by_table = {
        "returns_daily": max(RETURN_HORIZONS),
        "volatility_daily": max(max(VOL_WINDOWS), DRAWDOWN_WINDOW - 1),
        "liquidity_daily": LIQUIDITY_WINDOW,
        "factors_daily": characteristics,
        "instrument_factors_daily": cfg.beta_window - 1 + characteristics,
        "market_correlation_daily": max(CORRELATION_WINDOW, 1),
    }
    if table not in by_table:
        raise KeyError(f"unknown feature table {table!r}; known: {', '.join(by_table)}")
    return by_table[table]


def load_features_config() -> tuple[FeaturesConfig, str]:
    """The configured ``FeaturesConfig`` and its ``config_id``."""
    from prometheus_dagster.core.config import load_engine_config

    loaded = load_engine_config("features")
    return loaded.typed(FeaturesConfig), loaded.config_id
