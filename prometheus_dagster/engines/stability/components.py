"""The stability components as maps of wide (session x entity) frames to [0, 1], 1 = most
stable, NaN when not computable. Each reads only the rows up to the one it scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_dagster.engines.stability.config import StabilityConfig


def hill(x: np.ndarray | pd.DataFrame | float, half: float, power: float) -> np.ndarray:
    """``1 / (1 + (max(x, 0) / half) ** power)``: 1 at 0, 0.5 at ``half``, non-increasing,
    in [0, 1]; NaN stays NaN."""
    v = np.maximum(np.asarray(x, dtype=float), 0.0)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + (v / half) ** power)


def weighted_mean(parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted mean of the parts present (non-NaN) at each position, weights renormalised
    over them; NaN where no part with a positive weight is present."""
    num: np.ndarray | float = 0.0
    den: np.ndarray | float = 0.0
    for part, w in zip(parts, weights, strict=True):
        p = np.asarray(part, dtype=float)
        present = ~np.isnan(p)
        num = num + w * np.where(present, p, 0.0)
        den = den + w * present
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.asarray(den) > 0, num / den, np.nan)


def _like(values: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


def cross_sectional_median(frame: pd.DataFrame, min_names: int) -> pd.Series:
    """Median across the columns of each row, NaN with fewer than ``min_names`` values."""
    return frame.median(axis=1).where(frame.notna().sum(axis=1) >= min_names)


@dataclass(frozen=True)
class LiquidityParts:
    cross_section: pd.DataFrame  # 1 - percentile of Amihud among the date's names
    own_history: pd.DataFrame  # logistic of log ADV against its trailing median
    adv_history: pd.DataFrame  # log ADV values in the trailing history window
    cross_section_names: pd.Series  # names with an Amihud value on the date
    component: pd.DataFrame


def liquidity_component(amihud: pd.DataFrame, adv: pd.DataFrame,
                        config: StabilityConfig) -> LiquidityParts:
    """Liquidity of each name (columns) per session (rows), NaN where not priced.

    * cross_section = 1 - (rank - 0.5) / n, the rank (ties averaged) of the name's
      ``amihud_21d`` among the n names with one on the date (the same as ranking log Amihud);
      NaN when n < ``min_cross_section``. Non-increasing in the name's own Amihud.
    * own_history = 1 / (1 + exp(-(log ADV - m) / adv_log_scale)), m the median of log ADV
      over the trailing ``liquidity_history_sessions`` sessions up to the date (inclusive,
      at least ``min_history_sessions`` values); non-decreasing in the current ADV.
    * component = amihud_weight x cross_section + (1 - amihud_weight) x own_history,
      renormalised over the parts present.
    """
    ami = amihud.where(amihud >= 0)
    n = ami.notna().sum(axis=1)
    pct = ami.rank(axis=1, method="average").sub(0.5).div(n.replace(0, np.nan), axis=0)
    xs = (1.0 - pct).where(n >= config.min_cross_section, axis=0)
    log_adv = np.log(adv.where(adv > 0))
    window = config.liquidity_history_sessions
    med = log_adv.rolling(window, min_periods=config.min_history_sessions).median()
    with np.errstate(over="ignore"):
        own = 1.0 / (1.0 + np.exp(-(log_adv - med) / config.adv_log_scale))
    comp = weighted_mean([xs.to_numpy(), own.to_numpy()],
                         [config.amihud_weight, 1.0 - config.amihud_weight])
    history = log_adv.rolling(window, min_periods=1).count()
    return LiquidityParts(xs, own, history, n, _like(comp, xs))


@dataclass(frozen=True)
class VolatilityParts:
    vol_ratio: pd.DataFrame  # vol_21d / (reference vol x regime multiplier)
    level_ratio: pd.DataFrame  # vol_21d / the date's cross-sectional median vol_21d
    reference_vol: pd.DataFrame
    reference_from_cross_section: pd.DataFrame  # bool: own history too short
    own_history: pd.DataFrame  # vol_63d values in the trailing history window
    component: pd.DataFrame


def volatility_component(vol_21d: pd.DataFrame, vol_63d: pd.DataFrame, multiplier: pd.Series,
                         config: StabilityConfig, level_median: pd.Series | None = None,
                         fallback_reference: pd.Series | None = None) -> VolatilityParts:
    """Volatility of each entity (columns) per session (rows), against its own history and
    the regime.

    * reference_vol = median of the entity's own ``vol_63d`` over the trailing
      ``vol_history_sessions`` sessions up to the date (at least ``min_history_sessions``
      values), else ``fallback_reference`` of the date (default: the date's cross-sectional
      median ``vol_63d`` of the columns, with at least ``min_cross_section`` names).
    * vol_ratio = vol_21d / (reference_vol x multiplier of the date), the multiplier raising
      the level of vol that counts as normal in stressed regimes.
    * level_ratio = vol_21d / ``level_median`` of the date (default: the cross-sectional
      median ``vol_21d`` of the columns, with at least ``min_cross_section`` names).
    * component = vol_own_weight x hill(vol_ratio; vol_ratio_half, vol_power)
      + (1 - vol_own_weight) x hill(level_ratio; vol_level_half, vol_power), renormalised
      over the parts present. Non-increasing in vol_21d.
    """
    window = config.vol_history_sessions
    own_count = vol_63d.rolling(window, min_periods=1).count()
    own_ref = vol_63d.rolling(window, min_periods=config.min_history_sessions).median()
    if fallback_reference is None:
        fallback_reference = cross_sectional_median(vol_63d, config.min_cross_section)
    fallback = pd.DataFrame(np.repeat(fallback_reference.to_numpy()[:, None],
                                      vol_63d.shape[1], axis=1),
                            index=vol_63d.index, columns=vol_63d.columns)
    reference = own_ref.where(own_ref.notna(), fallback)
    from_xs = own_ref.isna() & fallback.notna()
    mult = multiplier.reindex(vol_21d.index).fillna(1.0).to_numpy()[:, None]
    vol_ratio = vol_21d / (reference.where(reference > 0) * mult)
    if level_median is None:
        level_median = cross_sectional_median(vol_21d, config.min_cross_section)
    level_ratio = vol_21d.div(level_median.where(level_median > 0), axis=0)
    comp = weighted_mean(
        [hill(vol_ratio, config.vol_ratio_half, config.vol_power),
         hill(level_ratio, config.vol_level_half, config.vol_power)],
        [config.vol_own_weight, 1.0 - config.vol_own_weight])
    return VolatilityParts(vol_ratio, level_ratio, reference, from_xs, own_count,
                           _like(comp, vol_21d))


def contagion_component(market_beta: np.ndarray, sector_beta: np.ndarray,
                        config: StabilityConfig) -> tuple[np.ndarray, np.ndarray]:
    """(component, combined beta): combined = market_weight x market_beta + (1 -
    market_weight) x sector_beta (renormalised when one is missing), component =
    hill(combined; beta_half, beta_power), so a beta at or below 0 (a name that holds up or
    rises on stress days) scores 1 and a larger stress beta scores lower."""
    combined = weighted_mean([market_beta, sector_beta],
                             [config.market_weight, 1.0 - config.market_weight])
    return hill(combined, config.beta_half, config.beta_power), combined


def comovement_component(rho_stress: np.ndarray | float, rho_all: np.ndarray | float,
                         config: StabilityConfig) -> np.ndarray:
    """MARKET contagion from the average pairwise co-movement of its members on stress days
    (rho_stress) and on all days (rho_all) of the window: 1 - (1 - w) x clip(rho_stress, 0, 1)
    - w x clip((rho_stress - rho_all) / (1 - rho_all), 0, 1), w = comovement_jump_weight. The
    second term is the share of the diversification left on ordinary days that stress
    removes."""
    rs = np.asarray(rho_stress, dtype=float)
    ra = np.asarray(rho_all, dtype=float)
    level = np.clip(rs, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        jump = np.where(ra < 1.0, np.clip((rs - ra) / (1.0 - ra), 0.0, 1.0), 0.0)
    w = config.comovement_jump_weight
    out = 1.0 - (1.0 - w) * level - w * jump
    return np.where(np.isnan(rs) | np.isnan(ra), np.nan, out)


def fundamental_component(profiles: pd.DataFrame, issuer_ids: Sequence[str],
                          dates: Sequence[pd.Timestamp],
                          config: StabilityConfig) -> pd.DataFrame:
    """Per (issuer_id, as_of_date) pair: ``fundamental`` = 1 - profile_weakness of the
    issuer's latest profile row dated on or before the date and at most
    ``profile_max_age_days`` old, NaN when there is none or its profile_weakness is null;
    ``profile_date`` of the row used and ``note`` saying what was missing. Rows follow the
    order of the pairs."""
    pairs = pd.DataFrame({"issuer_id": pd.Series(issuer_ids, dtype=object).astype(str),
                          "as_of_date": pd.DatetimeIndex(dates).normalize()})
    pairs["_order"] = np.arange(len(pairs))
    have = (profiles is not None and not profiles.empty
            and {"issuer_id", "as_of_date", "profile_weakness"} <= set(profiles.columns))
    if have:
        prof = pd.DataFrame({
            "issuer_id": profiles["issuer_id"].astype(str),
            "profile_date": pd.to_datetime(profiles["as_of_date"]).dt.normalize(),
            "weakness": pd.to_numeric(profiles["profile_weakness"], errors="coerce")})
        prof = prof.sort_values(["profile_date", "issuer_id"], kind="stable")
        prof = prof.drop_duplicates(["issuer_id", "profile_date"], keep="last")
        merged = pd.merge_asof(pairs.sort_values("as_of_date", kind="stable"), prof,
                               left_on="as_of_date", right_on="profile_date", by="issuer_id",
                               direction="backward")
        merged = merged.sort_values("_order").reset_index(drop=True)
    else:
        merged = pairs.assign(profile_date=pd.NaT, weakness=np.nan)
    age = (merged["as_of_date"] - merged["profile_date"]).dt.days
    # a profile older than profile_max_age_days is outside what a run of that date reads (its
    # window starts that many days before it), so it counts as no profile: a range of dates
    # then equals its dates computed one by one
    stale = age > config.profile_max_age_days
    merged.loc[stale, "profile_date"] = pd.NaT
    merged.loc[stale, "weakness"] = np.nan
    none = merged["profile_date"].isna()
    empty = ~none & merged["weakness"].isna()
    fundamental = (1.0 - merged["weakness"].clip(0.0, 1.0)).where(~(none | empty))
    when = merged["profile_date"].dt.strftime("%Y-%m-%d")
    note = pd.Series(None, index=merged.index, dtype=object)
    note[none] = "fundamental: no profile dated on or before the date"
    note[empty] = "fundamental: latest profile (" + when[empty] + ") has no profile_weakness"
    return pd.DataFrame({"issuer_id": merged["issuer_id"], "as_of_date": merged["as_of_date"],
                         "fundamental": fundamental.astype(float),
                         "profile_date": merged["profile_date"], "note": note})


def stability_score(components: pd.DataFrame, weights: Mapping[str, float]) -> pd.Series:
    """Weighted mean of the components present in each row (columns named by ``weights``; a
    column absent from the frame counts as missing), weights renormalised over the present
    ones; NaN only when no component with a positive weight is present."""
    parts = [components[c].to_numpy(dtype=float) if c in components.columns
             else np.full(len(components), np.nan) for c in weights]
    return pd.Series(weighted_mean(parts, list(weights.values())), index=components.index,
                     name="stability_score")
