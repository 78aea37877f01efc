"""Wide (sessions x names) matrices and the trailing-window reductions the features use.

The session grid is the sorted set of dates present in the price and return rows. Every
window reduction runs over its own window only, one offset at a time in a fixed order, so the
value for date D is the same to the bit whatever history precedes the window and whatever
follows D (one call per date and one call for many dates agree exactly)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def wide(frame: pd.DataFrame | None, value: str, sessions: pd.DatetimeIndex,
         names: pd.Index) -> np.ndarray:
    """(sessions x names) float matrix of ``value`` (NaN where no row)."""
    out = np.full((len(sessions), len(names)), np.nan)
    if frame is None or frame.empty:
        return out
    rows = sessions.get_indexer(frame["date"])
    cols = names.get_indexer(frame["instrument_id"])
    ok = (rows >= 0) & (cols >= 0)
    out[rows[ok], cols[ok]] = frame[value].to_numpy(dtype=float)[ok]
    return out


def on_sessions(frame: pd.DataFrame | None, value: str, sessions: pd.DatetimeIndex,
                names: pd.Index) -> np.ndarray:
    """(sessions x names) sums of ``value`` of the rows mapped to the first session on or
    after their date (events such as ex-dividend dates), 0 where none."""
    out = np.zeros((len(sessions), len(names)))
    if frame is None or frame.empty or not len(sessions):
        return out
    pos = np.searchsorted(sessions.values, frame["date"].to_numpy(), side="left")
    cols = names.get_indexer(frame["instrument_id"])
    ok = (pos < len(sessions)) & (cols >= 0)
    np.add.at(out, (pos[ok], cols[ok]), frame["value"].to_numpy(dtype=float)[ok])
    return out


def _rows_back(matrix: np.ndarray, t_idx: np.ndarray, k: int) -> np.ndarray:
    """matrix[t - k] for each t in t_idx (NaN before the first session)."""
    rows = t_idx - k
    out = matrix[np.maximum(rows, 0)].copy()
    out[rows < 0] = np.nan
    return out


def window_return(returns: np.ndarray, t_idx: np.ndarray, back_from: int, back_to: int,
                  coverage: float) -> np.ndarray:
    """Total return from the close ``back_from`` sessions before t to the close ``back_to``
    sessions before it: the product of the one-session returns of sessions
    t - back_from + 1 .. t - back_to. NaN when the window starts before the grid or fewer
    than ``coverage`` of its sessions have a return (a return spanning missing rows covers
    them, so the product over the rows present is still the window's return)."""
    n = back_from - back_to
    acc = np.ones((len(t_idx), returns.shape[1]))
    count = np.zeros_like(acc)
    for k in range(back_to, back_from):
        r = _rows_back(returns, t_idx, k)
        ok = ~np.isnan(r)
        acc = np.where(ok, acc * (1.0 + np.where(ok, r, 0.0)), acc)
        count += ok
    out = acc - 1.0
    out[(count < coverage * n) | ((t_idx - back_from) < 0)[:, None]] = np.nan
    return out


def window_sum(values: np.ndarray, t_idx: np.ndarray, length: int) -> np.ndarray:
    """Sum of sessions t - length + 1 .. t (NaN when the window starts before the grid)."""
    acc = np.zeros((len(t_idx), values.shape[1]))
    for k in range(length):
        acc = acc + np.nan_to_num(_rows_back(values, t_idx, k), nan=0.0)
    acc[(t_idx - length + 1) < 0] = np.nan
    return acc


def window_count(present: np.ndarray, t_idx: np.ndarray, length: int) -> np.ndarray:
    """Sessions t - length + 1 .. t on which ``present`` holds."""
    acc = np.zeros((len(t_idx), present.shape[1]))
    for k in range(length):
        rows = t_idx - k
        acc += np.where((rows >= 0)[:, None], present[np.maximum(rows, 0)], False)
    return acc
