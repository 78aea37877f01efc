"""Inputs of the feature engine and their wide, per-market form.

Conventions (they hold for every table of the engine):

* **Rows are sessions present in the data.** A market's session grid is the sorted set of dates
  on which any of its instruments has a price row. Windows count sessions of that grid.
* **Returns span gaps.** ``ret_1d`` is the total return since the instrument's previous price
  row; when rows are missing it spans the gap (it is then not a *one-day* return, and rolling
  regressions, correlations and factor portfolios, which need one-day returns, leave it out).
* **Point in time.** A corporate action dated d applies to the first price row dated >= d; a
  statement applies from the first session on or after its ``report_date``.
* **Every rolling value is computed from its own window only**, element by element in a fixed
  order, never by running sums over the whole history, so a row's value is the same (to the
  bit) whatever history precedes its window and whatever data follows its date.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.engines.features.config import FeaturesConfig

DateLike: TypeAlias = dt.date | dt.datetime | pd.Timestamp | str | np.datetime64

# (rows x names) elements processed at once by the rolling reductions
_CHUNK_ELEMENTS = 1 << 20


# --- inputs -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FeatureInputs:
    """The history the feature engine reads: canonical frames as stored in the warehouse.

    ``prices`` (prices_daily: market_id, instrument_id, date, close, volume...) is required;
    ``corporate_actions`` (SPLIT value = new shares per old share, DIVIDEND value = cash per
    share on the ex-date), ``fundamentals`` (needs issuer_id, period_end, report_date and the
    line items used) and ``instruments`` (instrument_id, issuer_id, asset_class) are optional:
    without them returns are price-only, factors needing fundamentals are skipped and every
    instrument belongs to every universe.
    """

    prices: pd.DataFrame
    corporate_actions: pd.DataFrame | None = None
    fundamentals: pd.DataFrame | None = None
    instruments: pd.DataFrame | None = None

    def truncated(self, as_of_date: DateLike) -> FeatureInputs:
        """What was known at the end of ``as_of_date``: prices and corporate actions dated
        <= as_of_date, statements reported <= as_of_date."""
        d = to_date(as_of_date)
        return FeatureInputs(
            prices=rows_until(self.prices, "date", d),
            corporate_actions=rows_until(self.corporate_actions, "date", d),
            fundamentals=rows_until(self.fundamentals, "report_date", d),
            instruments=self.instruments,
        )


def rows_until(df: pd.DataFrame | None, col: str, day: pd.Timestamp) -> pd.DataFrame | None:
    """The rows of ``df`` whose ``col`` falls on or before ``day`` (no table stays None)."""
    if df is None:
        return None
    return df[pd.to_datetime(df[col]).dt.normalize() <= day]


def to_date(value: DateLike) -> pd.Timestamp:
    """A date as a naive midnight Timestamp."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def to_dates(values: Iterable[DateLike]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(sorted({to_date(v) for v in values}), name="date")


def _require(df: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataSchemaError(f"features: table {table} lacks column(s) {', '.join(missing)}")


def _dates(s: pd.Series, table: str, column: str) -> pd.Series:
    out = pd.to_datetime(s, errors="coerce")
    if out.isna().any():
        bad = s[out.isna()].iloc[0]
        raise DataSchemaError(f"features: table {table}, column {column!r}: {bad!r} is not a date")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.dt.normalize().astype("datetime64[ns]")


def _clean_prices(prices: pd.DataFrame, need_market: bool) -> pd.DataFrame:
    cols = ["instrument_id", "date", "close"] + (["market_id"] if need_market else [])
    _require(prices, "prices_daily", cols)
    p = pd.DataFrame({
        "instrument_id": prices["instrument_id"].astype(str).to_numpy(),
        "date": _dates(prices["date"], "prices_daily", "date").to_numpy(),
        "close": pd.to_numeric(prices["close"], errors="coerce").to_numpy(dtype=float),
        "volume": (pd.to_numeric(prices["volume"], errors="coerce").to_numpy(dtype=float)
                   if "volume" in prices.columns else np.nan),
    })
    if "market_id" in prices.columns:
        p["market_id"] = prices["market_id"].astype(str).to_numpy()
    p.loc[~(p["close"] > 0), "close"] = np.nan
    dup = p.duplicated(["instrument_id", "date"])
    if dup.any():
        first = p.loc[dup].iloc[0]
        raise DataSchemaError(
            f"features: table prices_daily: duplicate key instrument_id={first.instrument_id}, "
            f"date={first.date.date()} ({int(dup.sum())} duplicate rows)")
    return p.sort_values(["instrument_id", "date"], kind="stable").reset_index(drop=True)


def _clean_actions(ca: pd.DataFrame | None) -> pd.DataFrame:
    empty = pd.DataFrame({"instrument_id": pd.Series([], dtype=object),
                          "date": pd.Series([], dtype="datetime64[ns]"),
                          "action_type": pd.Series([], dtype=object),
                          "value": pd.Series([], dtype=float)})
    if ca is None or len(ca) == 0:
        return empty
    _require(ca, "corporate_actions", ["instrument_id", "date", "action_type", "value"])
    out = pd.DataFrame({
        "instrument_id": ca["instrument_id"].astype(str).to_numpy(),
        "date": _dates(ca["date"], "corporate_actions", "date").to_numpy(),
        "action_type": ca["action_type"].astype(str).str.upper().to_numpy(),
        "value": pd.to_numeric(ca["value"], errors="coerce").to_numpy(dtype=float),
    })
    split = (out["action_type"] == "SPLIT") & (out["value"] > 0)
    div = (out["action_type"] == "DIVIDEND") & out["value"].notna()
    return out[split | div].reset_index(drop=True)


# --- adjusted returns ---------------------------------------------------------------------
def _attach_actions(p: pd.DataFrame, ca: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per price row of ``p`` (sorted by instrument, date): the product of split ratios and the
    sum of cash dividends of the actions that apply to it (dated after the previous row, up to
    and including this row)."""
    split = np.ones(len(p))
    div = np.zeros(len(p))
    if len(ca) == 0 or len(p) == 0:
        return split, div
    rows = pd.DataFrame({"instrument_id": p["instrument_id"].to_numpy(),
                         "date": p["date"].to_numpy(), "row": np.arange(len(p))})
    left = ca.sort_values("date", kind="stable")
    right = rows.sort_values("date", kind="stable")
    hit = pd.merge_asof(left, right, on="date", by="instrument_id", direction="forward")
    hit = hit[hit["row"].notna()]
    if len(hit) == 0:
        return split, div
    hit = hit.assign(row=hit["row"].astype(np.int64))
    s = hit[hit["action_type"] == "SPLIT"]
    if len(s):
        g = s.groupby("row")["value"].prod()
        split[g.index.to_numpy()] = g.to_numpy()
    d = hit[hit["action_type"] == "DIVIDEND"]
    if len(d):
        g = d.groupby("row")["value"].sum()
        div[g.index.to_numpy()] = g.to_numpy()
    return split, div


def _adjusted(p: pd.DataFrame, ca: pd.DataFrame) -> np.ndarray:
    split, div = _attach_actions(p, ca)
    close = p["close"].to_numpy()
    prev = p.groupby("instrument_id", sort=False)["close"].shift(1).to_numpy()
    return (close * split + div) / prev - 1.0


def adjusted_returns(prices: pd.DataFrame, corporate_actions: pd.DataFrame | None = None,
                     ) -> pd.DataFrame:
    """Daily total returns from raw closes and corporate actions.

    For consecutive price rows of an instrument (t-1 = its previous row),
    ``r_t = (close_t * k_t + d_t) / close_{t-1} - 1`` where ``k_t`` is the product of the SPLIT
    ratios (new shares per old share) and ``d_t`` the sum of the cash DIVIDENDs per share of the
    actions dated after the previous row and up to row t (an action dated on a day without a
    price row applies to the next row; when a split and a dividend fall on the same row, the
    dividend is taken per pre-split share). Consecutive rows are consecutive sessions present
    in the data: when rows are missing the return spans the gap. The first row of each
    instrument has a NaN return, as has a row whose close or previous close is missing.

    Returns a frame (instrument_id, date, ret_1d) sorted by instrument and date.
    """
    p = _clean_prices(prices, need_market=False)
    ret = _adjusted(p, _clean_actions(corporate_actions))
    return pd.DataFrame({"instrument_id": p["instrument_id"].to_numpy(dtype=object),
                         "date": p["date"].to_numpy(), "ret_1d": ret})


# --- rolling windows ----------------------------------------------------------------------
def _row_chunks(rows: np.ndarray, n: int) -> Iterator[tuple[int, np.ndarray]]:
    step = max(1, _CHUNK_ELEMENTS // max(1, n))
    for i in range(0, len(rows), step):
        yield i, rows[i:i + step]


def padded_window_source(a: np.ndarray, window: int, pad: float) -> np.ndarray:
    return np.concatenate([np.full((window - 1, *a.shape[1:]), pad), a], axis=0)


def window_slices(padded: np.ndarray, window: int, rows: np.ndarray) -> Iterator[np.ndarray]:
    """The values of the trailing windows ending at ``rows``, one window position at a time,
    oldest first: the j-th array holds, for each row r, row r - window + 1 + j of the original
    array (``padded`` is it with ``window - 1`` padding rows in front)."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        lo = int(rows[0])
        for j in range(window):
            yield padded[lo + j:lo + j + len(rows)]
    else:
        for j in range(window):
            yield padded[rows + j]


def _window_sum_count(padded: np.ndarray, window: int, rows: np.ndarray,
                      n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the non-NaN values in each trailing window ending at ``rows``."""
    total = np.zeros((len(rows), n_cols))
    cnt = np.zeros((len(rows), n_cols), dtype=np.int64)
    for x in window_slices(padded, window, rows):
        ok = ~np.isnan(x)
        cnt += ok
        total += np.where(ok, x, 0.0)
    return total, cnt


def rolling_mean(a: np.ndarray, window: int, rows: np.ndarray, min_obs: int) -> np.ndarray:
    """Mean of the non-NaN values of each trailing window (NaN below ``min_obs`` values)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.full((len(rows), a.shape[1]), np.nan)
    padded = padded_window_source(a, window, np.nan)
    for i, rr in _row_chunks(rows, a.shape[1]):
        total, cnt = _window_sum_count(padded, window, rr, a.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i:i + len(rr)] = np.where(cnt >= min_obs, total / cnt, np.nan)
    return out


def rolling_std(a: np.ndarray, window: int, rows: np.ndarray, min_obs: int) -> np.ndarray:
    """Standard deviation (ddof=1) of the non-NaN values of each trailing window."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.full((len(rows), a.shape[1]), np.nan)
    padded = padded_window_source(a, window, np.nan)
    for i, rr in _row_chunks(rows, a.shape[1]):
        total, cnt = _window_sum_count(padded, window, rr, a.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / cnt
            ss = np.zeros_like(total)
            for x in window_slices(padded, window, rr):
                d = x - mean
                ss += np.where(np.isnan(d), 0.0, d * d)
            sd = np.sqrt(ss / (cnt - 1))
        out[i:i + len(rr)] = np.where(cnt >= max(min_obs, 2), sd, np.nan)
    return out


def rolling_prod(a: np.ndarray, window: int, rows: np.ndarray) -> np.ndarray:
    """Product of each trailing window (NaN if the window holds a NaN or reaches before the
    first row)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.full((len(rows), a.shape[1]), np.nan)
    padded = padded_window_source(a, window, np.nan)
    for i, rr in _row_chunks(rows, a.shape[1]):
        acc = np.ones((len(rr), a.shape[1]))
        for x in window_slices(padded, window, rr):
            acc *= x
        out[i:i + len(rr)] = acc
    return out


def rolling_drawdowns(growth: np.ndarray, window: int, rows: np.ndarray,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """For the level path that starts at 1 at each trailing window's first session and moves
    by ``growth`` (1 + return) after it: its drawdown at the window's end (level / running
    peak - 1) and its worst drawdown within the window. Windows reaching before the first
    session start flat."""
    rows = np.asarray(rows, dtype=np.int64)
    n = growth.shape[1]
    dd = np.full((len(rows), n), np.nan)
    mdd = np.full((len(rows), n), np.nan)
    padded = padded_window_source(growth, window, 1.0)
    for i, rr in _row_chunks(rows, n):
        level = np.ones((len(rr), n))
        peak = np.ones((len(rr), n))
        worst = np.ones((len(rr), n))
        ratio = np.ones((len(rr), n))
        slices = window_slices(padded, window, rr)
        next(slices)  # the first session's return is the move into the window
        for x in slices:
            level *= x
            np.maximum(peak, level, out=peak)
            np.divide(level, peak, out=ratio)
            np.minimum(worst, ratio, out=worst)
        dd[i:i + len(rr)] = ratio - 1.0
        mdd[i:i + len(rr)] = worst - 1.0
    return dd, mdd


def row_sum(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sum across names (axis 1) of the masked values, added one by one in name order, so that
    names without a value (e.g. instruments listed later) cannot change the result's bits."""
    if x.shape[1] == 0:
        return np.zeros(x.shape[0])
    return np.cumsum(np.where(mask, x, 0.0), axis=1)[:, -1]


# --- wide per-market panels -------------------------------------------------------------------
class MarketPanel:
    """One market's history as aligned (sessions x instruments) arrays, plus derived series
    computed on demand. Instruments are sorted by id; sessions by date."""

    # factor-return cache (sessions x factors), set by compute.ensure_factor_returns on first
    # use: declared here for the type checker, absent until then
    factor_values: np.ndarray
    factor_n_long: np.ndarray
    factor_n_short: np.ndarray
    factor_done: np.ndarray

    def __init__(self, market_id: str, p: pd.DataFrame, ret: np.ndarray,
                 asset_class: dict[str, str] | None, issuer_of: dict[str, str],
                 fundamentals: pd.DataFrame | None, splits: pd.DataFrame,
                 config: FeaturesConfig):
        self.market_id = market_id
        self.config = config
        self.dates = pd.DatetimeIndex(np.unique(p["date"].to_numpy()), name="date")
        self.ids = np.unique(p["instrument_id"].to_numpy()).astype(object)
        ti = self.dates.get_indexer(p["date"])
        ni = pd.Index(self.ids).get_indexer(p["instrument_id"])
        shape = (len(self.dates), len(self.ids))
        self.close = np.full(shape, np.nan)
        self.volume = np.full(shape, np.nan)
        self.ret = np.full(shape, np.nan)
        self.observed = np.zeros(shape, dtype=bool)
        self.close[ti, ni] = p["close"].to_numpy()
        self.volume[ti, ni] = p["volume"].to_numpy()
        self.ret[ti, ni] = ret
        self.observed[ti, ni] = True
        # one-day return: observed today and at the previous session of the grid
        prev_obs = np.zeros(shape, dtype=bool)
        prev_obs[1:] = self.observed[:-1]
        self.one_day = self.observed & prev_obs & ~np.isnan(self.ret)
        classes = (np.array([asset_class.get(i, "") for i in self.ids], dtype=object)
                   if asset_class is not None else None)
        cfg = config
        self.in_universe = (np.isin(classes, list(cfg.universe_asset_classes))
                            if classes is not None else np.ones(len(self.ids), dtype=bool))
        self.in_factor_universe = (np.isin(classes, list(cfg.factor_asset_classes))
                                   if classes is not None else np.ones(len(self.ids), dtype=bool))
        self._issuer_of = issuer_of
        self._fundamentals = fundamentals
        self._splits = splits

    def __repr__(self) -> str:
        return (f"MarketPanel({self.market_id}, {len(self.dates)} sessions, "
                f"{len(self.ids)} instruments)")

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape

    def rows_for(self, dates: Iterable[DateLike]) -> np.ndarray:
        """Grid rows of the requested dates (dates that are not sessions of the grid have no
        rows and are left out)."""
        idx = self.dates.get_indexer(to_dates(dates))
        return np.sort(idx[idx >= 0]).astype(np.int64)

    # -- derived series (whole grid, computed once) --
    @functools.cached_property
    def growth(self) -> np.ndarray:
        """1 + ret where observed (NaN for a first row), 1 where not observed."""
        return np.where(self.observed, 1.0 + self.ret, 1.0)

    @functools.cached_property
    def traded_value(self) -> np.ndarray:
        return self.close * self.volume

    def vol(self, window: int, rows: np.ndarray) -> np.ndarray:
        cfg = self.config
        r = np.where(self.observed, self.ret, np.nan)
        return rolling_std(r, window, rows, cfg.min_obs(window)) * np.sqrt(cfg.annualisation_days)

    def adv(self, window: int, rows: np.ndarray) -> np.ndarray:
        return rolling_mean(self.traded_value, window, rows, self.config.min_obs(window))

    def compounded(self, window: int, rows: np.ndarray, skip: int = 0) -> np.ndarray:
        """Compounded return over the ``window`` sessions ending ``skip`` sessions before each
        row; NaN when the window reaches before the history or an instrument's first row."""
        shifted = rows - skip
        out = np.full((len(rows), self.shape[1]), np.nan)
        ok = shifted >= 0
        out[ok] = rolling_prod(self.growth, window, shifted[ok]) - 1.0
        return out

    # -- fundamentals, point in time --
    @functools.cached_property
    def statements(self) -> dict[str, np.ndarray]:
        """Line items of the latest statement (by period_end, among those with report_date <=
        session) of each instrument's issuer, as (sessions x instruments) arrays; statements
        older than ``fundamentals_max_age_days`` are not used. ``shares_outstanding`` is
        adjusted for splits effective after the statement's report date."""
        t, n = self.shape
        items = ("shares_outstanding", "equity", "net_income", "ebitda", "total_assets",
                 "total_liabilities", "revenue", "interest_expense", "cash", "short_term_debt")
        out = {k: np.full((t, n), np.nan) for k in items}
        f = self._fundamentals
        if f is None or len(f) == 0 or t == 0:
            return out
        col_of = {iid: j for j, iid in enumerate(self.ids)}
        inst = pd.DataFrame({"instrument_id": self.ids,
                             "issuer_id": [self._issuer_of.get(i) for i in self.ids]})
        inst = inst[inst["issuer_id"].notna()]
        f = f.merge(inst, on="issuer_id", how="inner")
        if len(f) == 0:
            return out
        col = f["instrument_id"].map(col_of).to_numpy(dtype=np.int64)
        pos = self.dates.searchsorted(f["report_date"].to_numpy(), side="left")
        keep = pos < t
        f, col, pos = f[keep].reset_index(drop=True), col[keep], pos[keep]
        if len(f) == 0:
            return out
        # rank of each statement among its instrument's, by (period_end, report_date)
        order = np.lexsort((f["report_date"].to_numpy(), f["period_end"].to_numpy(), col))
        rank = np.empty(len(f), dtype=np.int64)
        rank[order] = np.arange(len(f))
        best = np.full((t, n), -1, dtype=np.int64)
        np.maximum.at(best, (pos, col), rank)
        best = np.maximum.accumulate(best, axis=0)  # latest period_end known so far
        have = best >= 0
        stmt_of_rank = np.empty(len(f), dtype=np.int64)
        stmt_of_rank[rank] = np.arange(len(f))
        stmt = stmt_of_rank[np.where(have, best, 0)]
        report = f["report_date"].to_numpy(dtype="datetime64[ns]")[stmt]
        age = (self.dates.to_numpy()[:, None] - report) / np.timedelta64(1, "D")
        usable = have & (age <= self.config.fundamentals_max_age_days)
        for k in items:
            if k in f.columns:
                v = pd.to_numeric(f[k], errors="coerce").to_numpy(dtype=float)[stmt]
                out[k] = np.where(usable, v, np.nan)
        # splits after the statement's report date scale the reported share count
        sp = self._splits
        if len(sp):
            sp = sp[sp["instrument_id"].isin(col_of)]
            grid = self.dates.to_numpy()
            for iid, sdate, k in sp[["instrument_id", "date", "value"]].itertuples(index=False):
                j = col_of[iid]
                start = grid.searchsorted(np.datetime64(sdate), side="left")
                if start >= t:
                    continue
                affected = report[start:, j] < np.datetime64(sdate)
                out["shares_outstanding"][start:, j] = np.where(
                    affected, out["shares_outstanding"][start:, j] * k,
                    out["shares_outstanding"][start:, j])
        return out

    @functools.cached_property
    def market_cap(self) -> np.ndarray:
        shares = self.statements["shares_outstanding"]
        cap = self.close * np.where(shares > 0, shares, np.nan)
        return cap


def build_panels(inputs: FeatureInputs, config: FeaturesConfig) -> dict[str, MarketPanel]:
    """Wide panels per market of the inputs' prices."""
    p = _clean_prices(inputs.prices, need_market=True)
    ca = _clean_actions(inputs.corporate_actions)
    ret = _adjusted(p, ca)
    asset_class: dict[str, str] | None = None
    issuer_of: dict[str, str] = {}
    if inputs.instruments is not None and len(inputs.instruments):
        ins = inputs.instruments
        _require(ins, "instruments", ["instrument_id"])
        ids = ins["instrument_id"].astype(str)
        if "asset_class" in ins.columns:
            asset_class = dict(zip(ids, ins["asset_class"].astype(str).str.upper(), strict=True))
        if "issuer_id" in ins.columns:
            issuer_of = {i: s for i, s in zip(ids, ins["issuer_id"], strict=True)
                         if isinstance(s, str)}
    fund = None
    if inputs.fundamentals is not None and len(inputs.fundamentals):
        f = inputs.fundamentals
        _require(f, "fundamentals", ["issuer_id", "period_end", "report_date"])
        fund = f.copy()
        fund["issuer_id"] = fund["issuer_id"].astype(str)
        fund["period_end"] = _dates(fund["period_end"], "fundamentals", "period_end")
        fund["report_date"] = _dates(fund["report_date"], "fundamentals", "report_date")
    splits = ca[ca["action_type"] == "SPLIT"]
    panels = {}
    market = p["market_id"].to_numpy()
    for m in sorted(set(market)):
        sel = market == m
        panels[m] = MarketPanel(m, p[sel], ret[sel], asset_class, issuer_of, fund, splits, config)
    return panels
