"""Tail outcomes the fragility model learns from: did an instrument lose ``drawdown`` or more
from its as-of close at some close within the next H sessions, or was it delisted within
them? Measured against the market index by default (the name's total return over the
index's), so that a market-wide crash, which the regime engine is there to read, does not count
as the fragility of every name in it. An outcome is known only once its horizon has passed, so
training on data dated before a cut uses the dates whose whole horizon lies before it
(purged)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def total_return_levels(returns: pd.DataFrame) -> pd.DataFrame:
    """Wide (sessions x instruments) total-return levels from long ``ret_1d`` rows; NaN where
    an instrument has no price (before listing, after delisting)."""
    wide = returns.pivot_table(index="date", columns="instrument_id", values="ret_1d",
                               aggfunc="first")
    wide.index = pd.to_datetime(wide.index)
    wide = wide.sort_index()
    priced = wide.notna()
    level = (1.0 + wide.fillna(0.0)).cumprod()
    return level.where(priced)


def index_levels(index_returns: pd.Series, sessions: pd.DatetimeIndex) -> pd.Series:
    """The index's total-return level on ``sessions`` (a missing day counts as flat)."""
    r = index_returns.copy()
    r.index = pd.to_datetime(r.index)
    return (1.0 + r.reindex(sessions).fillna(0.0)).cumprod()


def tail_outcomes(levels: pd.DataFrame, delistings: pd.Series, horizon: int,
                  drawdown: float, count_delisting: bool = True,
                  benchmark: pd.Series | None = None) -> pd.DataFrame:
    """Long rows (instrument_id, as_of_date, forward_worst, tail_event) for every session
    whose next ``horizon`` sessions are all in ``levels`` (its last session is the horizon's
    end). ``forward_worst`` is the lowest close in the horizon over the as-of close, minus 1
    (-1 when delisted within it); ``delistings`` maps instrument_id -> delisting date;
    ``benchmark`` (index levels on the same sessions) makes it relative to the index."""
    if benchmark is not None:
        levels = levels.div(benchmark.reindex(levels.index).to_numpy(), axis=0)
    sessions = levels.index
    n = len(sessions) - horizon
    if n <= 0:
        return pd.DataFrame(columns=["instrument_id", "as_of_date", "forward_worst",
                                     "tail_event"])
    values = levels.to_numpy(dtype=float)
    fwd = np.full((n, values.shape[1]), np.nan)
    for k in range(1, horizon + 1):  # running minimum of the next closes
        fwd = np.fmin(fwd, values[k:k + n])
    worst = fwd / values[:n] - 1.0
    event = worst <= -drawdown
    if count_delisting and len(delistings):
        delist = pd.to_datetime(delistings.reindex(levels.columns)).to_numpy()
        start = sessions.values[:n, None]
        end = sessions.values[horizon:horizon + n, None]
        gone = (~pd.isna(delist))[None, :] & (delist[None, :] > start) & \
            (delist[None, :] <= end)
        worst = np.where(gone, -1.0, worst)
        event = event | gone
    ok = ~np.isnan(values[:n])
    r, c = np.nonzero(ok & ~np.isnan(worst))
    return pd.DataFrame({"instrument_id": levels.columns.to_numpy()[c],
                         "as_of_date": sessions[:n][r], "forward_worst": worst[r, c],
                         "tail_event": event[r, c]})
