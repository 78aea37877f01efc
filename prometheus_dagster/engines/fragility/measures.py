"""Scenario losses per entity: the loss of every path of every scenario set, the expected
shortfall of the pooled stochastic paths, the worst case, and HighFragility in [0, 1].

An ISSUER or FX entity holds its instrument; a SECTOR or MARKET entity holds its members in
equal weights (the path return of the entity is the mean of its members' path returns), so a
sector loses what an equal-weighted basket of its names would."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_dagster.engines.fragility.config import FragilityConfig

PATH_COLUMNS = ("set_id", "name", "family", "path_id", "instrument_id", "cumulative_return")


def expected_shortfall(losses: np.ndarray, level: float) -> float:
    """Mean of the worst ``1 - level`` share of ``losses`` (at least one path); NaN if empty.
    With fewer paths than 1 / (1 - level) this is the worst loss."""
    x = np.sort(np.asarray(losses, dtype=float)[~np.isnan(losses)])[::-1]
    if not len(x):
        return float("nan")
    k = max(int(np.ceil(len(x) * (1.0 - level) - 1e-9)), 1)
    return float(x[:k].mean())


def entity_path_returns(paths: pd.DataFrame, members: dict[tuple[str, str], list[str]]
                        ) -> dict[tuple[str, str], pd.DataFrame]:
    """(entity_type, entity_id) -> frame (set_id, name, family, path_id, ret): each path's
    return of the entity, the equal-weighted mean of its members present in the set."""
    missing = sorted(set(PATH_COLUMNS) - set(paths.columns))
    if missing:
        raise KeyError(f"scenario paths lack columns {missing}")
    wide = paths.pivot_table(index=["set_id", "name", "family", "path_id"],
                             columns="instrument_id", values="cumulative_return",
                             aggfunc="first", observed=True)
    cols = {c: k for k, c in enumerate(wide.columns)}
    values = wide.to_numpy(dtype=float)
    keys = wide.index.to_frame(index=False)
    out = {}
    for entity, ids in members.items():
        idx = [cols[i] for i in ids if i in cols]
        if not idx:
            continue
        block = values[:, idx]
        present = ~np.isnan(block)
        with np.errstate(invalid="ignore"):
            ret = np.where(present.any(axis=1), np.nansum(block, axis=1)
                           / np.maximum(present.sum(axis=1), 1), np.nan)
        out[entity] = keys.assign(ret=ret)
    return out


def fragility_measures(market_id: str, as_of_date: pd.Timestamp, paths: pd.DataFrame,
                       members: dict[tuple[str, str], list[str]], config: FragilityConfig,
                       config_id: str) -> pd.DataFrame:
    """``fragility_measures`` rows of one date: per entity the mean, ES and worst loss of each
    set, the pooled ES of the stochastic families, the worst case over all paths and
    HighFragility = rank_weight x rank of ES within the entity type + (1 - rank_weight) x
    min(ES / loss_scale, 1)."""
    mc = config.measures
    rows = []
    for (etype, eid), frame in entity_path_returns(paths, members).items():
        loss = -frame["ret"].to_numpy()
        per_set = {}
        for name, g in frame.assign(loss=loss).groupby("name", sort=True):
            gl = g["loss"].to_numpy()
            per_set[str(name)] = {"family": str(g["family"].iloc[0]), "paths": int(len(gl)),
                                  "mean": _round(np.nanmean(gl)),
                                  "es": _round(expected_shortfall(gl, mc.es_level)),
                                  "worst": _round(np.nanmax(gl))}
        pooled = loss[frame["family"].isin(mc.es_families).to_numpy()]
        rows.append({
            "market_id": market_id, "entity_type": etype, "entity_id": eid,
            "as_of_date": pd.Timestamp(as_of_date),
            "expected_shortfall": expected_shortfall(pooled, mc.es_level),
            "worst_case_loss": float(np.nanmax(loss)) if np.isfinite(loss).any() else np.nan,
            "mean_loss": float(np.nanmean(pooled)) if np.isfinite(pooled).any() else np.nan,
            "n_paths": int(np.isfinite(loss).sum()),
            "scenario_losses": per_set,
            "scenario_set_ids": sorted(set(frame["set_id"].astype(str))),
            "members": len(members[(etype, eid)]),
            "config_id": config_id})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["high_fragility"] = high_fragility(out, config)
    return out.sort_values(["entity_type", "entity_id"], ignore_index=True)


def high_fragility(measures: pd.DataFrame, config: FragilityConfig) -> pd.Series:
    """Blend of the cross-sectional rank of ES within each entity type (types with fewer
    than ``min_rank_entities`` use the absolute part alone) and ES / loss_scale, in [0, 1];
    non-decreasing in ES within a date."""
    mc = config.measures
    es = measures["expected_shortfall"].astype(float)
    absolute = (es / mc.loss_scale).clip(0.0, 1.0)
    ranks = es.groupby(measures["entity_type"]).rank(pct=True, method="max")
    counts = es.groupby(measures["entity_type"]).transform("count")
    use_rank = counts >= mc.min_rank_entities
    blended = mc.rank_weight * ranks + (1 - mc.rank_weight) * absolute
    return blended.where(use_rank, absolute).clip(0.0, 1.0)


def _round(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)
