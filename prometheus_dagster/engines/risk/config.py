"""Configuration of the factor risk model (``configs/engines/risk.yaml``).

Windows and half-lives count sessions of the market as present in the factor returns.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import VersionedConfig, register_config_model


@register_config_model("risk")
class RiskModelConfig(VersionedConfig):
    """Point-in-time factor risk model Sigma = B F B' + D (docs/engines/risk.md)."""

    engine: Literal["risk"] = "risk"
    version: str = "1"
    factor_window: int = Field(252, ge=2, description="trailing sessions of factor returns")
    factor_half_life: float | None = Field(
        90.0, gt=0, description="EWMA half-life of the factor covariance (null: equal weights)")
    min_factor_history: int = Field(
        63, ge=2, description="complete factor-return sessions needed in the window")
    shrinkage: float = Field(0.1, ge=0, le=1,
                             description="weight of the diagonal in the factor covariance")
    eigenvalue_floor: float = Field(
        1e-6, ge=0, lt=1, description="smallest eigenvalue of F, as a fraction of the mean one")
    specific_window: int = Field(126, ge=2, description="trailing sessions of residuals")
    specific_half_life: float | None = Field(
        42.0, gt=0, description="EWMA half-life of the specific variance (null: equal weights)")
    specific_shrinkage: float = Field(
        0.2, ge=0, le=1, description="weight of the cross-sectional median specific variance")
    min_specific_vol: float = Field(0.05, ge=0, description="annualised floor of specific vol")
    min_history: int = Field(
        63, ge=2, description="residuals an instrument needs for its own specific variance")
    annualisation: int = Field(252, ge=1, description="sessions per year")
    demean: bool = Field(True, description="remove the weighted mean before the (co)variances")

    @model_validator(mode="after")
    def _windows(self) -> RiskModelConfig:
        if self.min_factor_history > self.factor_window:
            raise ValueError("min_factor_history must not exceed factor_window")
        if self.min_history > self.specific_window:
            raise ValueError("min_history must not exceed specific_window")
        return self
