"""From the values scored at the requested sessions to one row per entity and date."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_dagster.engines.stability.components import (
    comovement_component,
    fundamental_component,
)
from prometheus_dagster.engines.stability.config import COMPONENTS, StabilityConfig
from prometheus_dagster.engines.stability.contagion import StressExposure
from prometheus_dagster.engines.stability.notes import (
    contagion_notes,
    count,
    liquidity_notes,
    regime_note,
    volatility_notes,
)
from prometheus_dagster.engines.stability.panel import Panel


@dataclass(frozen=True)
class Scored:
    """Everything read at the requested sessions (row p of each array: ``dates[p]``)."""

    market_id: str
    config: StabilityConfig
    panel: Panel
    profiles: pd.DataFrame
    dates: pd.DatetimeIndex
    regime: np.ndarray  # (P,) label or None
    multiplier: np.ndarray  # (P,)
    index_source: str
    index_present: np.ndarray  # (P,) bool: the index has a return on the date
    inst: dict[str, np.ndarray]  # name -> (P, N), columns as panel.ret
    sectors: list[str]
    basket: dict[str, np.ndarray]  # name -> (P, K + 1): the sector baskets, then the market
    exposure: StressExposure


def _diagnostics(row: dict, notes: list[str], **values: float | str | None) -> dict:
    out: dict[str, object] = {"missing": [c for c in COMPONENTS if not math.isfinite(row[c])],
                              "notes": notes}
    for key, v in values.items():
        if isinstance(v, str | int):
            out[key] = v
        elif v is not None and math.isfinite(v):
            out[key] = float(v)
    return out


def _common(s: Scored, p: int) -> tuple[list[str], dict]:
    note = regime_note(s.regime[p], s.config)
    return ([note] if note else []), {"regime_multiplier": s.multiplier[p],
                                      "index": s.index_source}


def _reference_source(r: dict) -> str | None:
    if not math.isfinite(r["reference_vol"]):
        return None
    return "cross_section" if r["reference_from_xs"] == 1 else "own_history"


def priced_rows(s: Scored, columns: pd.Index) -> pd.DataFrame:
    """One row per (requested session p, instrument of ``columns`` priced on it) with the
    instrument's scored values, sorted by (p, instrument_id)."""
    all_cols = s.panel.ret.columns
    ci = all_cols.get_indexer(columns)
    pp, kk = np.nonzero(s.inst["priced"][:, ci])
    c = ci[kk]
    out = pd.DataFrame({"p": pp, "instrument_id": all_cols.to_numpy()[c]})
    for name, arr in s.inst.items():
        if name != "priced":
            out[name] = arr[pp, c]
    return out.sort_values(["p", "instrument_id"], kind="stable").reset_index(drop=True)


def _with_fundamentals(s: Scored, equities: pd.DataFrame) -> pd.DataFrame:
    panel = s.panel
    equities["issuer_id"] = panel.issuer.reindex(equities["instrument_id"]).to_numpy()
    equities["sector"] = panel.sector.reindex(equities["instrument_id"]).to_numpy()
    has = equities["issuer_id"].notna().to_numpy()
    fund = fundamental_component(s.profiles, equities.loc[has, "issuer_id"].tolist(),
                                 s.dates[equities.loc[has, "p"].to_numpy()], s.config)
    equities["fundamental"] = np.nan
    equities["fundamental_note"] = pd.Series(None, index=equities.index, dtype=object)
    equities["profile_date"] = pd.Series(None, index=equities.index, dtype=object)
    equities.loc[has, "fundamental"] = fund["fundamental"].to_numpy()
    equities.loc[has, "fundamental_note"] = fund["note"].to_numpy()
    equities.loc[has, "profile_date"] = fund["profile_date"].dt.strftime("%Y-%m-%d").to_numpy()
    return equities


def issuer_rows(s: Scored, issuers: pd.DataFrame) -> list[dict]:
    cfg, rows = s.config, []
    for r in issuers.to_dict("records"):
        p = int(r["p"])
        notes, extra = _common(s, p)
        notes += liquidity_notes(r, cfg) + volatility_notes(r, cfg, "cross-sectional")
        notes += contagion_notes(r, cfg, s.index_source, has_sector=r["sector"] is not None)
        if isinstance(r["fundamental_note"], str):
            notes.append(r["fundamental_note"])
        row = {"entity_type": "ISSUER", "entity_id": r["issuer_id"], "p": p,
               **{c: r[c] for c in COMPONENTS}, "vol_ratio": r["vol_ratio"],
               "market_stress_beta": r["market_beta"], "sector_stress_beta": r["sector_beta"],
               "members": None}
        row["diagnostics"] = _diagnostics(
            row, notes, instrument_id=r["instrument_id"], reference_vol=r["reference_vol"],
            reference_source=_reference_source(r), level_ratio=r["level_ratio"],
            market_stress_days=count(r["market_days"]),
            sector_stress_days=None if r["sector"] is None else count(r["sector_days"]),
            profile_date=r["profile_date"], **extra)
        rows.append(row)
    return rows


def _member_means(members: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: mean and count of liquidity and fundamental, members."""
    g = members.groupby(keys, sort=True)
    return pd.DataFrame({"liquidity": g["liquidity"].mean(), "liq_n": g["liquidity"].count(),
                         "fundamental": g["fundamental"].mean(),
                         "fund_n": g["fundamental"].count(), "members": g.size()}).reset_index()


def basket_row(s: Scored, p: int, k: int, entity_type: str, entity_id: str,
               agg: dict, basis: str) -> dict:
    """A SECTOR (basket k) or MARKET (the last basket) row on requested session p; ``agg``
    holds the members' means and counts (``members`` 0: the market is its index)."""
    cfg = s.config
    b = {name: arr[p, k] for name, arr in s.basket.items()}
    notes, extra = _common(s, p)
    liq_n, fund_n, n_members = int(agg["liq_n"]), int(agg["fund_n"]), int(agg["members"])
    if n_members and not liq_n:
        notes.append("liquidity: no member has a liquidity value")
    if n_members and not fund_n:
        notes.append("fundamental: no member has a profile value")
    notes += volatility_notes(b, cfg, "sector-basket" if entity_type == "SECTOR" else None)
    row = {"entity_type": entity_type, "entity_id": entity_id, "p": p,
           "liquidity": agg["liquidity"] if liq_n else np.nan, "volatility": b["volatility"],
           "fundamental": agg["fundamental"] if fund_n else np.nan,
           "vol_ratio": b["vol_ratio"], "sector_stress_beta": np.nan}
    if entity_type == "SECTOR":
        row.update(contagion=b["contagion"], market_stress_beta=b["market_beta"],
                   members=n_members)
        if not math.isfinite(b["market_beta"]):
            notes.append(f"contagion: {count(b['market_days'])} market stress days with a "
                         f"sector return < min_stress_days {cfg.min_stress_days}")
        extra["market_stress_days"] = count(b["market_days"])
    else:
        e = s.exposure
        row.update(contagion=float(comovement_component(e.rho_stress[p], e.rho_all[p], cfg)),
                   market_stress_beta=np.nan, members=n_members or 1)
        stress_n = count(e.index_stress_days[p])
        if not n_members:
            notes.append("contagion: no members to measure stress co-movement (index only)")
        elif not math.isfinite(row["contagion"]):
            notes.append(f"contagion: {stress_n} index stress days < min_stress_days "
                         f"{cfg.min_stress_days}" if stress_n < cfg.min_stress_days else
                         "contagion: fewer than two members with min_stress_days stress-day "
                         "returns")
        extra.update(market_stress_days=stress_n, rho_stress=e.rho_stress[p], rho_all=e.rho_all[p],
                     comovement_members=count(e.comovement_members[p]))
    row["diagnostics"] = _diagnostics(
        row, notes, basis=basis, reference_vol=b["reference_vol"],
        reference_source=_reference_source(b), level_ratio=b["level_ratio"],
        liquidity_members=liq_n, fundamental_members=fund_n, **extra)
    return row


def fx_rows(s: Scored, fx: pd.DataFrame) -> list[dict]:
    cfg, rows = s.config, []
    for r in fx.to_dict("records"):
        p = int(r["p"])
        notes, extra = _common(s, p)
        notes.append("liquidity: not defined for FX (no traded volume)")
        notes += volatility_notes(r, cfg, "FX cross-sectional")
        notes += contagion_notes(r, cfg, s.index_source, has_sector=None)
        row = {"entity_type": "FX", "entity_id": r["instrument_id"], "p": p,
               "liquidity": np.nan, "volatility": r["volatility"],
               "contagion": r["contagion"], "fundamental": np.nan,
               "vol_ratio": r["vol_ratio"], "market_stress_beta": r["market_beta"],
               "sector_stress_beta": np.nan, "members": None}
        row["diagnostics"] = _diagnostics(
            row, notes, reference_vol=r["reference_vol"], reference_source=_reference_source(r),
            level_ratio=r["level_ratio"], market_stress_days=count(r["market_days"]), **extra)
        rows.append(row)
    return rows


def entity_rows(s: Scored) -> list[dict]:
    """ISSUER, SECTOR, MARKET and FX rows of every requested session (unsorted)."""
    panel = s.panel
    equities = _with_fundamentals(s, priced_rows(s, panel.equities))
    issuers = equities[equities["issuer_id"].notna()].drop_duplicates(["p", "issuer_id"])
    rows = issuer_rows(s, issuers)
    by_sector = _member_means(issuers[issuers["sector"].notna()], ["p", "sector"])
    for agg in by_sector.to_dict("records"):
        rows.append(basket_row(s, int(agg["p"]), s.sectors.index(agg["sector"]), "SECTOR",
                               f"{s.market_id}:{agg['sector']}", agg,
                               "equal_weighted_members"))
    market_k = len(s.sectors)
    if len(panel.equities):
        for agg in _member_means(equities, ["p"]).to_dict("records"):
            rows.append(basket_row(s, int(agg["p"]), market_k, "MARKET", s.market_id, agg,
                                   "equal_weighted_equities"))
    else:
        index_only = {"liquidity": np.nan, "liq_n": 0, "fundamental": np.nan, "fund_n": 0,
                      "members": 0}
        for p in np.flatnonzero(s.index_present):
            rows.append(basket_row(s, int(p), market_k, "MARKET", s.market_id, index_only,
                                   f"index:{s.index_source}"))
    return rows + fx_rows(s, priced_rows(s, panel.fx))
