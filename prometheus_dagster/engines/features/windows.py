"""Numeric window features: the (window x features) matrices the numeric encoders embed.

``build_numeric_window_features`` returns one entity's window ending at an as-of date;
``build_numeric_windows`` stacks many (entities x as-of dates) at once for training. Both read
a :class:`FeaturePanel` of the feature tables already computed (returns, volatility,
liquidity) plus reference data, and use only rows dated <= the as-of date.

Entities and their daily feature vectors:

* ``INSTRUMENT`` (entity_id = instrument_id): total returns (1/5/21 sessions), returns relative
  to the equal-weighted market (1/21 sessions), log realised vol (21/63), drawdown, log relative
  volume (today's traded value / ADV 21, needs ``prices``), and ``observed`` (1 on sessions with
  a price row, else 0).
* ``SECTOR`` (entity_id = sector name of ``issuers.sector``; pass ``market_id`` when several
  markets hold the sector) and ``MARKET`` (entity_id = market_id): the same features as the
  equal-weighted mean over member instruments with a value that day (members: instruments of
  ``config.universe_asset_classes``); ``observed`` = share of members with a price row.
* ``ISSUER`` (entity_id = issuer_id): the features of its primary instrument (an EQUITY if it
  has one, then the earliest listed, then the smallest id) plus fundamentals of its latest
  statement (largest period_end among those with report_date <= day, not older than
  ``fundamentals_max_age_days``), held constant between report dates: leverage (liabilities /
  assets), ROE (4 * net income / equity), net margin, log interest coverage (EBITDA / interest
  expense), log cash / short-term debt, and ``fundamentals_observed``.

Features are standardised with fixed, configured (centre, scale) pairs
(``FeaturesConfig.window_feature_scales``) so that levels stay comparable across entities and
dates, clipped to +/- ``window_feature_clip``; missing values become 0 (the centre), and the
``observed`` columns say where data was missing. A window covers the last ``window`` sessions of
the entity's market up to the as-of date (the market's sessions are the dates of its rows in
``returns``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.engines.features.config import FeaturesConfig
from prometheus_dagster.engines.features.panel import (
    DateLike,
    FeatureInputs,
    row_sum,
    rows_until,
    to_date,
    to_dates,
)

ENTITY_TYPES = ("INSTRUMENT", "ISSUER", "SECTOR", "MARKET")

INSTRUMENT_FEATURES = (
    "ret_1d", "ret_5d", "ret_21d", "rel_ret_1d", "rel_ret_21d", "log_vol_21d", "log_vol_63d",
    "drawdown", "log_rel_volume", "observed",
)
FUNDAMENTAL_FEATURES = (
    "leverage", "roe", "net_margin", "log_interest_coverage", "log_cash_to_st_debt",
    "fundamentals_observed",
)
_RAW = INSTRUMENT_FEATURES[:-1]  # observed is a flag, not a raw series


def window_feature_names(entity_type: str) -> tuple[str, ...]:
    """Column names of the window features of an entity type."""
    et = _entity_type(entity_type)
    return INSTRUMENT_FEATURES + (FUNDAMENTAL_FEATURES if et == "ISSUER" else ())


def _entity_type(entity_type: str) -> str:
    et = str(entity_type).upper()
    if et not in ENTITY_TYPES:
        raise ValueError(f"unknown entity_type {entity_type!r}; known: {', '.join(ENTITY_TYPES)}")
    return et


@dataclass(frozen=True, eq=False)
class FeaturePanel:
    """Precomputed long frames the window features are built from.

    ``returns``, ``volatility`` and ``liquidity`` are ``returns_daily``, ``volatility_daily``
    and ``liquidity_daily`` rows (market_id, instrument_id, date, ...); ``instruments`` and
    ``issuers`` are the reference tables; ``fundamentals`` the statements (point in time by
    report_date); ``prices`` (instrument_id, date, close, volume) gives the daily traded value
    behind ``log_rel_volume`` (0 when absent). Derived arrays are cached on the panel.
    """

    returns: pd.DataFrame
    volatility: pd.DataFrame
    liquidity: pd.DataFrame
    instruments: pd.DataFrame | None = None
    issuers: pd.DataFrame | None = None
    fundamentals: pd.DataFrame | None = None
    prices: pd.DataFrame | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_inputs(cls, inputs: FeatureInputs, output_dates: Iterable[DateLike] | None = None,
                    config: FeaturesConfig | None = None, *,
                    issuers: pd.DataFrame | None = None) -> FeaturePanel:
        """Compute the tables the panel needs from raw inputs (for every session of the
        prices unless ``output_dates`` are given)."""
        from prometheus_dagster.engines.features.compute import compute_features

        dates = (output_dates if output_dates is not None
                 else pd.to_datetime(inputs.prices["date"]).unique())
        t = compute_features(inputs, dates, config,
                             tables=["returns_daily", "volatility_daily", "liquidity_daily"])
        return cls(returns=t["returns_daily"], volatility=t["volatility_daily"],
                   liquidity=t["liquidity_daily"], instruments=inputs.instruments,
                   issuers=issuers, fundamentals=inputs.fundamentals, prices=inputs.prices)

    def truncated(self, as_of_date: DateLike) -> FeaturePanel:
        """The panel as known at the end of ``as_of_date``."""
        d = to_date(as_of_date)
        return FeaturePanel(
            returns=rows_until(self.returns, "date", d),
            volatility=rows_until(self.volatility, "date", d),
            liquidity=rows_until(self.liquidity, "date", d),
            instruments=self.instruments, issuers=self.issuers,
            fundamentals=rows_until(self.fundamentals, "report_date", d),
            prices=rows_until(self.prices, "date", d))


# --- per-market raw feature cube ------------------------------------------------------------
@dataclass
class _Cube:
    market_id: str
    dates: pd.DatetimeIndex
    ids: np.ndarray  # instrument ids, sorted
    raw: np.ndarray  # (sessions, instruments, len(_RAW)) raw values, NaN where missing
    observed: np.ndarray  # (sessions, instruments) bool
    in_universe: np.ndarray  # (instruments,) bool


def _dates(s: pd.Series) -> np.ndarray:
    return pd.to_datetime(s).dt.normalize().to_numpy(dtype="datetime64[ns]")


def _asset_classes(panel: FeaturePanel) -> dict[str, str] | None:
    ins = panel.instruments
    if ins is None or "asset_class" not in ins.columns:
        return None
    return dict(zip(ins["instrument_id"].astype(str), ins["asset_class"].astype(str).str.upper(),
                    strict=True))


def _cube(panel: FeaturePanel, market_id: str, config: FeaturesConfig) -> _Cube:
    key = ("cube", market_id, tuple(config.universe_asset_classes))
    if key in panel._cache:
        return panel._cache[key]
    r = panel.returns[panel.returns["market_id"].astype(str) == market_id]
    if len(r) == 0:
        raise ValueError(f"no returns for market {market_id!r} in the feature panel")
    rdates = _dates(r["date"])
    dates = pd.DatetimeIndex(np.unique(rdates), name="date")
    rids = r["instrument_id"].astype(str).to_numpy()
    ids = np.unique(rids).astype(object)
    id_index = pd.Index(ids)
    t, n = len(dates), len(ids)
    raw = np.full((t, n, len(_RAW)), np.nan)
    observed = np.zeros((t, n), dtype=bool)

    def place(df: pd.DataFrame, cols: dict[str, str]) -> None:
        if df is None or len(df) == 0:
            return
        df = df[df["instrument_id"].astype(str).isin(id_index)] if "market_id" not in df.columns \
            else df[df["market_id"].astype(str) == market_id]
        ti = dates.get_indexer(_dates(df["date"]))
        ni = id_index.get_indexer(df["instrument_id"].astype(str))
        ok = (ti >= 0) & (ni >= 0)
        for col, feat in cols.items():
            if col in df.columns:
                raw[ti[ok], ni[ok], _RAW.index(feat)] = pd.to_numeric(
                    df[col], errors="coerce").to_numpy(dtype=float)[ok]

    place(r, {"ret_1d": "ret_1d", "ret_5d": "ret_5d", "ret_21d": "ret_21d"})
    observed[dates.get_indexer(rdates), id_index.get_indexer(rids)] = True
    place(panel.volatility, {"vol_21d": "log_vol_21d", "vol_63d": "log_vol_63d",
                             "drawdown": "drawdown"})
    with np.errstate(invalid="ignore", divide="ignore"):
        for f in ("log_vol_21d", "log_vol_63d"):
            j = _RAW.index(f)
            raw[..., j] = np.log(np.where(raw[..., j] > 0, raw[..., j], np.nan))
        adv = np.full((t, n), np.nan)
        liq = panel.liquidity
        if liq is not None and len(liq):
            liq = liq[liq["market_id"].astype(str) == market_id]
            ti = dates.get_indexer(_dates(liq["date"]))
            ni = id_index.get_indexer(liq["instrument_id"].astype(str))
            ok = (ti >= 0) & (ni >= 0)
            adv[ti[ok], ni[ok]] = pd.to_numeric(liq["adv_21d"], errors="coerce").to_numpy(
                dtype=float)[ok]
        if panel.prices is not None and len(panel.prices):
            p = panel.prices
            ti = dates.get_indexer(_dates(p["date"]))
            ni = id_index.get_indexer(p["instrument_id"].astype(str))
            ok = (ti >= 0) & (ni >= 0)
            tv = np.full((t, n), np.nan)
            tv[ti[ok], ni[ok]] = (pd.to_numeric(p["close"], errors="coerce")
                                  * pd.to_numeric(p["volume"], errors="coerce")).to_numpy(
                dtype=float)[ok]
            raw[..., _RAW.index("log_rel_volume")] = np.log(
                np.where((tv > 0) & (adv > 0), tv / adv, np.nan))
    classes = _asset_classes(panel)
    in_universe = (np.isin(np.array([classes.get(i, "") for i in ids], dtype=object),
                   list(config.universe_asset_classes))
                   if classes is not None else np.ones(n, dtype=bool))
    # market-relative returns against the equal-weighted universe mean of the day
    for src, dst in (("ret_1d", "rel_ret_1d"), ("ret_21d", "rel_ret_21d")):
        x = raw[..., _RAW.index(src)]
        ok = ~np.isnan(x) & in_universe[None, :]
        cnt = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, row_sum(x, ok) / cnt, np.nan)
        raw[..., _RAW.index(dst)] = x - mean[:, None]
    cube = _Cube(market_id, dates, ids, raw, observed, in_universe)
    panel._cache[key] = cube
    return cube


def _standardise(raw: np.ndarray, names: tuple[str, ...], config: FeaturesConfig) -> np.ndarray:
    """(..., len(names)) raw -> standardised, clipped, NaN -> 0 (flags pass through)."""
    out = np.empty_like(raw, dtype=float)
    clip = config.window_feature_clip
    for j, name in enumerate(names):
        x = raw[..., j]
        if name in ("observed", "fundamentals_observed"):
            out[..., j] = np.nan_to_num(x, nan=0.0)
            continue
        centre, scale = config.window_feature_scales[name]
        z = np.clip((x - centre) / scale, -clip, clip)
        out[..., j] = np.where(np.isfinite(z), z, 0.0)
    return out


# --- entities -------------------------------------------------------------------------------
def _markets_of(panel: FeaturePanel) -> pd.Series:
    key = ("markets_of",)
    if key not in panel._cache:
        r = panel.returns
        panel._cache[key] = (r[["instrument_id", "market_id"]].astype(str)
                             .drop_duplicates("instrument_id").set_index("instrument_id")
                             ["market_id"])
    return panel._cache[key]


def _issuer_table(panel: FeaturePanel) -> pd.DataFrame:
    if panel.instruments is None or "issuer_id" not in panel.instruments.columns:
        raise ValueError("the feature panel needs instruments with issuer_id for ISSUER and "
                         "SECTOR entities")
    return panel.instruments


def _primary_instrument(panel: FeaturePanel, issuer_id: str) -> str:
    key = ("primary", issuer_id)
    if key in panel._cache:
        return panel._cache[key]
    ins = _issuer_table(panel)
    mine = ins[ins["issuer_id"].astype(str) == issuer_id]
    mine = mine[mine["instrument_id"].astype(str).isin(_markets_of(panel).index)]
    if len(mine) == 0:
        raise ValueError(f"issuer {issuer_id!r} has no instrument with returns in the panel")
    order = pd.DataFrame({
        "not_equity": (mine["asset_class"].astype(str).str.upper() != "EQUITY").to_numpy()
        if "asset_class" in mine.columns else False,
        "listed": pd.to_datetime(mine["listed_date"]).to_numpy()
        if "listed_date" in mine.columns else np.datetime64("NaT"),
        "id": mine["instrument_id"].astype(str).to_numpy(),
    }).sort_values(["not_equity", "listed", "id"], na_position="last")
    panel._cache[key] = order["id"].iloc[0]
    return panel._cache[key]


def _members(panel: FeaturePanel, entity_type: str, entity_id: str, market_id: str | None,
             ) -> tuple[str, list[str]]:
    """(market_id, member instrument ids) of an entity."""
    markets = _markets_of(panel)
    if entity_type == "INSTRUMENT":
        if entity_id not in markets.index:
            raise ValueError(f"instrument {entity_id!r} has no returns in the feature panel")
        return markets[entity_id], [entity_id]
    if entity_type == "ISSUER":
        iid = _primary_instrument(panel, entity_id)
        return markets[iid], [iid]
    if entity_type == "MARKET":
        if entity_id not in set(markets):
            raise ValueError(f"market {entity_id!r} has no returns in the feature panel")
        return entity_id, []  # members: the market's universe
    ins = _issuer_table(panel)
    if panel.issuers is None or "sector" not in panel.issuers.columns:
        raise ValueError("the feature panel needs issuers with sector for SECTOR entities")
    sector_of = panel.issuers.set_index(panel.issuers["issuer_id"].astype(str))["sector"]
    sec = ins["issuer_id"].astype(str).map(sector_of)
    ids = ins.loc[(sec == entity_id).to_numpy(), "instrument_id"].astype(str)
    ids = ids[ids.isin(markets.index)]
    mk = sorted(set(markets[ids]))
    if market_id is not None:
        mk = [m for m in mk if m == market_id]
    if not mk:
        raise ValueError(f"sector {entity_id!r} has no instruments with returns"
                         + (f" in market {market_id!r}" if market_id else ""))
    if len(mk) > 1:
        raise ValueError(f"sector {entity_id!r} spans markets {mk}; pass market_id")
    return mk[0], sorted(i for i in ids if markets[i] == mk[0])


def _fundamental_series(panel: FeaturePanel, issuer_id: str, dates: pd.DatetimeIndex,
                        config: FeaturesConfig) -> np.ndarray:
    """(sessions, len(FUNDAMENTAL_FEATURES)) raw fundamentals of the issuer's latest usable
    statement on each session."""
    out = np.full((len(dates), len(FUNDAMENTAL_FEATURES)), np.nan)
    out[:, -1] = 0.0
    f = panel.fundamentals
    if f is None or len(f) == 0:
        return out
    f = f[f["issuer_id"].astype(str) == issuer_id]
    if len(f) == 0:
        return out
    f = f.assign(period_end=_dates(f["period_end"]), report_date=_dates(f["report_date"]))
    f = f.sort_values(["period_end", "report_date"], kind="stable").reset_index(drop=True)
    pos = dates.searchsorted(f["report_date"].to_numpy(), side="left")
    best = np.full(len(dates), -1, dtype=np.int64)
    ok = pos < len(dates)
    np.maximum.at(best, pos[ok], np.arange(len(f))[ok])
    best = np.maximum.accumulate(best)
    have = best >= 0
    sel = np.where(have, best, 0)
    age = (dates.to_numpy() - f["report_date"].to_numpy()[sel]) / np.timedelta64(1, "D")
    usable = have & (age <= config.fundamentals_max_age_days)

    def item(name: str) -> np.ndarray:
        if name not in f.columns:
            return np.full(len(dates), np.nan)
        v = pd.to_numeric(f[name], errors="coerce").to_numpy(dtype=float)[sel]
        return np.where(usable, v, np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        assets, liab, equity = item("total_assets"), item("total_liabilities"), item("equity")
        ni, rev, ebitda = item("net_income"), item("revenue"), item("ebitda")
        interest, cash, std = item("interest_expense"), item("cash"), item("short_term_debt")
        out[:, 0] = np.where(assets > 0, liab / assets, np.nan)
        out[:, 1] = np.where(equity > 0, 4.0 * ni / equity, np.nan)
        out[:, 2] = np.where(rev > 0, ni / rev, np.nan)
        out[:, 3] = np.log(np.where((ebitda > 0) & (interest > 0), ebitda / interest, np.nan))
        out[:, 4] = np.log(np.where((cash > 0) & (std > 0), cash / std, np.nan))
    out[:, 5] = usable.astype(float)
    return out


def _entity_series(panel: FeaturePanel, entity_type: str, entity_id: str,
                   market_id: str | None, config: FeaturesConfig,
                   ) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, str]:
    """(sessions, standardised features (sessions x F), observed (sessions,) bool, market)."""
    market, members = _members(panel, entity_type, entity_id, market_id)
    cube = _cube(panel, market, config)
    if entity_type in ("INSTRUMENT", "ISSUER"):
        j = int(np.searchsorted(cube.ids, members[0]))
        raw = cube.raw[:, j, :]
        obs = cube.observed[:, j]
        flag = obs.astype(float)
    else:
        cols = (cube.in_universe if entity_type == "MARKET"
                else np.isin(cube.ids, members))
        raw, obs, flag = _aggregate(cube, cols)
    feats = np.concatenate([raw, flag[:, None]], axis=1)
    names: tuple[str, ...] = INSTRUMENT_FEATURES
    if entity_type == "ISSUER":
        feats = np.concatenate([feats, _fundamental_series(panel, entity_id, cube.dates, config)],
                               axis=1)
        names = names + FUNDAMENTAL_FEATURES
    return cube.dates, _standardise(feats, names, config), obs, market


def _aggregate(cube: _Cube, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-weighted mean over the member columns with a value, per session and feature."""
    sub = cube.raw[:, cols, :]
    t, _, f = sub.shape
    raw = np.full((t, f), np.nan)
    for k in range(f):
        x = sub[..., k]
        ok = ~np.isnan(x)
        cnt = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw[:, k] = np.where(cnt > 0, row_sum(x, ok) / cnt, np.nan)
    obs_members = cube.observed[:, cols]
    m = max(int(cols.sum()), 1)
    return raw, np.asarray(obs_members.any(axis=1)), obs_members.sum(axis=1) / m


# --- public API -------------------------------------------------------------------------------
def build_numeric_window_features(entity_type: str, entity_id: str, as_of_date: DateLike,
                                  window: int, *, panel: FeaturePanel,
                                  config: FeaturesConfig | None = None,
                                  market_id: str | None = None) -> pd.DataFrame:
    """The (window x features) frame of standardised daily features of one entity over the last
    ``window`` sessions of its market up to ``as_of_date`` (index: the sessions, named
    ``date``; columns: ``window_feature_names(entity_type)``). Uses only rows dated <=
    ``as_of_date``. Raises ValueError for an unknown entity, when the market has fewer than
    ``window`` sessions up to the date, or when the entity has no data in the window."""
    cfg = config or FeaturesConfig()
    et = _entity_type(entity_type)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    dates, feats, obs, market = _entity_series(panel, et, str(entity_id), market_id, cfg)
    end = int(dates.searchsorted(to_date(as_of_date), side="right")) - 1
    if end + 1 < window:
        raise ValueError(
            f"{et} {entity_id}: market {market} has {end + 1} sessions up to "
            f"{to_date(as_of_date).date()}, fewer than the window of {window}")
    sl = slice(end - window + 1, end + 1)
    if not obs[sl].any():
        raise ValueError(f"{et} {entity_id}: no data in the {window} sessions up to "
                         f"{to_date(as_of_date).date()}")
    return pd.DataFrame(feats[sl], index=dates[sl], columns=list(window_feature_names(et)))


def _all_entities(panel: FeaturePanel, et: str) -> list[tuple[str, str | None]]:
    """(entity_id, market_id) of every entity of a type present in the panel."""
    markets = _markets_of(panel)
    if et == "INSTRUMENT":
        return [(i, None) for i in sorted(markets.index)]
    if et == "MARKET":
        return [(m, None) for m in sorted(set(markets))]
    ins = _issuer_table(panel)
    ins = ins[ins["instrument_id"].astype(str).isin(markets.index)]
    if et == "ISSUER":
        return [(i, None) for i in sorted(set(ins["issuer_id"].dropna().astype(str)))]
    if panel.issuers is None or "sector" not in panel.issuers.columns:
        raise ValueError("the feature panel needs issuers with sector for SECTOR entities")
    sector_of = panel.issuers.set_index(panel.issuers["issuer_id"].astype(str))["sector"]
    sec = ins["issuer_id"].astype(str).map(sector_of)
    mk = markets[ins["instrument_id"].astype(str)].to_numpy()
    pairs = {(s, m) for s, m in zip(sec, mk, strict=True) if isinstance(s, str)}
    return sorted(pairs)


def build_numeric_windows(entity_type: str, as_of_dates: list[DateLike] | pd.DatetimeIndex,
                          window: int, panel: FeaturePanel, *,
                          entity_ids: list[str] | None = None,
                          config: FeaturesConfig | None = None,
                          market_id: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Windows of many entities and as-of dates at once, for training encoders.

    Returns ``(windows, index)``: ``windows`` is float64 [n, window, n_features] (features in
    ``window_feature_names(entity_type)`` order) and ``index`` has one row per window:
    entity_type, entity_id, market_id, as_of_date (as asked), window_start, window_end (the
    sessions covered). Every entity of the type in the panel is used unless ``entity_ids`` are
    given (for SECTOR, ``market_id`` restricts the markets). (entity, date) pairs whose market
    has fewer than ``window`` sessions up to the date, or with no data in the window, are left
    out. Row i equals ``build_numeric_window_features`` for the same entity and date."""
    cfg = config or FeaturesConfig()
    et = _entity_type(entity_type)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    asked = to_dates(as_of_dates)
    if entity_ids is None:
        entities = _all_entities(panel, et)
        if market_id is not None and et == "SECTOR":
            entities = [(e, m) for e, m in entities if m == market_id]
    else:
        entities = [(str(e), market_id) for e in entity_ids]
    names = window_feature_names(et)
    blocks: list[np.ndarray] = []
    rows: list[pd.DataFrame] = []
    offsets = np.arange(-window + 1, 1)
    for eid, mid in entities:
        dates, feats, obs, market = _entity_series(panel, et, eid, mid, cfg)
        end = dates.searchsorted(asked, side="right") - 1
        ok = end + 1 >= window
        idx = end[ok][:, None] + offsets[None, :]
        seen = obs[idx].any(axis=1) if len(idx) else np.zeros(0, dtype=bool)
        idx = idx[seen]
        if len(idx) == 0:
            continue
        blocks.append(feats[idx])
        rows.append(pd.DataFrame({
            "entity_type": et, "entity_id": eid, "market_id": market,
            "as_of_date": asked[ok][seen], "window_start": dates[idx[:, 0]],
            "window_end": dates[idx[:, -1]]}))
    if not blocks:
        empty = pd.DataFrame({"entity_type": pd.Series([], dtype=object),
                              "entity_id": pd.Series([], dtype=object),
                              "market_id": pd.Series([], dtype=object),
                              "as_of_date": pd.Series([], dtype="datetime64[ns]"),
                              "window_start": pd.Series([], dtype="datetime64[ns]"),
                              "window_end": pd.Series([], dtype="datetime64[ns]")})
        return np.zeros((0, window, len(names))), empty
    return np.concatenate(blocks, axis=0), pd.concat(rows, ignore_index=True)
