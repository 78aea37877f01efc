"""Configuration of the synthetic scenario engine (``configs/engines/scenarios.yaml``).

A config lists scenario sets; each ``ScenarioSetSpec`` names one generator family and its
settings. Settings that belong to another family must stay at their defaults, so a spec says
only what its generator uses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from prometheus_dagster.core.config import StrictModel, VersionedConfig, register_config_model

FAMILIES: tuple[str, ...] = (
    "HISTORICAL", "BOOTSTRAP", "FACTOR_BOOTSTRAP", "SHOCK_OVERLAY", "FRAGILITY_ADVERSARIAL",
    "NAMED",
)
Family = Literal[
    "HISTORICAL", "BOOTSTRAP", "FACTOR_BOOTSTRAP", "SHOCK_OVERLAY", "FRAGILITY_ADVERSARIAL",
    "NAMED",
]
CATEGORIES: tuple[str, ...] = ("BASELINE", "STRESS", "REGULATORY", "ADVERSARIAL")
# families whose paths are drawn by the block bootstrap (the overlay and adversarial families
# only with ``base: BOOTSTRAP``)
BOOTSTRAP_FAMILIES: tuple[str, ...] = (
    "BOOTSTRAP", "FACTOR_BOOTSTRAP", "SHOCK_OVERLAY", "FRAGILITY_ADVERSARIAL",
)
RISK_OFF_FILTER: tuple[str, ...] = ("RISK_OFF_GRINDING", "RISK_OFF_PANIC")


class Bounds(StrictModel):
    """Every generated step return is clipped into [min_step_return, max_step_return]; the
    number of clipped moves is recorded on the set. min_step_return > -1 keeps every price
    positive, so compounded path returns stay above -100%."""

    min_step_return: float = Field(-0.6, gt=-1.0)
    max_step_return: float = Field(1.0)

    @model_validator(mode="after")
    def _around_zero(self) -> Bounds:
        if not self.min_step_return < 0 < self.max_step_return:
            raise ValueError("bounds must satisfy min_step_return < 0 < max_step_return")
        return self


class StepRange(StrictModel):
    """Steps ``start_step``..``end_step`` (1-based, inclusive; no end: the last step)."""

    start_step: int = Field(1, ge=1)
    end_step: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> StepRange:
        if self.end_step is not None and self.end_step < self.start_step:
            raise ValueError("end_step must not be before start_step")
        return self

    def last(self, horizon: int) -> int:
        return horizon if self.end_step is None else self.end_step


class CrashGap(StrictModel):
    """On step ``day`` every instrument gets ``market_return * beta`` added, beta being its
    exposure to ``factor``."""

    day: int = Field(1, ge=1)
    market_return: float = Field(-0.12, gt=-1.0)
    factor: str = "MARKET"


class VolSpike(StepRange):
    """The base path returns of the steps in range are multiplied by ``multiplier``."""

    multiplier: float = Field(2.5, gt=0)


class CreditFreeze(StepRange):
    """Each step in range adds ``return_per_step * weakness`` to every instrument."""

    return_per_step: float = Field(-0.01, gt=-1.0)


class AdversarialShock(StrictModel):
    """Instruments with weakness >= ``min_weakness`` get a path that compounds to
    ``adverse_return * weakness * u`` over the horizon (u drawn per path uniformly in
    [scale_min, scale_max]); untargeted instruments of a sector with targets get ``spillover``
    times the sector's average targeted total, compounded the same way."""

    min_weakness: float = Field(0.5, ge=0, le=1)
    adverse_return: float = Field(-0.35, lt=0, gt=-1.0)
    spillover: float = Field(0.3, ge=0, le=1)
    scale_min: float = Field(0.5, ge=0)
    scale_max: float = Field(1.5, gt=0)

    @model_validator(mode="after")
    def _feasible(self) -> AdversarialShock:
        if self.scale_min > self.scale_max:
            raise ValueError("scale_min must not exceed scale_max")
        if self.adverse_return * self.scale_max <= -1.0:
            raise ValueError("adverse_return * scale_max must stay above -1 (a total loss)")
        return self


class NamedShock(StrictModel):
    """A fixed total move over the horizon, spread over the steps so that it compounds to
    ``total_return`` exactly for a unit scale. The scale per instrument: MARKET its beta on
    ``factor``; SECTOR 1 inside ``sector``, 0 outside; CREDIT its weakness."""

    kind: Literal["MARKET", "SECTOR", "CREDIT"]
    total_return: float = Field(gt=-1.0)
    factor: str = "MARKET"
    sector: str | None = None

    @model_validator(mode="after")
    def _sector(self) -> NamedShock:
        if self.kind == "SECTOR" and not self.sector:
            raise ValueError("a SECTOR shock needs 'sector'")
        if self.kind != "SECTOR" and self.sector is not None:
            raise ValueError(f"'sector' applies to SECTOR shocks only, not {self.kind}")
        return self


# field -> the families that use it (all other families must leave it at its default)
_FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "block_min": BOOTSTRAP_FAMILIES,
    "block_max": BOOTSTRAP_FAMILIES,
    "shock_scale": ("FACTOR_BOOTSTRAP",),
    "correlation_stress": ("FACTOR_BOOTSTRAP",),
    "base": ("SHOCK_OVERLAY", "FRAGILITY_ADVERSARIAL"),
    "crash_gap": ("SHOCK_OVERLAY",),
    "vol_spike": ("SHOCK_OVERLAY",),
    "credit_freeze": ("SHOCK_OVERLAY",),
    "adversarial": ("FRAGILITY_ADVERSARIAL",),
    "named": ("NAMED",),
    "regime_filter": ("HISTORICAL", *BOOTSTRAP_FAMILIES),
}


class ScenarioSetSpec(StrictModel):
    """One scenario set: its generator family and settings. Sets are generated per market and
    as-of date D from the last ``base_window_sessions`` sessions up to D."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="unique in the config")
    family: Family
    category: Literal["BASELINE", "STRESS", "REGULATORY", "ADVERSARIAL"] = "STRESS"
    horizon: int = Field(21, ge=1, le=252, description="steps (sessions) of every path")
    num_paths: int = Field(
        50, ge=1, le=10_000, description="paths of a stochastic set; deterministic sets "
                                          "(NAMED, overlay on base NONE) have one")
    seed: int = Field(0, ge=0)
    base_window_sessions: int = Field(
        504, ge=2, description="sessions up to D the set is calibrated on")
    min_base_sessions: int = Field(
        63, ge=2, description="a shorter base window (early history) is refused")
    regime_filter: tuple[str, ...] | None = Field(
        None, min_length=1, description="only sessions (HISTORICAL: windows starting on a "
                                        "session) with one of these regime labels")
    regime_fallback: Literal["UNFILTERED", "RAISE"] = Field(
        "UNFILTERED", description="when the filter leaves fewer than min_regime_samples: "
                                  "use the unfiltered window (recorded) or raise")
    min_regime_samples: int = Field(
        10, ge=1, description="fewest filtered windows (HISTORICAL) or sessions (bootstrap, at "
                              "least block_max) a regime filter may leave")
    block_min: int = Field(5, ge=1)
    block_max: int = Field(20, ge=1)
    shock_scale: float = Field(1.5, gt=0, description="factor returns are multiplied by this")
    correlation_stress: float = Field(
        0.0, ge=0, le=1, description="share of the gap between the average factor correlation "
                                     "and 1 that is closed")
    base: Literal["NONE", "BOOTSTRAP"] = Field(
        "BOOTSTRAP", description="what the overlay/adversarial shocks are added to")
    crash_gap: CrashGap | None = None
    vol_spike: VolSpike | None = None
    credit_freeze: CreditFreeze | None = None
    adversarial: AdversarialShock | None = Field(
        None, description="FRAGILITY_ADVERSARIAL settings (defaults when absent)")
    named: tuple[NamedShock, ...] = Field(
        (), description="NAMED: shocks whose step returns are summed")
    tags: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _one_path_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "num_paths" not in data and _deterministic(data):
            return {**data, "num_paths": 1}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioSetSpec:
        where = f"set {self.name!r} ({self.family})"
        for field, families in _FAMILY_FIELDS.items():
            if self.family not in families and getattr(self, field) != _default(field):
                raise ValueError(
                    f"{where}: field '{field}' applies to {'/'.join(families)} sets only")
        if self.min_base_sessions > self.base_window_sessions:
            raise ValueError(f"{where}: min_base_sessions exceeds base_window_sessions")
        if self.family == "NAMED" and not self.named:
            raise ValueError(f"{where}: field 'named' must list at least one shock")
        if self.family == "SHOCK_OVERLAY" and not (
                self.crash_gap or self.vol_spike or self.credit_freeze):
            raise ValueError(f"{where}: configure at least one of 'crash_gap', 'vol_spike', "
                             "'credit_freeze'")
        if self.regime_filter is not None and self.family != "HISTORICAL" and (
                not self.uses_bootstrap):
            raise ValueError(f"{where}: field 'regime_filter' needs a bootstrap base")
        if self.deterministic and self.num_paths != 1:
            raise ValueError(f"{where}: field 'num_paths' must be 1 for a deterministic set")
        if self.uses_bootstrap:
            if self.block_min > self.block_max:
                raise ValueError(f"{where}: field 'block_min' exceeds block_max")
            if self.block_min > self.horizon:
                raise ValueError(f"{where}: field 'block_min' exceeds the horizon (every path "
                                 "would be one window: use HISTORICAL)")
            if self.block_max > self.min_base_sessions:
                raise ValueError(f"{where}: field 'block_max' exceeds min_base_sessions")
        if self.crash_gap is not None and self.crash_gap.day > self.horizon:
            raise ValueError(f"{where}: field 'crash_gap.day' is after the horizon")
        for field in ("vol_spike", "credit_freeze"):
            steps = getattr(self, field)
            if steps is not None and steps.last(self.horizon) > self.horizon:
                raise ValueError(f"{where}: field '{field}' ends after the horizon")
        return self

    @property
    def deterministic(self) -> bool:
        """True when the set is one fixed path (no random draw)."""
        return self.family == "NAMED" or (self.family == "SHOCK_OVERLAY" and self.base == "NONE")

    @property
    def uses_bootstrap(self) -> bool:
        if self.family in ("SHOCK_OVERLAY", "FRAGILITY_ADVERSARIAL"):
            return self.base == "BOOTSTRAP"
        return self.family in BOOTSTRAP_FAMILIES


def _default(field: str) -> Any:
    return ScenarioSetSpec.model_fields[field].get_default(call_default_factory=True)


def _deterministic(data: dict[str, Any]) -> bool:
    family = data.get("family")
    return family == "NAMED" or (family == "SHOCK_OVERLAY" and data.get("base") == "NONE")


def _default_sets() -> tuple[ScenarioSetSpec, ...]:
    return (
        ScenarioSetSpec(name="HISTORICAL_RISK_OFF", family="HISTORICAL", category="STRESS",
                        seed=101, regime_filter=RISK_OFF_FILTER, tags=("historical",)),
        ScenarioSetSpec(name="BOOTSTRAP_BASELINE", family="BOOTSTRAP", category="BASELINE",
                        seed=102, tags=("bootstrap",)),
        ScenarioSetSpec(name="FACTOR_STRESS", family="FACTOR_BOOTSTRAP", category="STRESS",
                        seed=103, shock_scale=1.5, correlation_stress=0.5, tags=("factor",)),
        ScenarioSetSpec(name="CRASH_GAP_VOL_SPIKE", family="SHOCK_OVERLAY", category="STRESS",
                        seed=104, crash_gap=CrashGap(), vol_spike=VolSpike(end_step=10),
                        tags=("overlay",)),
        ScenarioSetSpec(name="CREDIT_FREEZE", family="SHOCK_OVERLAY", category="STRESS",
                        seed=105, credit_freeze=CreditFreeze(), tags=("overlay", "credit")),
        ScenarioSetSpec(name="FRAGILITY_TARGETED", family="FRAGILITY_ADVERSARIAL",
                        category="ADVERSARIAL", seed=106, adversarial=AdversarialShock(),
                        tags=("fragility",)),
        ScenarioSetSpec(name="EQUITY_CRASH", family="NAMED", category="REGULATORY",
                        named=(NamedShock(kind="MARKET", total_return=-0.30),),
                        tags=("named",)),
        ScenarioSetSpec(name="SECTOR_SHOCK", family="NAMED", category="REGULATORY",
                        named=(NamedShock(kind="SECTOR", sector="Financials",
                                          total_return=-0.25),), tags=("named",)),
        ScenarioSetSpec(name="CREDIT_EVENT", family="NAMED", category="REGULATORY",
                        named=(NamedShock(kind="CREDIT", total_return=-0.40),),
                        tags=("named", "credit")),
    )


@register_config_model("scenarios")
class ScenariosConfig(VersionedConfig):
    """Synthetic scenario engine: per market and date, scenario sets of per-instrument step
    return paths drawn from history (windows, block bootstrap, factor bootstrap with stress),
    shock overlays, fragility-targeted shocks and fixed named shocks, all bounded."""

    engine: Literal["scenarios"] = "scenarios"
    version: str = "1"
    bounds: Bounds = Bounds()
    min_history_fraction: float = Field(
        0.8, gt=0, le=1, description="instruments priced on less of the base window are "
                                     "excluded (and listed on the set)")
    sets: tuple[ScenarioSetSpec, ...] = Field(default_factory=_default_sets)
    store_paths_sessions: int | Literal["all"] = Field(
        21, description="sessions (up to the last date a run writes) whose paths keep their "
                        "step returns in the warehouse; 0 keeps none, 'all' every date. "
                        "Cumulative returns are kept for every date.")

    @field_validator("store_paths_sessions")
    @classmethod
    def _non_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("store_paths_sessions must be 0 or more sessions, or 'all'")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> ScenariosConfig:
        if not self.sets:
            raise ValueError("field 'sets' must list at least one scenario set")
        names = [s.name for s in self.sets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field 'sets': set names must be unique, repeated: {dup}")
        return self

    def set_spec(self, name: str) -> ScenarioSetSpec:
        for spec in self.sets:
            if spec.name == name:
                return spec
        raise KeyError(name)
