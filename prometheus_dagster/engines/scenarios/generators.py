"""One generator per scenario family. Each turns a base window (and the snapshot inputs) into
unbounded step-return paths; ``sets`` bounds them and builds the set row.

* HISTORICAL: actual windows of ``horizon`` consecutive base sessions, optionally only those
  whose first session carries a label of ``regime_filter``; ``num_paths`` of them drawn without
  replacement (all when fewer), in date order.
* BOOTSTRAP: circular block bootstrap of whole cross-sectional rows (keeps the
  cross-correlation), block lengths uniform in [block_min, block_max]; with a regime filter the
  pool is the filtered sessions in date order.
* FACTOR_BOOTSTRAP: r = B f + e on the base window (B: exposures or OLS slopes, e = r - B f,
  so e keeps the intercept); f and e rows are bootstrapped with independent blocks, f is
  correlation-stressed (``paths.CorrelationStress``) and multiplied by ``shock_scale``.
* SHOCK_OVERLAY: a base (zero or BOOTSTRAP) with, in this order, vol_spike (multiplies the
  base returns of its steps, so nothing on a zero base), crash_gap (adds market_return * beta
  on its day) and credit_freeze (adds return_per_step * weakness on its steps). On a zero base
  the one path is exactly the sum of the shocks (before bounds).
* FRAGILITY_ADVERSARIAL: a base plus, per path p, a move compounding to
  u_p * adverse_return * weakness_i for targeted names (weakness >= min_weakness) and
  u_p * spillover * (sector average of adverse_return * weakness over its targets) for the
  other names of a sector with targets; u_p ~ U[scale_min, scale_max].
* NAMED: one path, the sum over the set's shocks of scale_i * s, s the step return that
  compounds to the shock's total (scale: beta, sector membership or weakness).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prometheus_dagster.engines.scenarios.config import AdversarialShock, ScenarioSetSpec
from prometheus_dagster.engines.scenarios.errors import ScenarioError
from prometheus_dagster.engines.scenarios.inputs import (
    BaseWindow,
    ScenarioInputs,
    factor_beta,
    factor_exposures,
    instrument_sectors,
    instrument_weakness,
)
from prometheus_dagster.engines.scenarios.paths import (
    circular_block_indices,
    correlation_stress,
    spread_total,
)


@dataclass(frozen=True)
class GenerationContext:
    spec: ScenarioSetSpec
    base: BaseWindow
    inputs: ScenarioInputs
    seed: np.random.SeedSequence
    where: str


@dataclass
class FamilyResult:
    paths: np.ndarray                 # (num_paths, horizon, n_instruments), not yet bounded
    used_rows: np.ndarray             # base-window rows the set was calibrated on
    regime_filter_applied: bool = False
    details: dict = field(default_factory=dict)


def _dates(base: BaseWindow, rows: np.ndarray) -> list[str]:
    return [f"{d:%Y-%m-%d}" for d in base.sessions[rows]]


def _regime_rows(ctx: GenerationContext, candidates: np.ndarray, needed: int, unit: str
                 ) -> tuple[np.ndarray, bool]:
    """The candidate rows (sessions, or window starts) whose label passes the regime filter;
    all candidates (flag False) when there is no filter, or when it leaves fewer than
    ``needed`` and the spec falls back."""
    spec, base = ctx.spec, ctx.base
    if spec.regime_filter is None:
        return candidates, False
    allowed = set(spec.regime_filter)
    if base.labels is None:
        kept, reason = candidates[:0], "no regime labels were given"
    else:
        mask = np.fromiter((lab in allowed for lab in base.labels[candidates]), bool,
                           count=len(candidates))
        kept = candidates[mask]
        reason = f"it leaves {len(kept)} {unit}"
    if len(kept) >= needed:
        return kept, True
    message = (f"regime filter {list(spec.regime_filter)} on the base window "
               f"{base.sessions[0]:%Y-%m-%d}..{base.sessions[-1]:%Y-%m-%d}: {reason}, "
               f"at least {needed} needed")
    if spec.regime_fallback == "RAISE":
        raise ScenarioError(f"{ctx.where}: {message}")
    base.warnings.append(f"{message}; fell back to the unfiltered window")
    return candidates, False


def _bootstrap_pool(ctx: GenerationContext) -> tuple[np.ndarray, bool]:
    needed = max(ctx.spec.min_regime_samples, ctx.spec.block_max)
    return _regime_rows(ctx, np.arange(ctx.base.n_sessions), needed, "sessions")


def _block_indices(spec: ScenarioSetSpec, seed: np.random.SeedSequence, n_pool: int,
                   num_paths: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return circular_block_indices(rng, n_pool, num_paths, spec.horizon, spec.block_min,
                                  spec.block_max)


def historical(ctx: GenerationContext) -> FamilyResult:
    spec, base = ctx.spec, ctx.base
    steps = np.arange(spec.horizon)
    starts, applied = _regime_rows(ctx, np.arange(base.n_sessions - spec.horizon + 1),
                                   spec.min_regime_samples, "windows")
    if len(starts) > spec.num_paths:
        rng = np.random.default_rng(ctx.seed)
        chosen = np.sort(rng.choice(starts, size=spec.num_paths, replace=False))
    else:
        chosen = starts
    used = np.unique((starts[:, None] + steps).ravel())
    return FamilyResult(base.returns[chosen[:, None] + steps], used, applied, {
        "windows_available": len(starts), "window_starts": _dates(base, chosen)})


def bootstrap(ctx: GenerationContext, seed: np.random.SeedSequence | None = None
              ) -> FamilyResult:
    pool, applied = _bootstrap_pool(ctx)
    idx = _block_indices(ctx.spec, ctx.seed if seed is None else seed, len(pool),
                         ctx.spec.num_paths)
    return FamilyResult(ctx.base.returns[pool][idx], pool, applied, {"pool_sessions": len(pool)})


def factor_bootstrap(ctx: GenerationContext) -> FamilyResult:
    spec, base = ctx.spec, ctx.base
    betas, source = factor_exposures(base, ctx.inputs.exposures, ctx.where)
    factors = base.factor_returns(ctx.where)  # factor_exposures has checked them
    residuals = base.returns - factors @ betas.T
    pool, applied = _bootstrap_pool(ctx)
    seed_f, seed_e = ctx.seed.spawn(2)
    factor_rows = factors[pool]
    stress = correlation_stress(factor_rows, spec.correlation_stress)
    f = stress.apply(factor_rows[_block_indices(spec, seed_f, len(pool), spec.num_paths)])
    e = residuals[pool][_block_indices(spec, seed_e, len(pool), spec.num_paths)]
    paths = (spec.shock_scale * f) @ betas.T + e
    return FamilyResult(paths, pool, applied, {
        "pool_sessions": len(pool), "factor_ids": base.factor_ids, "beta_source": source,
        "factor_avg_corr": stress.avg_corr_before,
        "factor_avg_corr_stressed": stress.avg_corr_after})


def _base_or_zero(ctx: GenerationContext, num_paths: int,
                  seed: np.random.SeedSequence | None = None) -> FamilyResult:
    if ctx.spec.base == "BOOTSTRAP":
        return bootstrap(ctx, seed)
    shape = (num_paths, ctx.spec.horizon, len(ctx.base.instrument_ids))
    return FamilyResult(np.zeros(shape), np.arange(ctx.base.n_sessions))


def shock_overlay(ctx: GenerationContext) -> FamilyResult:
    spec, base = ctx.spec, ctx.base
    result = _base_or_zero(ctx, 1)
    paths = result.paths
    if spec.vol_spike is not None:
        s = spec.vol_spike
        paths[:, s.start_step - 1:s.last(spec.horizon), :] *= s.multiplier
    if spec.crash_gap is not None:
        c = spec.crash_gap
        beta = factor_beta(base, ctx.inputs.exposures, c.factor, ctx.where)
        paths[:, c.day - 1, :] += c.market_return * beta
    if spec.credit_freeze is not None:
        f = spec.credit_freeze
        weakness = instrument_weakness(base, ctx.inputs.weakness, ctx.where)
        paths[:, f.start_step - 1:f.last(spec.horizon), :] += f.return_per_step * weakness
    result.details["base"] = spec.base
    return result


def fragility_adversarial(ctx: GenerationContext) -> FamilyResult:
    spec, base = ctx.spec, ctx.base
    adv = spec.adversarial or AdversarialShock()
    weakness = instrument_weakness(base, ctx.inputs.weakness, ctx.where)
    sectors = instrument_sectors(base, ctx.inputs.sectors)
    seed_base, seed_scale = ctx.seed.spawn(2)
    result = _base_or_zero(ctx, spec.num_paths, seed_base)
    targeted = weakness >= adv.min_weakness
    unit = np.where(targeted, adv.adverse_return * weakness, 0.0)
    peer_unit, peers = _spillover(unit, targeted, sectors, adv.spillover)
    if sectors is None:
        base.warnings.append("no sectors given: no spillover to sector peers")
    scale = np.random.default_rng(seed_scale).uniform(adv.scale_min, adv.scale_max,
                                                      size=spec.num_paths)
    totals = scale[:, None] * (unit + peer_unit)[None, :]
    result.paths += spread_total(totals, spec.horizon)[:, None, :]
    ids = np.asarray(base.instrument_ids, dtype=object)
    result.details.update({
        "base": spec.base, "targets": {i: round(float(w), 6) for i, w in zip(
            ids[targeted], weakness[targeted], strict=True)},
        "peers": ids[peers].tolist(), "path_scales": scale.round(6).tolist()})
    return result


def _spillover(unit: np.ndarray, targeted: np.ndarray, sectors: np.ndarray | None,
               spillover: float) -> tuple[np.ndarray, np.ndarray]:
    """Per instrument: spillover times its sector's average targeted total (untargeted names
    of sectors with targets only), and the mask of those peers."""
    peer_unit = np.zeros_like(unit)
    if sectors is None:
        return peer_unit, np.zeros(len(unit), dtype=bool)
    codes, _ = pd.factorize(pd.Series(sectors, dtype=object), use_na_sentinel=True)
    known = codes >= 0
    n_codes = int(codes.max()) + 1 if known.any() else 0
    source = targeted & known
    sums = np.bincount(codes[source], weights=unit[source], minlength=n_codes)
    counts = np.bincount(codes[source], minlength=n_codes)
    peers = ~targeted & known
    peers[peers] = counts[codes[peers]] > 0
    peer_unit[peers] = spillover * sums[codes[peers]] / counts[codes[peers]]
    return peer_unit, peers


def named(ctx: GenerationContext) -> FamilyResult:
    spec, base = ctx.spec, ctx.base
    step = np.zeros(len(base.instrument_ids))
    for shock in spec.named:
        if shock.kind == "MARKET":
            scale = factor_beta(base, ctx.inputs.exposures, shock.factor, ctx.where)
        elif shock.kind == "SECTOR":
            sectors = instrument_sectors(base, ctx.inputs.sectors)
            if sectors is None:
                raise ScenarioError(f"{ctx.where}: a SECTOR shock needs inputs.sectors")
            scale = (sectors == shock.sector).astype(float)
            if not scale.any():
                base.warnings.append(f"no instrument in sector {shock.sector!r}")
        else:
            scale = instrument_weakness(base, ctx.inputs.weakness, ctx.where)
        step += scale * spread_total(shock.total_return, spec.horizon)
    paths = np.broadcast_to(step, (1, spec.horizon, len(step))).copy()
    return FamilyResult(paths, np.arange(base.n_sessions))


GENERATORS: dict[str, Callable[[GenerationContext], FamilyResult]] = {
    "HISTORICAL": historical,
    "BOOTSTRAP": bootstrap,
    "FACTOR_BOOTSTRAP": factor_bootstrap,
    "SHOCK_OVERLAY": shock_overlay,
    "FRAGILITY_ADVERSARIAL": fragility_adversarial,
    "NAMED": named,
}
