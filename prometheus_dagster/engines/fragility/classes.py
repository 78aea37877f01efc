"""Soft-target classes and fragility classes, with the reasons
(docs/engines/fragility.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_dagster.engines.fragility.config import FragilityConfig


def _below(x: float, line: float) -> bool:
    return bool(np.isfinite(x) and x < line)


def _above(x: float, line: float | None) -> bool:
    return bool(line is not None and np.isfinite(x) and x > line)


def soft_target_class(stability: float, fragility: float, weakness: float,
                      config: FragilityConfig) -> tuple[str, list[str]]:
    """(class, reasons). SOFT_TARGET needs all three lines crossed; WATCHLIST either of the
    looser stability and fragility lines; a missing value never crosses a line."""
    st, wl = config.soft_targets.soft_target, config.soft_targets.watchlist
    if (_below(stability, st.stability_below) and _above(fragility, st.fragility_above)
            and _above(weakness, st.weakness_above)):
        return "SOFT_TARGET", [f"stability {stability:.2f} < {st.stability_below}",
                               f"high_fragility {fragility:.2f} > {st.fragility_above}",
                               f"profile_weakness {weakness:.2f} > {st.weakness_above}"]
    reasons = []
    if _below(stability, wl.stability_below):
        reasons.append(f"stability {stability:.2f} < {wl.stability_below}")
    if _above(fragility, wl.fragility_above):
        reasons.append(f"high_fragility {fragility:.2f} > {wl.fragility_above}")
    if wl.weakness_above is not None and _above(weakness, wl.weakness_above):
        reasons.append(f"profile_weakness {weakness:.2f} > {wl.weakness_above}")
    return ("WATCHLIST", reasons) if reasons else ("NONE", [])


def soft_target_classes(stability: pd.DataFrame, measures: pd.DataFrame,
                        config: FragilityConfig, config_id: str) -> pd.DataFrame:
    """``soft_target_classes`` rows: one per entity with a stability vector on the date.
    Profile weakness is 1 - the fundamental component of the stability vector (the latest
    profile's weakness for an issuer, the members' mean for a sector or market)."""
    keys = ["entity_type", "entity_id", "as_of_date"]
    merged = stability[["market_id", *keys, "stability_score", "fundamental"]].merge(
        measures[[*keys, "high_fragility"]] if len(measures) else
        pd.DataFrame(columns=[*keys, "high_fragility"]), on=keys, how="left")
    merged["as_of_date"] = pd.to_datetime(merged["as_of_date"])
    weakness = 1.0 - merged["fundamental"].astype(float)
    classes, reasons = _classes_and_reasons(merged["stability_score"].to_numpy(dtype=float),
                                            merged["high_fragility"].to_numpy(dtype=float),
                                            weakness.to_numpy(dtype=float), config)
    return pd.DataFrame({
        "market_id": merged["market_id"], "entity_type": merged["entity_type"],
        "entity_id": merged["entity_id"], "as_of_date": merged["as_of_date"],
        "soft_target_class": classes, "stability_score": merged["stability_score"],
        "high_fragility": merged["high_fragility"], "profile_weakness": weakness,
        "reasons": reasons, "config_id": config_id,
    }).sort_values(["as_of_date", "entity_type", "entity_id"], ignore_index=True)


def _classes_and_reasons(stability: np.ndarray, fragility: np.ndarray, weakness: np.ndarray,
                         config: FragilityConfig) -> tuple[list[str], list[list[str]]]:
    """:func:`soft_target_class` of every row, with its reasons (plus "no scenario losses"
    where HighFragility is missing), the lines tested on whole columns."""
    st, wl = config.soft_targets.soft_target, config.soft_targets.watchlist

    def below(x: np.ndarray, line: float) -> np.ndarray:
        return np.isfinite(x) & (x < line)

    def above(x: np.ndarray, line: float | None) -> np.ndarray:
        return np.zeros(len(x), bool) if line is None else np.isfinite(x) & (x > line)

    soft = (below(stability, st.stability_below) & above(fragility, st.fragility_above)
            & above(weakness, st.weakness_above))
    watch = ~soft & (below(stability, wl.stability_below) | above(fragility, wl.fragility_above)
                     | above(weakness, wl.weakness_above))
    classes = np.where(soft, "SOFT_TARGET", np.where(watch, "WATCHLIST", "NONE")).tolist()
    # the reasons in soft_target_class's words and order, written for the flagged rows only
    s, f, w = stability.tolist(), fragility.tolist(), weakness.tolist()
    reasons: list[list[str]] = [[] for _ in range(len(s))]
    for k in np.flatnonzero(soft):
        reasons[k] += [f"stability {s[k]:.2f} < {st.stability_below}",
                       f"high_fragility {f[k]:.2f} > {st.fragility_above}",
                       f"profile_weakness {w[k]:.2f} > {st.weakness_above}"]
    for k in np.flatnonzero(watch & below(stability, wl.stability_below)):
        reasons[k].append(f"stability {s[k]:.2f} < {wl.stability_below}")
    for k in np.flatnonzero(watch & above(fragility, wl.fragility_above)):
        reasons[k].append(f"high_fragility {f[k]:.2f} > {wl.fragility_above}")
    for k in np.flatnonzero(watch & above(weakness, wl.weakness_above)):
        reasons[k].append(f"profile_weakness {w[k]:.2f} > {wl.weakness_above}")
    for k in np.flatnonzero(~np.isfinite(fragility)):
        reasons[k].append("no scenario losses")
    return classes, reasons


def fragility_class(score: float, soft_class: str, tail_probability: float | None,
                    config: FragilityConfig) -> str:
    """CRISIS: tail probability or score at its crisis line; SHORT_CANDIDATE: a soft target,
    or a score at its line with (when a model exists) enough tail probability; WATCHLIST: on
    the soft-target watchlist or a score at its line; else NONE."""
    cc = config.classes
    p = tail_probability if tail_probability is not None and np.isfinite(tail_probability) \
        else None
    s = score if np.isfinite(score) else 0.0
    if (p is not None and p >= cc.crisis_probability) or s >= cc.crisis_score:
        return "CRISIS"
    if soft_class == "SOFT_TARGET" or (s >= cc.short_score
                                       and (p is None or p >= cc.short_probability)):
        return "SHORT_CANDIDATE"
    if soft_class == "WATCHLIST" or s >= cc.watch_score:
        return "WATCHLIST"
    return "NONE"


def fragility_classes(score: np.ndarray, soft_class: np.ndarray, tail_probability: np.ndarray,
                      config: FragilityConfig) -> np.ndarray:
    """:func:`fragility_class` of every row (a NaN tail probability: no model)."""
    cc = config.classes
    has_p = np.isfinite(tail_probability)
    p = np.where(has_p, tail_probability, 0.0)
    s = np.where(np.isfinite(score), score, 0.0)
    crisis = (has_p & (p >= cc.crisis_probability)) | (s >= cc.crisis_score)
    short = ~crisis & ((soft_class == "SOFT_TARGET")
                       | ((s >= cc.short_score) & (~has_p | (p >= cc.short_probability))))
    watch = ~crisis & ~short & ((soft_class == "WATCHLIST") | (s >= cc.watch_score))
    return np.select([crisis, short, watch], ["CRISIS", "SHORT_CANDIDATE", "WATCHLIST"],
                     "NONE").astype(object)


def position_templates(entity_type: str, entity_id: str, instrument_id: str | None,
                       fragility_class_: str, score: float, components: dict[str, float],
                       config: FragilityConfig) -> list[dict]:
    """What a portfolio manager could do about a fragile entity, scaled by capital. Engines
    never trade: these are hints for the portfolio engine and for people."""
    if fragility_class_ == "NONE":
        return []
    tc = config.templates
    drivers = ", ".join(f"{k} {v:.2f}" for k, v in sorted(components.items(),
                                                         key=lambda kv: -kv[1])
                        if np.isfinite(v))
    base = {"entity_type": entity_type, "entity_id": entity_id, "instrument_id": instrument_id}
    if fragility_class_ == "WATCHLIST":
        return [{**base, "direction": "FLAT", "kind": "AVOID_LONG", "notional_hint": 0.0,
                 "rationale": f"watchlist: {drivers}"}]
    notional = round(min(tc.capital * tc.base_fraction * max(score, 0.0),
                         tc.capital * tc.max_fraction), 2)
    kind = {"ISSUER": "EQUITY_SHORT", "SECTOR": "SECTOR_HEDGE"}.get(entity_type,
                                                                    "INDEX_HEDGE")
    out = [{**base, "direction": "SHORT", "kind": kind, "notional_hint": notional,
            "rationale": f"{fragility_class_.lower()}: {drivers}"}]
    if fragility_class_ == "CRISIS" and entity_type == "ISSUER":
        out[0]["notional_hint"] = round(notional * (1 - tc.crisis_put_share), 2)
        out.append({**base, "direction": "LONG", "kind": "PUT_SPREAD",
                    "notional_hint": round(notional * tc.crisis_put_share, 2),
                    "rationale": f"crisis convexity: {drivers}"})
    return out
