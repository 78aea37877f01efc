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
    keys, entities, returns = _entity_returns(paths, members)
    return {e: keys.assign(ret=r) for e, r in zip(entities, returns, strict=True)}


def _entity_returns(paths: pd.DataFrame, members: dict[tuple[str, str], list[str]]
                    ) -> tuple[pd.DataFrame, list[tuple[str, str]], np.ndarray]:
    """The path keys (set_id, name, family, path_id), the entities with a member in the
    paths and their (entities, paths) returns: per path the mean of the members present."""
    missing = sorted(set(PATH_COLUMNS) - set(paths.columns))
    if missing:
        raise KeyError(f"scenario paths lack columns {missing}")
    wide = paths.pivot_table(index=["set_id", "name", "family", "path_id"],
                             columns="instrument_id", values="cumulative_return",
                             aggfunc="first", observed=True)
    cols = {c: k for k, c in enumerate(wide.columns)}
    values = wide.to_numpy(dtype=float)
    entities, returns = [], []
    for entity, ids in members.items():
        idx = [cols[i] for i in ids if i in cols]
        if not idx:
            continue
        block = values[:, idx]
        present = ~np.isnan(block)
        with np.errstate(invalid="ignore"):
            returns.append(np.where(present.any(axis=1), np.nansum(block, axis=1)
                                    / np.maximum(present.sum(axis=1), 1), np.nan))
        entities.append(entity)
    matrix = np.vstack(returns) if returns else np.empty((0, len(wide)))
    return wide.index.to_frame(index=False), entities, matrix


def _row_stats(losses: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Per row of an (entities, paths) loss matrix: valid count, nanmean, expected shortfall
    and nanmax, each equal to the 1-D functions applied to the row (the reductions run along
    the contiguous last axis, so they sum in the same order)."""
    x = np.ascontiguousarray(losses, dtype=float)
    valid = ~np.isnan(x)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.sum(np.where(valid, x, 0.0), axis=1) / count, np.nan)
    low = np.where(valid, x, -np.inf)
    worst = np.where(count > 0, low.max(axis=1, initial=-np.inf), np.nan)
    desc = np.sort(low, axis=1)[:, ::-1]
    es = np.full(len(x), np.nan)
    k = np.maximum(np.ceil(count * (1.0 - level) - 1e-9).astype(int), 1)
    for kk in np.unique(k[count > 0]):
        rows = np.flatnonzero((k == kk) & (count > 0))
        es[rows] = np.ascontiguousarray(desc[rows, :kk]).mean(axis=1)
    return {"count": count, "mean": mean, "es": es, "worst": worst}


def fragility_measures(market_id: str, as_of_date: pd.Timestamp, paths: pd.DataFrame,
                       members: dict[tuple[str, str], list[str]], config: FragilityConfig,
                       config_id: str) -> pd.DataFrame:
    """``fragility_measures`` rows of one date: per entity the mean, ES and worst loss of each
    set, the pooled ES of the stochastic families, the worst case over all paths and
    HighFragility = rank_weight x rank of ES within the entity type + (1 - rank_weight) x
    min(ES / loss_scale, 1)."""
    mc = config.measures
    keys, entities, returns = _entity_returns(paths, members)
    if not entities:
        return pd.DataFrame()
    loss = -returns
    names = keys["name"].astype(str).to_numpy()
    families = keys["family"].astype(str).to_numpy()
    per_set = [{} for _ in entities]
    for name in sorted(set(names)):
        rows = np.flatnonzero(names == name)
        stats = _row_stats(loss[:, rows], mc.es_level)
        family = families[rows[0]]
        for i, d in enumerate(per_set):
            d[name] = {"family": family, "paths": len(rows),
                       "mean": _round(stats["mean"][i]), "es": _round(stats["es"][i]),
                       "worst": _round(stats["worst"][i])}
    total = _row_stats(loss, mc.es_level)
    pooled = _row_stats(loss[:, np.flatnonzero(np.isin(families, list(mc.es_families)))],
                        mc.es_level)
    set_ids = sorted(set(keys["set_id"].astype(str)))
    out = pd.DataFrame({
        "market_id": market_id, "entity_type": [e[0] for e in entities],
        "entity_id": [e[1] for e in entities], "as_of_date": pd.Timestamp(as_of_date),
        "expected_shortfall": pooled["es"], "worst_case_loss": total["worst"],
        "mean_loss": pooled["mean"], "n_paths": total["count"].astype(int),
        "scenario_losses": per_set, "scenario_set_ids": [list(set_ids) for _ in entities],
        "members": [len(members[e]) for e in entities], "config_id": config_id})
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
