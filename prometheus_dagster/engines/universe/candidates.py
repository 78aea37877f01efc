"""The candidate frame the universe engine ranks, assembled point in time from stored tables."""

from __future__ import annotations

import pandas as pd

from prometheus_dagster.engines.universe.select import CANDIDATE_COLUMNS

FLAG_COLUMNS = ("leverage_score", "earnings_quality_score", "liquidity_risk")


def _dates(s: pd.Series) -> pd.Series:
    """``s`` as datetimes (already-typed columns pass through: this runs per date)."""
    return s if pd.api.types.is_datetime64_any_dtype(s) else pd.to_datetime(s)


def status_on(instruments: pd.DataFrame, delistings: pd.DataFrame,
              day: pd.Timestamp) -> pd.Series:
    """Each instrument's status on ``day`` from its listing date and the DELISTING actions
    dated on or before it (the static ``status`` column describes today, not ``day``)."""
    listed = _dates(instruments["listed_date"])
    gone = _dates(delistings.loc[_dates(delistings["date"]) <= day, "date"])
    delisted = set(delistings.loc[gone.index, "instrument_id"])
    status = pd.Series("ACTIVE", index=instruments["instrument_id"].to_numpy())
    status[(listed > day).to_numpy()] = "NOT_LISTED"
    status[status.index.isin(delisted)] = "DELISTED"
    return status


def universe_candidates(day: pd.Timestamp, *, instruments: pd.DataFrame, issuers: pd.DataFrame,
                        delistings: pd.DataFrame, prices: pd.DataFrame,
                        liquidity: pd.DataFrame, profiles: pd.DataFrame,
                        soft_targets: pd.DataFrame, scores: pd.DataFrame,
                        history_start: pd.Timestamp | None = None,
                        max_profile_age_days: int | None = None) -> pd.DataFrame:
    """One row per instrument of the market with the columns ``select_universe`` reads, as of
    ``day``: close, adv and flags of the day; history = price rows in [history_start, day]
    (a window fixed relative to ``day``, so the count never depends on which other dates are
    computed with it); the newest profile dated on or before it (and at most
    ``max_profile_age_days`` old); the soft-target class of its issuer; the strategy's
    assessment score. Rows of other dates are ignored."""
    dated = _dates(prices["date"])
    keep = dated <= day if history_start is None else (dated <= day) & (dated >= history_start)
    prices = prices[keep]
    history = prices.groupby("instrument_id")["date"].count()
    today = prices[_dates(prices["date"]) == day].set_index("instrument_id")["close"]
    adv = liquidity[_dates(liquidity["date"]) == day].set_index("instrument_id")[
        "adv_21d"]
    prof_dated = _dates(profiles["as_of_date"])
    prof = profiles[(prof_dated <= day) if max_profile_age_days is None else
                    (prof_dated <= day)
                    & (prof_dated >= day - pd.Timedelta(days=max_profile_age_days))]
    prof = prof.sort_values("as_of_date").groupby("issuer_id").tail(1).set_index("issuer_id")
    soft = soft_targets[(_dates(soft_targets["as_of_date"]) == day)
                        & (soft_targets["entity_type"] == "ISSUER")]
    soft = soft.set_index("entity_id")["soft_target_class"]
    score = scores[_dates(scores["as_of_date"]) == day].set_index("instrument_id")[
        "score"]
    out = instruments[["instrument_id", "issuer_id", "asset_class"]].merge(
        issuers[["issuer_id", "sector"]], on="issuer_id", how="left")
    iid, issuer = out["instrument_id"], out["issuer_id"]
    out["status"] = status_on(instruments, delistings, day).reindex(iid).to_numpy()
    out["close"] = iid.map(today).astype(float)
    out["adv_21d"] = iid.map(adv).astype(float)
    out["history_sessions"] = iid.map(history).fillna(0).astype(int)
    out["has_profile"] = issuer.isin(prof.index)
    for flag in FLAG_COLUMNS:
        out[flag] = issuer.map(prof[flag]).astype(float) if flag in prof else float("nan")
    out["soft_target_class"] = issuer.map(soft)
    out["score"] = iid.map(score).astype(float)
    return out[list(CANDIDATE_COLUMNS)].reset_index(drop=True)
