"""Configuration of profiles and risk flags (``configs/engines/profiles.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model


class Ramp(StrictModel):
    """Linear map of a measure to [0, 1]: 0 at ``low`` and below, 1 at ``high`` and above."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Ramp:
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        return self


class FlagWeights(StrictModel):
    leverage_score: float = Field(0.35, ge=0)
    earnings_quality_score: float = Field(0.2, ge=0)
    liquidity_risk: float = Field(0.3, ge=0)
    governance_risk_score: float = Field(0.15, ge=0)


class EarningsQualityWeights(StrictModel):
    """Weights of the earnings quality score's three parts."""

    accruals: float = Field(0.5, ge=0, description="ramp of accruals / total assets")
    cash_burn: float = Field(0.25, ge=0, description="1 when operating cash flow < 0")
    loss: float = Field(0.25, ge=0, description="ramp of the loss margin")


@register_config_model("profiles")
class ProfilesConfig(VersionedConfig):
    """Point-in-time profiles: which statement is usable, how measures become risk flags, how
    the profile embedding mixes the numeric window with recent news."""

    engine: Literal["profiles"] = "profiles"
    version: str = "1"
    fundamentals_max_age_days: int = Field(400, gt=0)
    prior_year_tolerance_days: int = Field(
        20, ge=0, description="the statement a year earlier (revenue growth) is the one whose "
        "period ended 365 days before, give or take this many days")
    news_lookback_days: int = Field(90, ge=1, description="calendar days of linked news used")
    # leverage: the score is the largest of the three ramps (each non-decreasing)
    debt_to_ebitda: Ramp = Ramp(low=1.0, high=6.0)
    debt_to_equity: Ramp = Ramp(low=0.5, high=3.0)
    liabilities_to_assets: Ramp = Ramp(low=0.5, high=0.95)
    # earnings quality: accruals, cash burn, losses
    accruals_ratio: Ramp = Ramp(low=0.0, high=0.1)
    loss_margin: Ramp = Ramp(low=0.0, high=0.2)
    earnings_quality_weights: EarningsQualityWeights = EarningsQualityWeights()
    # liquidity: cash against short-term debt, interest coverage (both: lower = riskier)
    cash_to_st_debt: Ramp = Ramp(low=0.25, high=2.0)
    interest_coverage: Ramp = Ramp(low=1.0, high=4.0)
    # governance: cosine similarity of recent news to the anchor themes
    governance_similarity: Ramp = Ramp(low=0.35, high=0.65)
    governance_anchors: tuple[str, ...] = (
        "The company breached its loan covenants and is negotiating waivers with lenders.",
        "The company hired restructuring advisers to review its balance sheet.",
        "The rating agency downgraded the company as leverage climbed.",
        "The company withdrew its guidance and suspended its forecast.",
        "The company filed for insolvency and its shares will be delisted.",
        "Accounting irregularities and management turmoil at the company.",
    )
    flag_weights: FlagWeights = FlagWeights()
    text_weight: float = Field(
        0.5, ge=0, description="weight of the mean recent-news vector in the profile embedding")
