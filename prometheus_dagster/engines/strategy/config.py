"""A strategy as a versioned config (docs/engines/strategy.md): what it trades, which
assessment horizon drives its expected returns, its universe rules and its portfolio and
risk-report limits.

One YAML file per strategy under ``configs/strategies/`` (see ``loader``). Limits that depend
on the kind of book (LONG_ONLY or LONG_SHORT) are checked against it, and errors name the
field at fault.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model
from prometheus_dagster.engines.features.schemas import FACTOR_IDS
from prometheus_dagster.engines.universe.rules import UniverseRules

KINDS: tuple[str, ...] = ("LONG_ONLY", "LONG_SHORT")
FactorId = Literal["MARKET", "SIZE", "VALUE", "MOMENTUM", "LOW_VOL", "QUALITY"]
assert set(FactorId.__args__) == set(FACTOR_IDS)  # type: ignore[attr-defined]
TRADING_DAYS = 252


def _ordered_pair(lo: float | None, hi: float | None, what: str) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{what}_min_net {lo} exceeds {what}_max_net {hi}")


class PortfolioLimits(StrictModel):
    """Objective weights and constraints of the optimiser (docs/engines/portfolio.md), in
    fractions of NAV."""

    risk_aversion: float = Field(gt=0, description="lambda of w'mu - lambda w'Sigma w")
    budget: float = Field(description="sum of weights: 1 long-only, 0 market-neutral")
    max_weight: float = Field(gt=0, le=1, description="largest weight of one name")
    min_weight: float = Field(0.0, ge=-1, le=0,
                              description="smallest weight of one name (< 0: shorts allowed)")
    gross_limit: float | None = Field(None, gt=0, description="max sum |w|")
    sector_max_net: float | None = Field(None, description="max net weight of every sector")
    sector_min_net: float | None = Field(None, description="min net weight of every sector")
    country_max_net: float | None = Field(None, description="max net weight of every country")
    country_min_net: float | None = Field(None, description="min net weight of every country")
    factor_limits: dict[FactorId, tuple[float, float]] = Field(
        default_factory=dict, description="factor id -> [min, max] of the exposure B'w")
    turnover_limit: float | None = Field(None, ge=0, description="max one-way sum |w - w_prev|")
    cost_bps: float = Field(0.0, ge=0, description="cost per unit traded, basis points of NAV")
    soft_target_budget: float | None = Field(
        None, ge=0, description="max gross weight in WATCHLIST and SOFT_TARGET names")
    mu_scale: float | Literal["annualised"] = Field(
        "annualised", description="factor from the assessment's expected return over the "
                                  "horizon to the optimiser's mu; 'annualised' = 252 / horizon")

    @field_validator("mu_scale")
    @classmethod
    def _positive_scale(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and v <= 0:
            raise ValueError(f"mu_scale must be > 0 or 'annualised', got {v}")
        return v

    @field_validator("factor_limits")
    @classmethod
    def _factor_ranges(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for factor, (lo, hi) in v.items():
            if lo > hi:
                raise ValueError(f"factor_limits.{factor}: min {lo} exceeds max {hi}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PortfolioLimits:
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight {self.min_weight} exceeds max_weight "
                             f"{self.max_weight}")
        _ordered_pair(self.sector_min_net, self.sector_max_net, "sector")
        _ordered_pair(self.country_min_net, self.country_max_net, "country")
        if self.gross_limit is not None and abs(self.budget) > self.gross_limit:
            raise ValueError(f"|budget| {abs(self.budget)} exceeds gross_limit "
                             f"{self.gross_limit}")
        return self


class RiskReportSettings(StrictModel):
    """Levels and horizons of the VaR / ES in the portfolio risk report."""

    var_confidence: tuple[float, ...] = Field((0.95, 0.99), min_length=1)
    horizon_days: tuple[int, ...] = Field((1, 21), min_length=1,
                                          description="horizons of the parametric VaR / ES")

    @field_validator("var_confidence")
    @classmethod
    def _levels(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [c for c in v if not 0.5 <= c < 1]
        if bad:
            raise ValueError(f"confidence levels must lie in [0.5, 1), got {bad}")
        return v

    @field_validator("horizon_days")
    @classmethod
    def _horizons(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(h < 1 for h in v):
            raise ValueError(f"horizons must be >= 1 session, got {list(v)}")
        return v


@register_config_model("strategy")
class StrategyConfig(VersionedConfig):
    """One strategy: universe rules, portfolio limits and risk-report settings."""

    engine: Literal["strategy"] = "strategy"
    version: str = "1"
    strategy_id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                             description="identifier; portfolio ids are strategy_id:market_id")
    description: str = ""
    kind: Literal["LONG_ONLY", "LONG_SHORT"]
    markets: tuple[str, ...] = Field(min_length=1, description="market ids traded")
    horizon_days: Literal[5, 21] = Field(description="assessment horizon that drives mu")
    fragility_penalty: float = Field(
        0.0, ge=0, description="expected return (over the horizon) taken from a long "
                               "position in a fully fragile name")
    universe: UniverseRules
    portfolio: PortfolioLimits
    risk_report: RiskReportSettings = RiskReportSettings()

    @field_validator("markets")
    @classmethod
    def _markets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        dup = sorted({m for m in v if v.count(m) > 1})
        if dup:
            raise ValueError(f"market(s) listed twice: {', '.join(dup)}")
        bad = [m for m in v if not m or not m.replace("_", "").isalnum()]
        if bad:
            raise ValueError(f"not market ids: {bad}")
        return v

    @field_validator("universe")
    @classmethod
    def _universe_fits_kind(cls, v: UniverseRules, info: ValidationInfo) -> UniverseRules:
        if info.data.get("kind") == "LONG_ONLY" and v.soft_target_policy != "EXCLUDE":
            raise ValueError("a LONG_ONLY strategy needs universe.soft_target_policy EXCLUDE "
                             f"(got {v.soft_target_policy}): it cannot short soft targets")
        return v

    @field_validator("portfolio")
    @classmethod
    def _portfolio_fits_kind(cls, v: PortfolioLimits, info: ValidationInfo) -> PortfolioLimits:
        kind = info.data.get("kind")
        if kind == "LONG_ONLY":
            if v.min_weight < 0:
                raise ValueError(f"portfolio.min_weight = {v.min_weight}: a LONG_ONLY "
                                 "strategy cannot short (min_weight must be 0)")
            if v.budget != 1.0:
                raise ValueError(f"portfolio.budget = {v.budget}: a LONG_ONLY strategy is "
                                 "fully invested (budget must be 1)")
        elif kind == "LONG_SHORT" and v.min_weight >= 0:
            raise ValueError(f"portfolio.min_weight = {v.min_weight}: a LONG_SHORT strategy "
                             "needs min_weight < 0")
        return v

    @property
    def mu_scale(self) -> float:
        """The factor applied to expected returns over the horizon (and to costs)."""
        scale = self.portfolio.mu_scale
        return TRADING_DAYS / self.horizon_days if scale == "annualised" else float(scale)
