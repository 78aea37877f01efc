"""Configuration of the stability engine (``configs/engines/stability.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

COMPONENTS: tuple[str, ...] = ("liquidity", "volatility", "contagion", "fundamental")


def _default_multipliers() -> dict[str, float]:
    return {"RISK_ON_LOW_VOL": 1.0, "RISK_ON_HIGH_VOL": 1.3, "TRANSITION": 1.2,
            "RISK_OFF_GRINDING": 1.5, "RISK_OFF_PANIC": 2.0, "RECOVERY": 1.3}


class ComponentWeights(StrictModel):
    """Weights of the components in ``stability_score`` (renormalised over those present)."""

    liquidity: float = Field(0.3, ge=0)
    volatility: float = Field(0.3, ge=0)
    contagion: float = Field(0.2, ge=0)
    fundamental: float = Field(0.2, ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> ComponentWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one component weight must be positive")
        return self


@register_config_model("stability")
class StabilityConfig(VersionedConfig):
    """Stability vectors: liquidity, volatility against own history (regime-aware), stress
    contagion and fundamentals, each in [0, 1] (1 = most stable), and their weighted score.

    The maps to [0, 1] use ``hill(x; half, power) = 1 / (1 + (max(x, 0) / half) ** power)``:
    1 at 0, 0.5 at ``half``, decreasing towards 0."""

    engine: Literal["stability"] = "stability"
    version: str = "1"
    weights: ComponentWeights = ComponentWeights()

    # windows, in sessions of the market (the dates of the inputs)
    vol_history_sessions: int = Field(
        252, ge=21, description="trailing sessions whose median vol_63d is the reference vol")
    liquidity_history_sessions: int = Field(
        252, ge=21, description="trailing sessions whose median log ADV is the ADV reference")
    contagion_window: int = Field(
        504, ge=63, description="trailing sessions in which stress days are found")
    stress_quantile: float = Field(
        0.1, gt=0, lt=0.5, description="stress days: returns at or below this quantile of "
                                       "the window")
    # declared after the windows they are checked against
    min_history_sessions: int = Field(
        63, ge=5, description="observations an own-history reference needs")
    min_stress_days: int = Field(
        10, ge=3, description="stress days with a return a stress beta needs")
    min_cross_section: int = Field(
        3, ge=1, description="names a cross-sectional percentile or median needs")
    series_min_obs_fraction: float = Field(
        0.8, gt=0, le=1, description="share of a window a basket's own vol needs")
    annualisation_days: int = Field(252, gt=0, description="vol = daily std * sqrt(this)")

    # contagion
    market_weight: float = Field(
        0.5, ge=0, le=1, description="weight of the market stress beta in the combined beta "
                                     "(the rest: sector)")
    beta_half: float = Field(1.0, gt=0, description="combined stress beta scoring 0.5")
    beta_power: float = Field(2.0, gt=0)
    comovement_jump_weight: float = Field(
        0.5, ge=0, le=1, description="MARKET: weight of the stress-day rise in co-movement "
                                     "(the rest: its level)")

    # volatility
    regime_vol_multiplier: dict[str, float] = Field(
        default_factory=_default_multipliers,
        description="regime label -> factor on the reference vol (a missing label: 1.0)")
    regime_max_staleness_days: int = Field(
        7, ge=0, description="calendar days a regime label is carried forward")
    vol_own_weight: float = Field(
        0.6, ge=0, le=1, description="weight of vol vs own history (the rest: vs the "
                                     "cross-sectional level)")
    vol_ratio_half: float = Field(1.5, gt=0, description="vol_ratio scoring 0.5")
    vol_level_half: float = Field(
        1.5, gt=0, description="vol / cross-sectional median vol scoring 0.5")
    vol_power: float = Field(3.0, gt=0)

    # liquidity
    amihud_weight: float = Field(
        0.5, ge=0, le=1, description="weight of the cross-sectional Amihud part (the rest: "
                                     "ADV vs own history)")
    adv_log_scale: float = Field(
        0.5, gt=0, description="own-history part = logistic(log(ADV / median ADV) / this)")

    # fundamental
    profile_max_age_days: int = Field(
        92, ge=0, description="calendar days the latest profile row may be older than D")

    @field_validator("regime_vol_multiplier")
    @classmethod
    def _positive_multipliers(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: m for k, m in v.items() if not m > 0}
        if bad:
            raise ValueError(f"multipliers must be positive, got {bad}")
        return v

    @field_validator("min_history_sessions")
    @classmethod
    def _history_fits(cls, v: int, info: ValidationInfo) -> int:
        for name in ("vol_history_sessions", "liquidity_history_sessions"):
            window = info.data.get(name)
            if window is not None and v > window:
                raise ValueError(f"must not exceed {name} ({window})")
        return v

    @field_validator("min_stress_days")
    @classmethod
    def _stress_days_fit(cls, v: int, info: ValidationInfo) -> int:
        q, window = info.data.get("stress_quantile"), info.data.get("contagion_window")
        if q is not None and window is not None and v > int(q * window):
            raise ValueError(f"exceeds the {int(q * window)} stress days a full "
                             f"contagion_window ({window}) holds at stress_quantile {q}")
        return v
