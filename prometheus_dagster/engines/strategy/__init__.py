"""Strategies (docs/engines/strategy.md): versioned, typed strategy configs loaded from
``configs/strategies/*.yaml``, each embedding its universe rules (docs/engines/universe.md),
portfolio limits (docs/engines/portfolio.md) and risk-report settings. Importing the package
registers the ``strategy`` config."""

from prometheus_dagster.engines.strategy.config import (
    KINDS,
    TRADING_DAYS,
    PortfolioLimits,
    RiskReportSettings,
    StrategyConfig,
)
from prometheus_dagster.engines.strategy.loader import load_strategies, portfolio_id

__all__ = ["KINDS", "TRADING_DAYS", "PortfolioLimits", "RiskReportSettings", "StrategyConfig",
           "load_strategies", "portfolio_id"]
