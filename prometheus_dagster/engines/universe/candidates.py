"""The candidate frame the universe engine ranks, assembled point in time from stored tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike

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


def _positions(index: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each value in ``index`` (-1 when absent)."""
    return index.get_indexer(pd.Index(values))


def _latest_on_or_before(keys: np.ndarray, dated: np.ndarray, n_keys: int,
                         days: np.ndarray) -> np.ndarray:
    """Row of the newest entry per (day, key) dated on or before the day, -1 when none
    (``keys``: the key position of each row, -1 rows ignored)."""
    out = np.full((len(days), n_keys), -1, dtype=np.int64)
    keep = (keys >= 0) & ~np.isnat(dated)
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((dated[rows], keys[rows]))]
    bounds = np.searchsorted(keys[order], np.arange(n_keys + 1))
    for k in range(n_keys):
        mine = order[bounds[k]:bounds[k + 1]]
        if len(mine):
            at = np.searchsorted(dated[mine], days, side="right") - 1
            out[:, k] = np.where(at >= 0, mine[np.maximum(at, 0)], -1)
    return out


def _on_day(values: pd.Series, col: np.ndarray, dated: np.ndarray, days: pd.DatetimeIndex,
            n: int, fill: float = np.nan, dtype: DTypeLike = float) -> np.ndarray:
    """A (day, key) matrix of ``values`` dated exactly on each day."""
    out = np.full((len(days), n), fill, dtype=dtype)
    t = days.get_indexer(pd.DatetimeIndex(dated))
    ok = (t >= 0) & (col >= 0)
    out[t[ok], col[ok]] = values.to_numpy()[ok]
    return out


def universe_candidates_range(dates: Sequence[pd.Timestamp], *, instruments: pd.DataFrame,
                              issuers: pd.DataFrame, delistings: pd.DataFrame,
                              prices: pd.DataFrame, liquidity: pd.DataFrame,
                              profiles: pd.DataFrame, soft_targets: pd.DataFrame,
                              history_starts: Sequence[pd.Timestamp] | None = None,
                              max_profile_age_days: int | None = None
                              ) -> dict[pd.Timestamp, pd.DataFrame]:
    """``universe_candidates`` of every date of ``dates`` (without scores: ``score`` is NaN)
    in one pass over the inputs: per date the same rows and values as calling it date by
    date (``history_starts[i]`` is the ``history_start`` of ``dates[i]``)."""
    days = pd.DatetimeIndex([pd.Timestamp(d) for d in dates])
    base = instruments[["instrument_id", "issuer_id", "asset_class"]].merge(
        issuers[["issuer_id", "sector"]], on="issuer_id", how="left")
    ids = pd.Index(instruments["instrument_id"]).unique()
    names = pd.Index(base["issuer_id"].dropna()).unique()
    col = _positions(ids, base["instrument_id"])
    icol = _positions(names, base["issuer_id"])
    day_ns = days.to_numpy(dtype="datetime64[ns]")

    # status on each day: listed after it, or delisted on or before it
    listed = pd.Series(_dates(instruments["listed_date"]).to_numpy(),
                       index=instruments["instrument_id"].to_numpy())
    gone = _dates(delistings["date"])
    first_gone = pd.Series(gone.to_numpy(), index=delistings["instrument_id"].to_numpy())
    first_gone = first_gone.dropna().groupby(level=0).min()
    lst = base["instrument_id"].map(listed).to_numpy(dtype="datetime64[ns]")
    dl = base["instrument_id"].map(first_gone).to_numpy(dtype="datetime64[ns]")
    status = np.where(dl[None, :] <= day_ns[:, None], "DELISTED",
                      np.where(lst[None, :] > day_ns[:, None], "NOT_LISTED", "ACTIVE"))

    # price rows in [history_start, day] per instrument
    p_dated = _dates(prices["date"]).to_numpy(dtype="datetime64[ns]")
    p_col = _positions(ids, prices["instrument_id"])
    starts = (np.full(len(days), np.datetime64("NaT"), dtype="datetime64[ns]")
              if history_starts is None else
              pd.DatetimeIndex(list(history_starts)).to_numpy(dtype="datetime64[ns]"))
    history = np.zeros((len(days), len(ids)), dtype=np.int64)
    keep = (p_col >= 0) & ~np.isnat(p_dated)
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((p_dated[rows], p_col[rows]))]
    bounds = np.searchsorted(p_col[order], np.arange(len(ids) + 1))
    has_start = ~np.isnat(starts)
    for k in range(len(ids)):
        mine = p_dated[order[bounds[k]:bounds[k + 1]]]
        hi = np.searchsorted(mine, day_ns, side="right")
        lo = np.where(has_start, np.searchsorted(mine, starts, side="left"), 0)
        history[:, k] = np.maximum(hi - lo, 0)

    close = _on_day(prices["close"], p_col, p_dated, days, len(ids))
    adv = _on_day(liquidity["adv_21d"], _positions(ids, liquidity["instrument_id"]),
                  _dates(liquidity["date"]).to_numpy(dtype="datetime64[ns]"), days, len(ids))
    soft = soft_targets[soft_targets["entity_type"] == "ISSUER"]
    soft_class = _on_day(soft["soft_target_class"], _positions(names, soft["entity_id"]),
                         _dates(soft["as_of_date"]).to_numpy(dtype="datetime64[ns]"), days,
                         len(names), dtype=object)

    # the newest profile on or before the day, and not older than the age limit
    pr_dated = _dates(profiles["as_of_date"]).to_numpy(dtype="datetime64[ns]")
    latest = _latest_on_or_before(_positions(names, profiles["issuer_id"]), pr_dated,
                                  len(names), day_ns)
    if max_profile_age_days is not None and len(pr_dated):  # no profiles: none to age out
        oldest = day_ns - np.timedelta64(int(max_profile_age_days), "D")
        seen = np.where(latest >= 0, pr_dated[np.maximum(latest, 0)], np.datetime64("NaT"))
        latest = np.where(seen >= oldest[:, None], latest, -1)

    frames: dict[pd.Timestamp, pd.DataFrame] = {}
    known = icol >= 0
    no_issuers = np.full(len(icol), -1)  # a prices-only market: no issuer to look up
    for t, day in enumerate(days):
        out = base.copy()
        iss = np.where(known, latest[t, np.maximum(icol, 0)], -1) if len(names) else no_issuers
        out["status"] = status[t]
        out["close"] = np.where(col >= 0, close[t, np.maximum(col, 0)], np.nan)
        out["adv_21d"] = np.where(col >= 0, adv[t, np.maximum(col, 0)], np.nan)
        out["history_sessions"] = np.where(col >= 0, history[t, np.maximum(col, 0)], 0)
        out["has_profile"] = iss >= 0
        for flag in FLAG_COLUMNS:
            values = (profiles[flag].to_numpy(dtype=float) if flag in profiles
                      else np.full(len(profiles), np.nan))
            out[flag] = np.where(iss >= 0, values[np.maximum(iss, 0)] if len(values)
                                 else np.nan, np.nan)
        out["soft_target_class"] = (np.where(known, soft_class[t, np.maximum(icol, 0)], np.nan)
                                    if len(names) else np.nan)
        out["score"] = np.nan
        frames[day] = out[list(CANDIDATE_COLUMNS)].reset_index(drop=True)
    return frames
