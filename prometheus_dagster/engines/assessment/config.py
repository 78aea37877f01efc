"""Configuration of the assessment engine (``configs/engines/assessment.yaml``): alpha
families and their features, the forward-return labels, the LightGBM combination model, its
point-in-time refits and walk-forward validation, signal cut-offs, confidence and the
fragility penalty for longs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

FAMILIES: tuple[str, ...] = ("value", "momentum", "quality", "carry", "low_vol", "fragility",
                             "context")
SIGNAL_LABELS: tuple[str, ...] = ("STRONG_SELL", "SELL", "HOLD", "BUY", "STRONG_BUY")

# Every feature the engine can compute, with its meaning. Signs follow the classic premium:
# higher = more attractive (hence neg_vol_63d, rev_1m = minus the last month's return).
FEATURES: dict[str, str] = {
    "book_to_price": "equity / (close x shares outstanding)",
    "earnings_yield": "annualised net income (4 x quarter) / market cap",
    "fcf_yield": "annualised free cash flow (4 x quarter) / market cap",
    "mom_12_1": "total return from 252 to 21 sessions ago",
    "mom_6m": "total return from 126 to 21 sessions ago",
    "rev_1m": "minus the total return of the last 21 sessions (short-term reversal)",
    "drawdown": "total-return level / its 252-session high - 1 (volatility_daily)",
    "roe": "annualised net income / equity (null when equity <= 0)",
    "roa": "annualised net income / total assets",
    "gross_profitability": "annualised EBITDA / total assets",
    "earnings_quality": "1 - the profile's earnings_quality_score",
    "balance_sheet_strength": "1 - the profile's leverage_score",
    "dividend_yield": "cash dividends of the last 252 sessions / close",
    "neg_vol_63d": "minus the 63-session realised volatility",
    "neg_market_beta": "minus the rolling beta on the MARKET factor",
    "soft_target_score": "fragility alpha SoftTargetScore of the issuer",
    "tail_probability": "fragility model probability of a tail outcome",
    "high_fragility": "HighFragility of the issuer's scenario losses",
    "profile_weakness": "the profile's weighted mean of risk flags",
    "regime_stress": "stress code of the market regime (0 calm .. 1 panic), same for all names",
    "regime_confidence": "confidence of the regime assignment, same for all names",
    "stability_score": "the issuer's stability score",
    "log_market_cap": "log of close x shares outstanding (size)",
    "log_adv_21d": "log of the 21-session average traded value (liquidity)",
}
# Date-level features: the same for every name of a date, so never standardised.
MARKET_LEVEL_FEATURES: tuple[str, ...] = ("regime_stress", "regime_confidence")
EMBEDDING_PREFIX = "profile_emb_"


def embedding_features(n: int) -> tuple[str, ...]:
    return tuple(f"{EMBEDDING_PREFIX}{i}" for i in range(n))


# stress code of each regime label (0 calm .. 1 panic), the default of
# ``features.regime_stress``
REGIME_STRESS: dict[str, float] = {
    "RISK_ON_LOW_VOL": 0.0, "RECOVERY": 0.25, "RISK_ON_HIGH_VOL": 0.5, "TRANSITION": 0.5,
    "RISK_OFF_GRINDING": 0.75, "RISK_OFF_PANIC": 1.0}


class FeatureSettings(StrictModel):
    """How raw characteristics become model features (point in time, per date)."""

    standardise: Literal["rank_gauss", "zscore"] = Field(
        "rank_gauss", description="per-date transform over the date's names: rank-gauss "
                                  "(normal scores of ranks) or a winsorised z-score")
    winsor_z: float = Field(3.0, gt=0, description="zscore: clip at +- this many sd")
    min_window_coverage: float = Field(0.9, gt=0, le=1, description="share of a window's "
                                       "sessions with a return for a trailing return to count")
    max_statement_age_days: int = Field(200, ge=1, description="older statements are unused")
    max_context_age_days: int = Field(7, ge=0, description="profiles, stability, fragility "
                                      "and regime rows older than this are unused")
    embedding_components: int = Field(4, ge=0, le=384, description="first components of the "
                                      "profile embedding used as context features")
    fragility_horizon_days: int = Field(21, ge=1, description="fragility_alpha horizon read")
    regime_stress: dict[str, float] = Field(
        default_factory=lambda: dict(REGIME_STRESS),
        description="stress code of each regime label (0 calm .. 1 panic); a label not "
                    "listed gives a missing regime_stress")


class LabelSettings(StrictModel):
    """What the model learns from the forward excess return (compounded over the horizon,
    minus the date's cross-sectional mean): ``rank_gauss``, its per-date normal score (every
    date weighs the same whatever its dispersion; forecasts are turned back into returns by
    the training history's median cross-sectional sd of the winsorised excess return), or
    ``excess``, the excess return itself winsorised per date at ``winsorize`` / 1 -
    ``winsorize`` so a few crashes do not dominate the squared loss."""

    target: Literal["rank_gauss", "excess"] = "rank_gauss"
    winsorize: float = Field(0.01, ge=0, lt=0.5)


# Sign priors of the classic premia: the forecast may only rise with these features (+1) or
# fall (-1); the others are free.
Monotone = Literal[-1, 0, 1]
DEFAULT_MONOTONE: dict[str, Monotone] = {
    "book_to_price": 1, "earnings_yield": 1, "fcf_yield": 1, "mom_12_1": 1, "mom_6m": 1,
    "drawdown": 1, "roe": 1, "roa": 1, "gross_profitability": 1, "earnings_quality": 1,
    "balance_sheet_strength": 1, "dividend_yield": 1, "neg_vol_63d": 1,
    "soft_target_score": -1, "tail_probability": -1, "high_fragility": -1,
    "profile_weakness": -1,
}


class ModelSettings(StrictModel):
    """One LightGBM regressor per horizon (deterministic: fixed seed, one thread). Strongly
    regularised: cross-sectional return forecasts have a tiny signal-to-noise ratio."""

    model_id: str = "assessment-lgbm-v1"
    n_estimators: int = Field(300, ge=1)
    learning_rate: float = Field(0.02, gt=0, le=1)
    num_leaves: int = Field(7, ge=2)
    min_child_samples: int = Field(2000, ge=1)
    subsample: float = Field(0.7, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(5.0, ge=0)
    seed: int = 7
    deterministic: bool = True
    n_jobs: int = Field(1, ge=1)
    monotone: dict[str, Monotone] = Field(
        default_factory=lambda: dict(DEFAULT_MONOTONE),
        description="feature -> monotone constraint (features not in the model are ignored)")


class RefitConfig(StrictModel):
    """Model versions: partition P (start of each period from first_year) is trained only on
    labels that ended before P."""

    cadence: Literal["yearly", "quarterly", "monthly"] = "quarterly"
    first_year: int = Field(2006, ge=1990, le=2100)
    min_training_dates: int = Field(250, ge=1)
    min_training_rows: int = Field(5000, ge=10)


class WalkForwardConfig(StrictModel):
    """Expanding-window validation: the dates are cut into n_folds + 1 blocks and block k is
    predicted by a model trained on the labels that ended embargo_sessions sessions or more
    before its first date (labels are purged by their horizon)."""

    n_folds: int = Field(4, ge=1)
    embargo_sessions: int = Field(5, ge=0)
    min_names_per_date: int = Field(5, ge=2, description="a date with fewer predicted names "
                                    "has no out-of-sample rank IC")


class SignalConfig(StrictModel):
    """Signal label from the cross-sectional score (percentile of expected return)."""

    strong_sell: float = Field(0.1, ge=0, le=1, description="score below: STRONG_SELL")
    sell: float = Field(0.3, ge=0, le=1, description="below: SELL")
    hold: float = Field(0.7, ge=0, le=1, description="below: HOLD")
    buy: float = Field(0.9, ge=0, le=1, description="below: BUY, else STRONG_BUY")

    @model_validator(mode="after")
    def _ordered(self) -> SignalConfig:
        if not self.strong_sell <= self.sell <= self.hold <= self.buy:
            raise ValueError("strong_sell <= sell <= hold <= buy must hold")
        return self


class ConfidenceConfig(StrictModel):
    """confidence = (2 Phi(|z|) - 1) x clip(OOS rank IC / full_ic, 0, 1), z = the name's
    cross-sectional z-score of expected return."""

    full_ic: float = Field(0.05, gt=0, description="OOS mean rank IC that counts as full skill")


DEFAULT_FAMILIES: dict[str, tuple[str, ...]] = {
    "value": ("book_to_price", "earnings_yield", "fcf_yield"),
    "momentum": ("mom_12_1", "mom_6m", "rev_1m", "drawdown"),
    "quality": ("roe", "roa", "gross_profitability", "earnings_quality",
                "balance_sheet_strength"),
    "carry": ("dividend_yield",),
    "low_vol": ("neg_vol_63d", "neg_market_beta"),
    "fragility": ("soft_target_score", "tail_probability", "high_fragility", "profile_weakness"),
    "context": ("regime_stress", "regime_confidence", "stability_score", "log_market_cap",
                "log_adv_21d", *embedding_features(4)),
}


@register_config_model("assessment")
class AssessmentConfig(VersionedConfig):
    """Assessment: expected returns, scores and signals per instrument
    (``docs/engines/assessment.md``)."""

    engine: Literal["assessment"] = "assessment"
    version: str = "1"
    horizons: tuple[int, ...] = Field((5, 21), min_length=1)
    families: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_FAMILIES))
    features: FeatureSettings = FeatureSettings()
    labels: LabelSettings = LabelSettings()
    model: ModelSettings = ModelSettings()
    refit: RefitConfig = RefitConfig()
    walk_forward: WalkForwardConfig = WalkForwardConfig()
    signals: SignalConfig = SignalConfig()
    confidence: ConfidenceConfig = ConfidenceConfig()
    fragility_penalty: float = Field(0.05, ge=0, description="long haircut per unit of "
                                     "soft_target_score x tail_probability")

    @model_validator(mode="after")
    def _check(self) -> AssessmentConfig:
        if any(h < 1 for h in self.horizons) or len(set(self.horizons)) != len(self.horizons):
            raise ValueError("horizons must be distinct positive session counts")
        known = set(FEATURES) | set(embedding_features(self.features.embedding_components))
        seen: dict[str, str] = {}
        for family, names in self.families.items():
            if family not in FAMILIES:
                raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
            for name in names:
                if name not in known:
                    raise ValueError(f"family {family}: unknown feature {name!r}")
                if name in seen:
                    # contributions are summed per family: a feature may count once only
                    raise ValueError(f"feature {name!r} is in families {seen[name]} and "
                                     f"{family}")
                seen[name] = family
        if not seen:
            raise ValueError("families name no feature")
        unknown = [f for f in self.model.monotone if f not in known]
        if unknown:
            raise ValueError(f"model.monotone: unknown feature(s) {', '.join(unknown)}")
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's features in family order."""
        return tuple(f for names in self.families.values() for f in names)
