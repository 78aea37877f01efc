"""What a stability row was missing or had to estimate, in words (its ``diagnostics``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from prometheus_dagster.engines.stability.config import StabilityConfig


def _nan(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def count(v: float | None) -> int:
    """A day or name count from a float array (NaN: 0)."""
    return 0 if v is None or math.isnan(v) else int(v)


def regime_note(label: str | None, config: StabilityConfig) -> str | None:
    if label is None:
        return "regime: no label on the date; vol multiplier 1.0"
    if label not in config.regime_vol_multiplier:
        return f"regime: no multiplier configured for {label}; vol multiplier 1.0"
    return None


def liquidity_notes(r: Mapping[str, Any], config: StabilityConfig) -> list[str]:
    parts = []
    if _nan(r["liq_xs"]):
        parts.append("no amihud_21d" if _nan(r["amihud"]) or r["amihud"] < 0 else
                     f"Amihud cross-section of {count(r['amihud_names'])} names < "
                     f"min_cross_section {config.min_cross_section}")
    if _nan(r["liq_own"]):
        parts.append("no positive adv_21d" if _nan(r["adv"]) or r["adv"] <= 0 else
                     f"ADV history of {count(r['adv_history'])} sessions < "
                     f"min_history_sessions {config.min_history_sessions}")
    if not parts:
        return []
    tail = "" if _nan(r["liquidity"]) else " (scored from the other part)"
    return ["liquidity: " + "; ".join(parts) + tail]


def volatility_notes(r: Mapping[str, Any], config: StabilityConfig,
                     cross_section: str | None) -> list[str]:
    """``cross_section`` names the cross-section a short own history falls back on (None:
    there is none, e.g. the market)."""
    if _nan(r["vol_21d"]):
        return ["volatility: no vol_21d on the date"]
    notes = []
    short = (f"own vol_63d history of {count(r['vol_history'])} sessions < "
             f"min_history_sessions {config.min_history_sessions}")
    if r["reference_from_xs"] == 1:
        notes.append(f"volatility: {short}; reference_vol is the {cross_section} median")
    elif _nan(r["reference_vol"]):
        fallback = f"no {cross_section} reference" if cross_section else "nothing to fall back on"
        notes.append(f"volatility: {short} and {fallback}; level part only")
    if _nan(r["level_ratio"]):
        notes.append(f"volatility: no cross-sectional median vol (fewer than "
                     f"{config.min_cross_section} names); own-history part only")
    return notes


def contagion_notes(r: Mapping[str, Any], config: StabilityConfig, index_source: str,
                    has_sector: bool | None) -> list[str]:
    """``has_sector``: None where a sector beta does not apply (FX)."""
    notes = []
    if _nan(r["market_beta"]):
        notes.append("contagion: no market index returns" if index_source == "none" else
                     f"contagion: {count(r['market_days'])} market stress days with a return "
                     f"< min_stress_days {config.min_stress_days}")
    if has_sector is False:
        notes.append("contagion: no sector; no sector stress beta")
    elif has_sector and _nan(r["sector_beta"]):
        notes.append(f"contagion: {count(r['sector_days'])} sector stress days (sector "
                     f"without the name) < min_stress_days {config.min_stress_days}")
    return notes
