"""``stability_vectors`` rows of one market for a list of dates, vectorised across dates.

Everything is computed once on the wide session x instrument panel (rolling windows run
down the whole session axis, each value reading only its trailing window) and then read at
the requested sessions; the only per-date loop is the contagion window fit. A row for D
therefore depends only on data dated on or before D, and a multi-date call equals per-date
calls.

Entities on D:

* ISSUER: each COMPANY issuer with an EQUITY instrument priced on D (its first such
  instrument by id).
* SECTOR ``<market_id>:<sector>``: the priced issuers of the sector. Liquidity and
  fundamental are the means over members with a value; volatility and contagion are those of
  the sector's equal-weighted return series (vol_21d / vol_63d from its own returns, and its
  stress beta to the market index).
* MARKET ``<market_id>``: all priced equities (liquidity and fundamental their means,
  volatility of their equal-weighted return series, contagion from their stress-day
  co-movement); a market without equities is represented by its index.
* FX: each FX instrument priced on D, with volatility from its own rows and contagion from
  its stress beta to the market index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prometheus_dagster.engines.stability.components import (
    VolatilityParts,
    contagion_component,
    cross_sectional_median,
    liquidity_component,
    stability_score,
    volatility_component,
)
from prometheus_dagster.engines.stability.config import COMPONENTS, StabilityConfig
from prometheus_dagster.engines.stability.contagion import stress_exposure
from prometheus_dagster.engines.stability.panel import (
    StabilityInputs,
    basket_returns,
    build_panel,
    market_index,
    regime_on_sessions,
    rolling_vol,
)
from prometheus_dagster.engines.stability.rows import Scored, entity_rows
from prometheus_dagster.engines.stability.schemas import STABILITY_VECTORS

MARKET_BASKET = "__market__"
_VOL_PARTS = (("volatility", "component"), ("vol_ratio", "vol_ratio"),
              ("level_ratio", "level_ratio"), ("reference_vol", "reference_vol"),
              ("reference_from_xs", "reference_from_cross_section"),
              ("vol_history", "own_history"))


def _requested(sessions: pd.DatetimeIndex,
               dates: Sequence[pd.Timestamp]) -> tuple[np.ndarray, pd.DatetimeIndex]:
    wanted = pd.DatetimeIndex(sorted(set(pd.to_datetime(list(dates)).normalize())))
    pos = sessions.get_indexer(wanted) if len(sessions) else np.full(len(wanted), -1)
    return pos[pos >= 0], wanted[pos >= 0]


def _vol_arrays(parts: Sequence[VolatilityParts], columns: pd.Index,
                positions: np.ndarray) -> dict[str, np.ndarray]:
    """The volatility parts of disjoint column sets as (P, len(columns)) arrays."""
    out = {}
    for name, attr in _VOL_PARTS:
        frames = [getattr(v, attr).astype(float) for v in parts]
        whole = pd.concat(frames, axis=1) if frames else pd.DataFrame()
        out[name] = whole.reindex(columns=columns).to_numpy(dtype=float)[positions]
    return out


def _score(market_id: str, inputs: StabilityInputs, dates: Sequence[pd.Timestamp],
           config: StabilityConfig) -> Scored | None:
    panel = build_panel(inputs)
    positions, out_dates = _requested(panel.sessions, dates)
    if not len(positions):
        return None
    regime = regime_on_sessions(inputs.regime_labels, panel.sessions, config)
    mult = pd.Series([config.regime_vol_multiplier.get(lab, 1.0) if lab is not None else 1.0
                      for lab in regime], index=panel.sessions, dtype=float)
    index, index_source = market_index(panel, inputs.index_returns)
    eq, fx, columns = panel.equities, panel.fx, panel.ret.columns

    liq = liquidity_component(panel.amihud[eq], panel.adv[eq], config)
    vol_eq = volatility_component(panel.vol_21d[eq], panel.vol_63d[eq], mult, config)
    vol_fx = volatility_component(panel.vol_21d[fx], panel.vol_63d[fx], mult, config)
    inst = {"priced": panel.priced.to_numpy()[positions]}
    for name, frame in (("liquidity", liq.component), ("liq_xs", liq.cross_section),
                        ("liq_own", liq.own_history), ("adv_history", liq.adv_history),
                        ("amihud", panel.amihud), ("adv", panel.adv),
                        ("vol_21d", panel.vol_21d)):
        inst[name] = frame.reindex(columns=columns).to_numpy(dtype=float)[positions]
    inst["amihud_names"] = np.repeat(
        liq.cross_section_names.to_numpy(dtype=float)[positions][:, None], len(columns), 1)
    inst.update(_vol_arrays([vol_eq, vol_fx], columns, positions))

    # baskets: one equal-weighted series per sector, then the market's
    sectors = sorted({s for s in panel.sector if s is not None})
    baskets = basket_returns(
        panel.ret, {s: panel.sector.index[(panel.sector == s).to_numpy()] for s in sectors})
    baskets[MARKET_BASKET] = panel.ret[eq].mean(axis=1) if len(eq) else index
    b21, b63 = rolling_vol(baskets, 21, config), rolling_vol(baskets, 63, config)
    equity_level = cross_sectional_median(panel.vol_21d[eq], config.min_cross_section)
    no_reference = pd.Series(np.nan, index=panel.sessions)
    vol_sec = volatility_component(b21[sectors], b63[sectors], mult, config,
                                   level_median=equity_level)
    vol_mkt = volatility_component(b21[[MARKET_BASKET]], b63[[MARKET_BASKET]], mult, config,
                                   level_median=equity_level, fallback_reference=no_reference)
    basket = _vol_arrays([vol_sec, vol_mkt], baskets.columns, positions)
    basket["vol_21d"] = b21.to_numpy()[positions]

    sector_num = {s: k for k, s in enumerate(sectors)}
    sector_of = np.array([sector_num.get(s, -1) for s in panel.sector], dtype=int)
    members = panel.priced.to_numpy() & (panel.asset_class == "EQUITY").to_numpy()[None, :]
    exposure = stress_exposure(panel.ret.to_numpy(dtype=float), index.to_numpy(dtype=float),
                               sector_of, baskets.to_numpy(dtype=float), members, positions,
                               config)
    inst["contagion"], _ = contagion_component(exposure.market_beta, exposure.sector_beta,
                                               config)
    inst.update(market_beta=exposure.market_beta, market_days=exposure.market_days,
                sector_beta=exposure.sector_beta, sector_days=exposure.sector_days)
    basket["contagion"], _ = contagion_component(
        exposure.basket_beta, np.full_like(exposure.basket_beta, np.nan), config)
    basket.update(market_beta=exposure.basket_beta, market_days=exposure.basket_days)

    if index_source.startswith("instrument:"):
        index_present = panel.priced[index_source.split(":", 1)[1]].to_numpy()[positions]
    else:
        index_present = index.notna().to_numpy()[positions]
    return Scored(market_id, config, panel, inputs.profiles, out_dates,
                  regime.to_numpy()[positions], mult.to_numpy()[positions], index_source,
                  index_present, inst, sectors, basket, exposure)


def compute_stability(market_id: str, inputs: StabilityInputs, dates: list[pd.Timestamp],
                      config: StabilityConfig, config_id: str) -> pd.DataFrame:
    """``stability_vectors`` rows of ``market_id`` for each of ``dates`` that is a session of
    the inputs (a date without data has no rows), sorted by (as_of_date, entity_type,
    entity_id). A row for D reads only data dated on or before D."""
    columns = STABILITY_VECTORS.column_names
    scored = _score(market_id, inputs, dates, config)
    rows = entity_rows(scored) if scored is not None else []
    if scored is None or not rows:
        return pd.DataFrame({c: [] for c in columns})
    out = pd.DataFrame(rows)
    p = out["p"].to_numpy()
    out["market_id"] = market_id
    out["as_of_date"] = scored.dates[p]
    out["regime_label"] = scored.regime[p]
    out["stability_score"] = stability_score(out, config.weights.model_dump()).to_numpy()
    for c in (*COMPONENTS, "stability_score", "vol_ratio", "market_stress_beta",
              "sector_stress_beta"):
        out[c] = out[c].astype(float)
    out["members"] = pd.array(out["members"], dtype="Int64")
    out["config_id"] = config_id
    out = out.sort_values(["as_of_date", "entity_type", "entity_id"], kind="stable")
    return out[columns].reset_index(drop=True)
