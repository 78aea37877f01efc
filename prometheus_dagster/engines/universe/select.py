"""Selection of one strategy's universe on one date from a frame of candidates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.universe.rules import SCREENS, UniverseRules
from prometheus_dagster.engines.universe.schemas import UNIVERSES

CANDIDATE_COLUMNS: tuple[str, ...] = (
    "instrument_id", "issuer_id", "asset_class", "status", "sector", "close", "adv_21d",
    "history_sessions", "has_profile", "leverage_score", "earnings_quality_score",
    "liquidity_risk", "soft_target_class", "score")
UNKNOWN_SECTOR = "UNKNOWN"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _num(v: Any) -> float:
    return math.nan if _missing(v) else float(v)


def _fmt(v: float) -> str:
    return f"{v:g}"


def hard_reasons(row: Mapping[str, Any], rules: UniverseRules) -> tuple[list[str], list[str]]:
    """(exclusion reasons, notes) of one candidate from the hard filters, the quality screens,
    the soft-target policy and the score. No exclusion reasons: the name is eligible."""
    out: list[str] = []
    notes: list[str] = []
    asset_class = row.get("asset_class")
    if _missing(asset_class) or asset_class not in rules.asset_classes:
        out.append(f"asset class {asset_class} not in {', '.join(rules.asset_classes)}")
    if rules.require_active and row.get("status") != "ACTIVE":
        out.append(f"status {row.get('status')} is not ACTIVE")
    close = _num(row.get("close"))
    if math.isnan(close) or close < rules.min_price:
        out.append(f"price {_fmt(close)} below min_price {_fmt(rules.min_price)}")
    adv = _num(row.get("adv_21d"))
    if math.isnan(adv) or adv < rules.min_adv:
        out.append(f"adv_21d {_fmt(adv)} below min_adv {_fmt(rules.min_adv)}")
    hist = _num(row.get("history_sessions"))
    if math.isnan(hist) or hist < rules.min_history_sessions:
        shown = "unknown" if math.isnan(hist) else str(int(hist))
        out.append(f"history {shown} sessions below min_history_sessions "
                   f"{rules.min_history_sessions}")
    has_profile = row.get("has_profile")
    if rules.require_profile and (_missing(has_profile) or not bool(has_profile)):
        out.append("no profile")
    excluded = set(rules.exclusion_list)
    for key in ("instrument_id", "issuer_id"):
        if not _missing(row.get(key)) and row[key] in excluded:
            out.append(f"on exclusion list ({row[key]})")
    for flag, limit in zip(SCREENS, rules.screen_limits().values(), strict=True):
        value = _num(row.get(flag))
        if math.isnan(value):
            notes.append(f"{flag} missing")
        elif value > limit:
            out.append(f"{flag} {_fmt(value)} above max {_fmt(limit)}")
    soft = row.get("soft_target_class")
    if soft == "SOFT_TARGET":
        if rules.soft_target_policy == "EXCLUDE":
            out.append("soft target (long-only book)")
        else:
            notes.append("soft target: short side only")
    elif soft == "WATCHLIST":
        notes.append("watchlist: at most SATELLITE")
    if math.isnan(_num(row.get("score"))):
        out.append("no assessment score")
    return out, notes


def select_universe(candidates: pd.DataFrame, rules: UniverseRules, *, market_id: str,
                    strategy_id: str, as_of_date: pd.Timestamp, config_id: str,
                    validate: bool = True) -> pd.DataFrame:
    """One ``universes`` row per candidate. Eligible names are ranked by score descending
    (ties by instrument_id) and walked in order: a name whose sector already holds
    ``max_per_sector`` selected names, or that comes after ``max_size`` selected names, is
    EXCLUDED; the first ``core_size`` selected names not on the watchlist are CORE, the rest
    SATELLITE. Soft targets under SHORT_ONLY may only be shorted. ``validate`` False leaves
    the rows unchecked and uncoerced, for a caller that validates many dates at once
    (``validate_frame`` of the concatenation equals the concatenation of validated frames).
    """
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise DataSchemaError(f"universe candidates: missing column(s) {', '.join(missing)}")
    if candidates["instrument_id"].duplicated().any():
        dup = candidates.loc[candidates["instrument_id"].duplicated(), "instrument_id"].iloc[0]
        raise DataSchemaError(f"universe candidates: instrument {dup} appears twice")
    long_side = "LONG" if rules.soft_target_policy == "EXCLUDE" else "BOTH"
    records: dict[str, dict[str, Any]] = {}
    eligible: list[tuple[float, str]] = []
    # rows as dicts of Python scalars (what ``to_dict("records")`` gives, built faster)
    columns = list(candidates.columns)
    for values in zip(*(candidates[c].tolist() for c in columns), strict=True):
        row = dict(zip(columns, values, strict=True))
        iid = str(row["instrument_id"])
        reasons, notes = hard_reasons(row, rules)
        score = _num(row["score"])
        records[iid] = {
            "market_id": market_id, "strategy_id": strategy_id, "as_of_date": as_of_date,
            "instrument_id": iid,
            "issuer_id": None if _missing(row["issuer_id"]) else str(row["issuer_id"]),
            "universe_score": None if math.isnan(score) else score, "rank": None,
            "tier": "EXCLUDED", "side_allowed": "NONE", "reasons": reasons or notes,
            "config_id": config_id,
            "_sector": UNKNOWN_SECTOR if _missing(row["sector"]) else str(row["sector"]),
            "_soft": row["soft_target_class"],
        }
        if not reasons:
            eligible.append((-score, iid))
    eligible.sort()
    per_sector: dict[str, int] = {}
    n_selected = n_core = 0
    for rank, (_, iid) in enumerate(eligible, start=1):
        rec = records[iid]
        rec["rank"] = rank
        sector = rec["_sector"]
        if per_sector.get(sector, 0) >= rules.max_per_sector:
            rec["reasons"] = [f"sector cap ({sector}: {rules.max_per_sector})", *rec["reasons"]]
            continue
        if n_selected >= rules.max_size:
            rec["reasons"] = [f"beyond max_size {rules.max_size}", *rec["reasons"]]
            continue
        per_sector[sector] = per_sector.get(sector, 0) + 1
        n_selected += 1
        if n_core < rules.core_size and rec["_soft"] != "WATCHLIST":
            rec["tier"] = "CORE"
            n_core += 1
        else:
            rec["tier"] = "SATELLITE"
        rec["side_allowed"] = "SHORT" if rec["_soft"] == "SOFT_TARGET" else long_side
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in records.values()]
    frame = pd.DataFrame(rows, columns=UNIVERSES.column_names)
    frame = frame.sort_values("instrument_id", kind="mergesort").reset_index(drop=True)
    return validate_frame(UNIVERSES, frame) if validate else frame


def select_universes(candidates_by_date: Mapping[pd.Timestamp, pd.DataFrame],
                     rules: UniverseRules, *, market_id: str, strategy_id: str,
                     config_id: str) -> pd.DataFrame:
    """``select_universe`` for each date, concatenated in date order."""
    frames = [select_universe(candidates_by_date[d], rules, market_id=market_id,
                              strategy_id=strategy_id, as_of_date=pd.Timestamp(d),
                              config_id=config_id)
              for d in sorted(candidates_by_date)]
    if not frames:
        return validate_frame(UNIVERSES, pd.DataFrame(columns=UNIVERSES.column_names))
    return validate_frame(UNIVERSES, pd.concat(frames, ignore_index=True))
