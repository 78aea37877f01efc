"""Configuration of the fragility engine (``configs/engines/fragility.yaml``): scenario-loss
measures, soft-target classes, fragility-alpha components, the tail-outcome model and the
position templates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

SOFT_TARGET_CLASSES: tuple[str, ...] = ("NONE", "WATCHLIST", "SOFT_TARGET")
FRAGILITY_CLASSES: tuple[str, ...] = ("NONE", "WATCHLIST", "SHORT_CANDIDATE", "CRISIS")
COMPONENTS: tuple[str, ...] = ("weak_profile", "instability", "high_fragility",
                               "complacent_pricing")


class MeasuresConfig(StrictModel):
    """Scenario losses per entity -> expected shortfall, worst case and HighFragility."""

    es_level: float = Field(0.95, gt=0.5, lt=1.0,
                            description="expected shortfall = mean loss of the worst 1 - this")
    loss_scale: float = Field(0.5, gt=0, description="ES at which the absolute part of "
                                                     "HighFragility reaches 1")
    rank_weight: float = Field(0.5, ge=0, le=1, description="weight of the cross-sectional "
                                                            "rank of ES (within entity type)")
    min_rank_entities: int = Field(5, ge=2, description="fewer entities of a type: absolute "
                                                        "part only")
    es_families: tuple[str, ...] = Field(
        ("HISTORICAL", "BOOTSTRAP", "FACTOR_BOOTSTRAP", "SHOCK_OVERLAY",
         "FRAGILITY_ADVERSARIAL"),
        description="scenario families pooled into the expected shortfall (NAMED sets count "
                    "for the worst case and their own losses only)")


class SoftTargetRule(StrictModel):
    stability_below: float = Field(ge=0, le=1)
    fragility_above: float = Field(ge=0, le=1)
    weakness_above: float | None = Field(None, ge=0, le=1)


class SoftTargetConfig(StrictModel):
    """SOFT_TARGET when all three hold; WATCHLIST when stability or fragility crosses its
    line; else NONE (docs/engines/fragility.md). The defaults are calibrated on the embedded market
    (``benchmarks.fragility``): about 1.5% of issuer-days are soft targets, with a distress
    rate about 20 times the base rate, and 13% are on the watchlist."""

    soft_target: SoftTargetRule = SoftTargetRule(stability_below=0.45, fragility_above=0.8,
                                                 weakness_above=0.7)
    watchlist: SoftTargetRule = SoftTargetRule(stability_below=0.5, fragility_above=0.9)


class ComponentsConfig(StrictModel):
    """Fragility-alpha components, each in [0, 1]. SoftTargetScore is the mean of the
    ``aligned`` largest components, so one high component alone scores at most 1/aligned."""

    aligned: int = Field(3, ge=1, le=len(COMPONENTS))
    priced_in_measures: tuple[Literal["vol_63d", "drawdown", "ret_63d"], ...] = Field(
        ("vol_63d", "drawdown", "ret_63d"),
        description="market measures whose cross-sectional rank says weakness is priced in")


class ModelSettings(StrictModel):
    """Gradient-boosted classifier of a tail outcome within each horizon (LightGBM)."""

    model_id: str = "fragility-lgbm-v1"
    features: tuple[str, ...] = (
        "weak_profile", "instability", "high_fragility", "complacent_pricing",
        "soft_target_score", "stability_score", "liquidity", "volatility", "contagion",
        "fundamental", "vol_ratio", "market_stress_beta", "expected_shortfall", "worst_case_loss",
        "leverage_score", "earnings_quality_score", "liquidity_risk", "vol_63d", "drawdown",
        "ret_21d", "ret_63d")
    n_estimators: int = Field(200, ge=10)
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(15, ge=2)
    min_child_samples: int = Field(40, ge=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    seed: int = 7
    sample_every: int = Field(1, ge=1, description="keep every n-th session of the history")


class TailOutcome(StrictModel):
    """The outcome the model learns: a loss of ``drawdown`` or more from the as-of close at
    some close within the horizon, or a delisting within it; ``relative_to: market`` measures
    the loss against the market index (idiosyncratic fragility, not market crashes)."""

    drawdown: float = Field(0.4, gt=0, lt=1)
    count_delisting: bool = True
    relative_to: Literal["market", "none"] = "market"


class RefitConfig(StrictModel):
    cadence: Literal["yearly", "quarterly", "monthly"] = "yearly"
    first_year: int = Field(2006, ge=1990, le=2100)
    min_training_rows: int = Field(500, ge=10)
    min_positive: int = Field(20, ge=1)


class ClassConfig(StrictModel):
    """FragilityClass from the score, the soft-target class and the model's tail probability
    (the probability rule applies only when a model was available)."""

    crisis_probability: float = Field(0.5, ge=0, le=1)
    crisis_score: float = Field(0.85, ge=0, le=1)
    short_probability: float = Field(0.25, ge=0, le=1)
    short_score: float = Field(0.6, ge=0, le=1)
    watch_score: float = Field(0.4, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ClassConfig:
        if not self.watch_score <= self.short_score <= self.crisis_score:
            raise ValueError("watch_score <= short_score <= crisis_score must hold")
        if self.short_probability > self.crisis_probability:
            raise ValueError("short_probability must not exceed crisis_probability")
        return self


class TemplateConfig(StrictModel):
    """Position templates for SHORT_CANDIDATE and CRISIS entities: notional hint = capital x
    base_fraction x SoftTargetScore, capped at max_fraction of capital."""

    capital: float = Field(10_000_000, gt=0)
    base_fraction: float = Field(0.01, gt=0, le=1)
    max_fraction: float = Field(0.02, gt=0, le=1)
    crisis_put_share: float = Field(0.5, gt=0, lt=1, description="share of a CRISIS issuer's "
                                    "notional hint held as a put spread (the rest: the short)")


@register_config_model("fragility")
class FragilityConfig(VersionedConfig):
    """Scenario-loss fragility, soft-target classes and fragility alpha
    (docs/engines/fragility.md)."""

    engine: Literal["fragility"] = "fragility"
    version: str = "1"
    horizons: tuple[int, ...] = Field((21, 63), min_length=1)
    measures: MeasuresConfig = MeasuresConfig()
    soft_targets: SoftTargetConfig = SoftTargetConfig()
    components: ComponentsConfig = ComponentsConfig()
    tail_outcome: TailOutcome = TailOutcome()
    model: ModelSettings = ModelSettings()
    refit: RefitConfig = RefitConfig()
    classes: ClassConfig = ClassConfig()
    templates: TemplateConfig = TemplateConfig()

    @model_validator(mode="after")
    def _horizons(self) -> FragilityConfig:
        if any(h < 1 for h in self.horizons) or len(set(self.horizons)) != len(self.horizons):
            raise ValueError("horizons must be distinct positive session counts")
        return self
