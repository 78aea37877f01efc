"""Configuration of the regime engine (``configs/engines/regime.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

REGIME_LABELS: tuple[str, ...] = (
    "RISK_ON_LOW_VOL", "RISK_ON_HIGH_VOL", "TRANSITION", "RISK_OFF_GRINDING", "RISK_OFF_PANIC",
    "RECOVERY",
)
RISK_OFF_LABELS: tuple[str, ...] = ("RISK_OFF_GRINDING", "RISK_OFF_PANIC")
RISK_ON_LABELS: tuple[str, ...] = ("RISK_ON_LOW_VOL", "RISK_ON_HIGH_VOL")
ALERT_LEVELS: tuple[str, ...] = ("GREEN", "YELLOW", "ORANGE", "RED")
# what a macro series stands for in a region's features
MACRO_ROLES: tuple[str, ...] = (
    "implied_vol", "credit_spread", "credit_spread_hy", "rate_short", "rate_long", "commodity",
    "haven", "inflation", "unemployment",
)
# window features prototypes can be fitted on (compute_region_features makes them)
MODEL_FEATURES: tuple[str, ...] = (
    "implied_vol", "vol_short", "credit_level", "credit_change", "ret_short", "drawdown",
    "dispersion", "vol_long", "ret_long", "avg_corr", "breadth",
)
DOMAINS: tuple[str, ...] = ("credit", "curve_rates", "internals", "positioning", "macro")


class RegionConfig(StrictModel):
    """Where a region's features come from. A market region reads its own market internals
    (``market_correlation_daily``); GLOBAL averages its ``members``' internals. ``macro`` maps a
    role to candidate series ids: the first one present in ``macro_time_series`` is used."""

    members: tuple[str, ...] = Field(
        (), description="GLOBAL only: markets whose index and internals are averaged")
    index_instrument: str | None = Field(
        None, description="an instrument whose returns are the region's index (e.g. "
                          "INDEX:USX500); default: the market's cap-weighted index, or its "
                          "INDEX instrument when it has no equities")
    macro: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _roles(self) -> RegionConfig:
        unknown = sorted(set(self.macro) - set(MACRO_ROLES))
        if unknown:
            raise ValueError(f"unknown macro role(s) {unknown}; roles are {list(MACRO_ROLES)}")
        return self


class Refit(StrictModel):
    cadence: Literal["yearly", "quarterly", "monthly"] = Field(
        "quarterly", description="a new prototype version at the start of each period")
    first_year: int = Field(2006, ge=1990)
    min_training_sessions: int = Field(
        120, ge=30, description="rows of complete features a fit needs")
    max_history_years: int = Field(
        10, ge=0, description="years of history a refit trains on; 0: expanding window")


class Labelling(StrictModel):
    """How a cluster's characteristics name it. Stress levels are distances above the calm
    half of the training history (its median), in that half's dispersion (scaled MAD); trends
    and drawdown depth are in z units of the training history."""

    calm_level: float = Field(1.5, description="at or below: RISK_ON_LOW_VOL")
    risk_off_level: float = Field(2.5, description="at or above: RISK_OFF_GRINDING or PANIC")
    panic_level: float = Field(9.0, description="at or above: RISK_OFF_PANIC")
    crash_trend: float = Field(-2.0, description="risk-off with a trend at or below: PANIC")
    rising_trend: float = Field(0.6, description="moderate stress, rising, deep: RECOVERY")
    falling_trend: float = Field(-0.8, description="moderate stress, falling: TRANSITION")
    deep_drawdown: float = Field(0.5)
    calm_excess: float = Field(
        0.15, description="an absolute floor under the relative levels: at or below this "
                         "excess (log units: stress features' weighted mean log level above "
                         "the calm half's median) a cluster or day is RISK_ON_LOW_VOL")
    risk_off_excess: float = Field(
        0.3, description="below this excess a cluster or day is not named risk-off, however "
                          "many calm dispersions it lies above (a history of calm years only "
                          "has a narrow calm half)")
    correction_drawdown: float | None = Field(
        -0.10, lt=0, description="a day (or cluster) at or below this drawdown from the "
                                 "index's 252-session high (the `drawdown` feature) is named "
                                 "risk-off whatever its stress level: the market's own "
                                 "definition of a correction, which a shallow, quiet sell-off "
                                 "meets long before its volatility stands out; None: off")
    correction_release: float = Field(
        -0.05, lt=0, description="a correction lasts while the drawdown stays at or below "
                                 "this and the window's lowest drawdown (`drawdown_low`) "
                                 "reached `correction_drawdown`: a bounce inside a sell-off "
                                 "does not end it")
    correction_trend: float | None = Field(
        -0.04, description="and the short-window log return at or below this: a fall under "
                          "way, not the depth an old sell-off left behind; None: any trend")
    stress_weights: dict[str, float] = Field(
        default_factory=lambda: {"implied_vol": 6.0, "vol_short": 1.0, "credit_level": 0.5,
                                 "drawdown": 0.5},
        description="weights of the features behind a cluster's (or day's) stress level, "
                    "each in z units of the training history (drawdown counted by its depth); "
                    "those the model has (or, with none, those present) are used")

    @model_validator(mode="after")
    def _ordered(self) -> Labelling:
        if not self.calm_level < self.risk_off_level < self.panic_level:
            raise ValueError("levels must satisfy calm_level < risk_off_level < panic_level")
        if not self.falling_trend < self.rising_trend:
            raise ValueError("falling_trend must be below rising_trend")
        if self.correction_drawdown is not None and \
                not self.correction_drawdown < self.correction_release:
            raise ValueError("correction_release must be above correction_drawdown")
        if not 0 <= self.calm_excess < self.risk_off_excess:
            raise ValueError("excesses must satisfy 0 <= calm_excess < risk_off_excess")
        _check_weights("stress_weights", self.stress_weights)
        return self


def _check_weights(name: str, weights: dict[str, float]) -> None:
    unknown = sorted(set(weights) - set(MODEL_FEATURES))
    if unknown:
        raise ValueError(f"{name}: unknown feature(s) {unknown}; features are "
                         f"{list(MODEL_FEATURES)}")
    negative = sorted(f for f, w in weights.items() if w < 0)
    if negative:
        raise ValueError(f"{name}: weights must be >= 0 ({', '.join(negative)})")


class ModelSettings(StrictModel):
    model_id: str = "regime-gmm-v1"
    features: tuple[str, ...] = Field(
        ("implied_vol", "vol_short", "drawdown", "ret_short", "credit_level", "credit_change"),
        description="window features the prototypes are fitted on (those the region has)")
    fallback_features: tuple[str, ...] = Field(
        ("vol_short", "ret_short", "drawdown"),
        description="added when fewer than two of `features` are present")
    feature_weights: dict[str, float] = Field(
        default_factory=lambda: {"implied_vol": 4.0, "vol_short": 1.0, "drawdown": 1.0,
                                 "ret_short": 0.5, "credit_level": 0.5, "credit_change": 0.25},
        description="multiplier of each feature's z-score in the mixture (1 when not listed): "
                    "how much a feature can move a day between prototypes, so that slow "
                    "monthly series cannot outweigh daily market stress")
    num_clusters: int = Field(8, ge=2, le=30)
    covariance_type: Literal["full", "diag", "tied", "spherical"] = "diag"
    n_init: int = Field(4, ge=1)
    seed: int = 11
    regularisation: float = Field(1e-3, gt=0, description="added to covariance diagonals")
    posterior_temperature: float = Field(
        3.0, ge=1.0, description="log-likelihoods are divided by this before the posterior: "
                                 "softer, better calibrated confidence")
    min_feature_coverage: float = Field(
        0.8, gt=0, le=1, description="a feature enters the model when present on this share "
                                     "of training sessions")
    labelling: Labelling = Labelling()
    outlier_probability: float = Field(
        0.999, gt=0.5, lt=1, description="a day farther from every prototype than this "
                                         "chi-square quantile is labelled from its own "
                                         "characteristics")
    transition_prior: float = Field(
        0.5, ge=0, description="pseudo-count added to each transition cell")

    @model_validator(mode="after")
    def _weights(self) -> ModelSettings:
        _check_weights("feature_weights", self.feature_weights)
        if any(self.feature_weights.get(f, 1.0) <= 0 for f in self.features):
            raise ValueError("feature_weights: a model feature needs a weight > 0 (leave it "
                             "out of `features` instead)")
        return self


class Indicator(StrictModel):
    """A leading indicator: a feature (or ``<role>`` macro change) whose trailing percentile
    beyond ``percentile`` (``direction`` high: above it; low: below it) is a warning."""

    feature: str
    domain: Literal["credit", "curve_rates", "internals", "positioning", "macro"]
    direction: Literal["high", "low"]
    percentile: float = Field(0.9, gt=0, lt=1)


def _default_indicators() -> tuple[Indicator, ...]:
    rows = (
        ("credit_level", "credit", "high", 0.9), ("credit_change", "credit", "high", 0.9),
        ("credit_hy_gap", "credit", "high", 0.9), ("credit_hy_change", "credit", "high", 0.9),
        ("curve_slope", "curve_rates", "low", 0.1),
        ("rate_short_change", "curve_rates", "low", 0.1),
        ("rate_long_change", "curve_rates", "low", 0.1),
        ("vol_short", "internals", "high", 0.9), ("drawdown", "internals", "low", 0.1),
        ("breadth", "internals", "low", 0.1), ("avg_corr", "internals", "high", 0.9),
        ("dispersion", "internals", "high", 0.9),
        ("implied_vol", "positioning", "high", 0.9),
        ("implied_vol_change", "positioning", "high", 0.9),
        ("implied_minus_realised", "positioning", "high", 0.9),
        ("commodity_return", "macro", "low", 0.1), ("haven_return", "macro", "high", 0.9),
        ("unemployment_change", "macro", "high", 0.9), ("inflation_level", "macro", "high", 0.9),
    )
    return tuple(Indicator(feature=f, domain=d, direction=s, percentile=p)
                 for f, d, s, p in rows)


class AlertLevels(StrictModel):
    """Warnings -> GREEN / YELLOW / ORANGE / RED; a level above GREEN also needs warnings in
    at least ``min_domains`` of that level (cross-domain confirmation), else it drops a level."""

    yellow: int = Field(3, ge=1)
    orange: int = Field(6, ge=1)
    red: int = Field(10, ge=1)
    yellow_min_domains: int = Field(2, ge=1)
    orange_min_domains: int = Field(2, ge=1)
    red_min_domains: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> AlertLevels:
        if not self.yellow < self.orange < self.red:
            raise ValueError("thresholds must satisfy yellow < orange < red")
        return self


class EarlyWarning(StrictModel):
    history_sessions: int = Field(
        756, ge=20, description="trailing sessions the percentile of an indicator is taken in")
    min_history_sessions: int = Field(126, ge=10)
    indicators: tuple[Indicator, ...] = Field(default_factory=_default_indicators)
    levels: AlertLevels = AlertLevels()


@register_config_model("regime")
class RegimeConfig(VersionedConfig):
    """Regime engine: cross-asset window features per region -> Gaussian-mixture prototypes
    fitted point in time -> labelled clusters -> smoothed labels with confidence, transition
    probabilities and an early-warning alert level."""

    engine: Literal["regime"] = "regime"
    version: str = "1"
    window: int = Field(63, ge=10, le=504, description="trading sessions of the feature window")
    min_regime_duration_days: int = Field(
        5, ge=1, description="a regime is held at least this many sessions")
    confirmation_days: int = Field(
        2, ge=1, description="sessions a new raw label must persist before a switch")
    risk_on_confirmation_days: int | None = Field(
        None, ge=1, description="sessions a new raw label must persist before a switch between "
                                "the two risk-on labels (RISK_ON_LOW_VOL <-> RISK_ON_HIGH_VOL: "
                                "the same side, a finer distinction than risk-on/off); None: "
                                "confirmation_days. Switches into or out of risk-off keep "
                                "confirmation_days")
    macro_max_staleness_days: dict[str, int] = Field(
        default_factory=lambda: {"D": 7, "W": 14, "M": 70, "Q": 190},
        description="calendar days a macro value is carried forward, by its frequency")
    embedding_dim: int = Field(384, ge=8)
    regions: dict[str, RegionConfig] = Field(default_factory=dict)
    model: ModelSettings = ModelSettings()
    refit: Refit = Refit()
    early_warning: EarlyWarning = EarlyWarning()

    @model_validator(mode="after")
    def _confirmations(self) -> RegimeConfig:
        if self.risk_on_confirmation_days is not None and \
                self.risk_on_confirmation_days < self.confirmation_days:
            raise ValueError("risk_on_confirmation_days must be at least confirmation_days "
                             f"({self.confirmation_days}): a switch within risk-on is never "
                             "more urgent than one into risk-off")
        return self

    @property
    def risk_on_confirmation(self) -> int:
        """Sessions a switch between the two risk-on labels waits for."""
        return self.risk_on_confirmation_days or self.confirmation_days

    @property
    def short_window(self) -> int:
        """Sessions of the short horizon: a third of the window (at least 5)."""
        return max(5, round(self.window / 3))
