"""Inputs of the stability engine and their wide (session x instrument) form.

The session axis is the sorted union of the dates of the inputs (returns, volatility,
liquidity, index returns), so "the trailing N sessions up to D" never depends on data dated
after D. An instrument is *priced* on a session when ``returns`` has a row for it there.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from prometheus_dagster.engines.stability.config import StabilityConfig


@dataclass(frozen=True)
class StabilityInputs:
    """What one market's stability vectors are computed from (plain pandas, long form)."""

    returns: pd.DataFrame  # instrument_id, date, ret_1d (daily simple returns)
    volatility: pd.DataFrame  # instrument_id, date, vol_21d, vol_63d (annualised)
    liquidity: pd.DataFrame  # instrument_id, date, adv_21d, amihud_21d
    instruments: pd.DataFrame  # instrument_id, issuer_id (nullable), asset_class
    issuers: pd.DataFrame  # issuer_id, issuer_type, sector
    profiles: pd.DataFrame  # issuer_id, as_of_date, ..., profile_weakness (may be empty)
    index_returns: pd.Series | None = None  # date -> index return (None: equal weighted)
    regime_labels: pd.Series | None = None  # date -> regime label of the market's region


@dataclass(frozen=True)
class Panel:
    """Wide arrays on one session axis. Columns are instrument ids in sorted order; every
    value frame is NaN where the instrument is not priced on the session."""

    sessions: pd.DatetimeIndex
    ret: pd.DataFrame
    priced: pd.DataFrame
    vol_21d: pd.DataFrame
    vol_63d: pd.DataFrame
    adv: pd.DataFrame
    amihud: pd.DataFrame
    asset_class: pd.Series  # instrument -> asset class
    issuer: pd.Series  # instrument -> issuer id of a COMPANY issuer (else None)
    sector: pd.Series  # instrument -> sector of its COMPANY issuer (else None)

    @property
    def equities(self) -> pd.Index:
        return self.asset_class.index[self.asset_class.to_numpy() == "EQUITY"]

    @property
    def company_equities(self) -> pd.Index:
        eq = self.asset_class.to_numpy() == "EQUITY"
        return self.asset_class.index[eq & self.issuer.notna().to_numpy()]

    @property
    def fx(self) -> pd.Index:
        return self.asset_class.index[self.asset_class.to_numpy() == "FX"]

    @property
    def indices(self) -> pd.Index:
        return self.asset_class.index[self.asset_class.to_numpy() == "INDEX"]


def _dates(values: pd.Series | pd.Index) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values)).normalize()


def _series(s: pd.Series) -> pd.Series:
    out = pd.Series(s.to_numpy(), index=_dates(s.index))
    return out[~out.index.duplicated(keep="last")].sort_index()


def _wide(frame: pd.DataFrame, value: str, sessions: pd.DatetimeIndex,
          columns: pd.Index) -> pd.DataFrame:
    if frame is None or frame.empty or value not in frame.columns:
        return pd.DataFrame(np.nan, index=sessions, columns=columns)
    long = pd.DataFrame({"instrument_id": frame["instrument_id"].astype(str),
                         "date": _dates(frame["date"]),
                         "v": pd.to_numeric(frame[value], errors="coerce")})
    long = long.drop_duplicates(["instrument_id", "date"], keep="last")
    wide = long.pivot(index="date", columns="instrument_id", values="v")
    return wide.reindex(index=sessions, columns=columns).astype(float)


def build_panel(inputs: StabilityInputs) -> Panel:
    """The inputs on the union session axis, restricted to the instruments in
    ``inputs.instruments``."""
    inst = inputs.instruments.drop_duplicates("instrument_id", keep="last").copy()
    inst["instrument_id"] = inst["instrument_id"].astype(str)
    inst = inst.sort_values("instrument_id").set_index("instrument_id")
    columns = pd.Index(inst.index, name="instrument_id")
    iss = inputs.issuers.drop_duplicates("issuer_id", keep="last").set_index("issuer_id")
    company = iss.index[iss["issuer_type"].astype(str).to_numpy() == "COMPANY"]
    issuer = inst["issuer_id"].where(inst["issuer_id"].isin(company))
    issuer = issuer.astype(object).where(issuer.notna(), None)
    sector = issuer.map(lambda i: None if i is None else iss.at[i, "sector"])
    sector = sector.map(lambda s: s if isinstance(s, str) and s else None)
    asset_class = inst["asset_class"].astype(str)

    date_sets = [_dates(f["date"]) for f in (inputs.returns, inputs.volatility, inputs.liquidity)
                 if f is not None and not f.empty]
    index = _series(inputs.index_returns) if inputs.index_returns is not None else None
    if index is not None:
        date_sets.append(index.index)
    sessions = (pd.DatetimeIndex(np.unique(np.concatenate([d.to_numpy() for d in date_sets])))
                if date_sets else pd.DatetimeIndex([]))

    if inputs.returns is None or inputs.returns.empty:
        priced = pd.DataFrame(False, index=sessions, columns=columns)
    else:
        rows = pd.DataFrame({"instrument_id": inputs.returns["instrument_id"].astype(str),
                             "date": _dates(inputs.returns["date"]), "one": 1.0})
        rows = rows.drop_duplicates(["instrument_id", "date"])
        priced = (rows.pivot(index="date", columns="instrument_id", values="one")
                  .reindex(index=sessions, columns=columns).notna())

    def masked(frame: pd.DataFrame, value: str) -> pd.DataFrame:
        return _wide(frame, value, sessions, columns).where(priced)

    return Panel(
        sessions=sessions, ret=masked(inputs.returns, "ret_1d"), priced=priced,
        vol_21d=masked(inputs.volatility, "vol_21d"), vol_63d=masked(inputs.volatility, "vol_63d"),
        adv=masked(inputs.liquidity, "adv_21d"), amihud=masked(inputs.liquidity, "amihud_21d"),
        asset_class=asset_class, issuer=issuer, sector=sector)


def basket_returns(ret: pd.DataFrame, groups: dict[str, pd.Index]) -> pd.DataFrame:
    """Equal-weighted return per group and session: the mean over the group's instruments
    with a return that session (constituents point in time, so no survivorship)."""
    out = {name: ret[cols].mean(axis=1) if len(cols) else pd.Series(np.nan, index=ret.index)
           for name, cols in groups.items()}
    return pd.DataFrame(out, index=ret.index, columns=list(groups))


def rolling_vol(ret: pd.DataFrame, window: int, config: StabilityConfig) -> pd.DataFrame:
    """Annualised std (ddof=1) of the last ``window`` sessions' returns, needing
    ceil(series_min_obs_fraction x window) of them. Computed from each window's values alone
    (not a running update), so a value never depends on where the history starts."""
    min_obs = max(2, math.ceil(config.series_min_obs_fraction * window))
    a = ret.to_numpy(dtype=float)
    if not a.size:
        return pd.DataFrame(np.nan, index=ret.index, columns=ret.columns)
    padded = np.vstack([np.full((window - 1, a.shape[1]), np.nan), a])
    windows = sliding_window_view(padded, window, axis=0)  # (T, K, window)
    n = (~np.isnan(windows)).sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(windows, axis=-1, ddof=1)
    sd = np.where(n >= min_obs, sd, np.nan) * math.sqrt(config.annualisation_days)
    return pd.DataFrame(sd, index=ret.index, columns=ret.columns)


def market_index(panel: Panel, index_returns: pd.Series | None) -> tuple[pd.Series, str]:
    """The market's index return per session and where it came from: the given series; else
    the equal-weighted mean of the equities; else (a market with no equities) its first INDEX
    instrument's returns; else none (all NaN)."""
    if index_returns is not None:
        return _series(index_returns).reindex(panel.sessions).astype(float), "given"
    if len(panel.equities):
        return panel.ret[panel.equities].mean(axis=1), "equal_weighted"
    if len(panel.indices):
        first = panel.indices[0]
        return panel.ret[first], f"instrument:{first}"
    return pd.Series(np.nan, index=panel.sessions), "none"


def regime_on_sessions(labels: pd.Series | None, sessions: pd.DatetimeIndex,
                       config: StabilityConfig) -> pd.Series:
    """The regime label of each session: the latest label dated on or before it, at most
    ``regime_max_staleness_days`` calendar days old (None otherwise)."""
    labels = _series(labels) if labels is not None else None
    if labels is None or labels.empty or not len(sessions):
        return pd.Series([None] * len(sessions), index=sessions, dtype=object)
    lab = pd.DataFrame({"label_date": labels.index, "label": labels.to_numpy()})
    lab = lab[lab["label"].notna()]
    left = pd.DataFrame({"date": sessions})
    merged = pd.merge_asof(left, lab, left_on="date", right_on="label_date",
                           direction="backward",
                           tolerance=pd.Timedelta(days=config.regime_max_staleness_days))
    out = merged["label"].astype(object)
    return pd.Series(out.where(out.notna(), None).to_numpy(), index=sessions, dtype=object)
