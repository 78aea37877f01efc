"""The feature engine: pure functions (pandas/numpy in, pandas out) computing returns,
volatility and drawdowns, liquidity, factor returns, rolling factor exposures, market
internals and the numeric window features behind the encoders, vectorised across instruments
and dates, each row using only data dated on or before it.

Importing the package declares the output tables (``schemas``) and registers the ``features``
config model.
"""

from prometheus_dagster.engines.features.compute import (
    compute_factor_exposures,
    compute_factor_returns,
    compute_features,
    compute_liquidity,
    compute_market_correlation,
    compute_returns,
    compute_volatility,
)
from prometheus_dagster.engines.features.config import (
    FeaturesConfig,
    load_features_config,
    warmup_sessions,
)
from prometheus_dagster.engines.features.panel import FeatureInputs, adjusted_returns
from prometheus_dagster.engines.features.schemas import FACTOR_IDS, FEATURE_TABLES
from prometheus_dagster.engines.features.windows import (
    ENTITY_TYPES,
    FeaturePanel,
    build_numeric_window_features,
    build_numeric_windows,
    window_feature_names,
)

__all__ = [
    "ENTITY_TYPES",
    "FACTOR_IDS",
    "FEATURE_TABLES",
    "FeatureInputs",
    "FeaturePanel",
    "FeaturesConfig",
    "adjusted_returns",
    "build_numeric_window_features",
    "build_numeric_windows",
    "compute_factor_exposures",
    "compute_factor_returns",
    "compute_features",
    "compute_liquidity",
    "compute_market_correlation",
    "compute_returns",
    "compute_volatility",
    "load_features_config",
    "warmup_sessions",
    "window_feature_names",
]
