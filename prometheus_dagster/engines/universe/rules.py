"""Universe rules of one strategy: hard filters, quality screens, soft-target handling and
the ranking caps (``docs/engines/universe.md``). Strategies embed a ``UniverseRules`` in their
own config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from prometheus_dagster.core.config import StrictModel

TIERS: tuple[str, ...] = ("CORE", "SATELLITE", "EXCLUDED")
SIDES: tuple[str, ...] = ("LONG", "SHORT", "BOTH", "NONE")
SCREENS: tuple[str, ...] = ("leverage_score", "earnings_quality_score", "liquidity_risk")


class UniverseRules(StrictModel):
    """Which candidates a strategy may trade and how many of them."""

    asset_classes: tuple[str, ...] = Field(("EQUITY",), description="asset classes admitted")
    require_active: bool = Field(True, description="only ACTIVE instruments")
    min_adv: float = Field(1e6, ge=0, description="minimum 21-day average traded value")
    min_price: float = Field(1.0, ge=0, description="minimum close")
    min_history_sessions: int = Field(126, ge=0, description="minimum sessions of history")
    require_profile: bool = Field(True, description="only names with a profile")
    max_profile_age_days: int = Field(120, ge=0, description="an older profile does not "
                                      "count as coverage (the market's strategies share the "
                                      "longest of theirs)")
    exclusion_list: tuple[str, ...] = Field((), description="instrument or issuer ids excluded")
    max_leverage_score: float = Field(0.9, ge=0, le=1)
    max_earnings_quality_score: float = Field(0.9, ge=0, le=1)
    max_liquidity_risk: float = Field(0.95, ge=0, le=1)
    soft_target_policy: Literal["EXCLUDE", "SHORT_ONLY"] = Field(
        "EXCLUDE", description="EXCLUDE (long-only: soft targets out) or SHORT_ONLY "
                               "(long/short: soft targets may only be shorted)")
    max_per_sector: int = Field(10, ge=1, description="selected names per sector")
    max_size: int = Field(100, ge=1, description="selected names in all")
    core_size: int = Field(50, ge=0, description="top-ranked selected names that are CORE")

    @field_validator("asset_classes")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("asset_classes must name at least one asset class")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> UniverseRules:
        if self.core_size > self.max_size:
            raise ValueError(f"core_size {self.core_size} exceeds max_size {self.max_size}")
        return self

    def screen_limits(self) -> dict[str, float]:
        """Risk flag -> the largest value a selected name may have."""
        return {"leverage_score": self.max_leverage_score,
                "earnings_quality_score": self.max_earnings_quality_score,
                "liquidity_risk": self.max_liquidity_risk}
