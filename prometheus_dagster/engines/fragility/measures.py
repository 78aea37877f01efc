"""Scenario losses per entity: the loss of every path of every scenario set, the expected
shortfall of the pooled stochastic paths, the worst case, and HighFragility in [0, 1].

An ISSUER or FX entity holds its instrument; a SECTOR or MARKET entity holds its members in
equal weights (the path return of the entity is the mean of its members' path returns), so a
sector loses what an equal-weighted basket of its names would."""

from __future__ import annotations

from typing import Any

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
    per_set: list[dict[str, Any]] = [{} for _ in entities]
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
    """Blend of the cross-sectional rank of ES within each date and entity type (types with fewer
    than ``min_rank_entities`` use the absolute part alone) and ES / loss_scale, in [0, 1];
    non-decreasing in ES within a date."""
    mc = config.measures
    es = measures["expected_shortfall"].astype(float)
    absolute = (es / mc.loss_scale).clip(0.0, 1.0)
    # ranked within each date and entity type (rows of several dates: each date on its own)
    by = [measures[c] for c in ("as_of_date", "entity_type") if c in measures]
    ranks = es.groupby(by).rank(pct=True, method="max")
    counts = es.groupby(by).transform("count")
    use_rank = counts >= mc.min_rank_entities
    blended = mc.rank_weight * ranks + (1 - mc.rank_weight) * absolute
    return blended.where(use_rank, absolute).clip(0.0, 1.0)


def _round(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


# --- a range of dates in one pass -------------------------------------------------------------
PATH_KEYS = ["as_of_date", "set_id", "name", "family", "path_id"]


def fragility_measures_range(market_id: str, paths: pd.DataFrame,
                             entities_on: dict[pd.Timestamp, list[tuple[str, str]]],
                             members: dict[tuple[str, str], list[str]],
                             config: FragilityConfig, config_id: str) -> pd.DataFrame:
    """``fragility_measures`` rows of many dates at once, equal to :func:`fragility_measures`
    of each date on its own (bit for bit). ``paths``: the dates' scenario paths (``as_of_date``
    and :data:`PATH_COLUMNS`); ``entities_on``: date -> the entities with a stability vector;
    ``members``: entity -> instruments held (the same on every date).

    The paths of all dates are laid out once as one (path, instrument) matrix and each
    entity's path returns are computed for every date sharing the same priced instruments in
    one block; the per-row reductions then see the same numbers in the same order as a single
    date's pivot, which is what keeps the result bit-identical."""
    mc = config.measures
    keys, values, instruments = _wide_paths(paths)
    if not len(keys):
        return pd.DataFrame()
    dates = keys["as_of_date"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, dates[1:] != dates[:-1], True])
    spans = {pd.Timestamp(dates[a]): (a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)}
    col_of = {c: k for k, c in enumerate(instruments)}
    names = keys["name"].astype(str).to_numpy()
    families = keys["family"].astype(str).to_numpy()
    stochastic = np.isin(families, list(mc.es_families))
    # dates whose paths price the same instruments share the entities' member columns
    priced = {d: np.flatnonzero(~np.isnan(values[a:b]).all(axis=0)) for d, (a, b) in spans.items()}
    groups: dict[bytes, list[pd.Timestamp]] = {}
    for d in spans:
        if entities_on.get(d):
            groups.setdefault(priced[d].tobytes(), []).append(d)
    frames = []
    for group in groups.values():
        present = set(instruments[priced[group[0]]])
        rows = np.concatenate([np.arange(*spans[d]) for d in group])
        lengths = [spans[d][1] - spans[d][0] for d in group]
        offset = dict(zip(group, np.cumsum([0, *lengths[:-1]]).tolist(), strict=True))
        wanted = {e for d in group for e in entities_on[d]}
        row_of: dict[tuple[str, str], int] = {}
        returns: list[np.ndarray] = []
        for entity in sorted(wanted):
            idx = np.array([col_of[i] for i in members.get(entity, []) if i in present],
                           dtype=np.intp)
            if idx.size:
                # column-major like a pivot's matrix: members are summed one after another
                # (a row-major block would be summed pairwise, differing in the last bit)
                row_of[entity] = len(returns)
                returns.append(_mean_of_present(np.asfortranarray(values[np.ix_(rows, idx)])))
        matrix = np.vstack(returns) if returns else np.empty((0, len(rows)))
        for d in group:
            entities = [e for e in entities_on[d] if e in row_of]
            if not entities:
                continue
            a, b = spans[d]
            lo = offset[d]
            loss = -matrix[[row_of[e] for e in entities], lo:lo + b - a]
            frames.append(_date_measures(market_id, d, keys.iloc[a:b], names[a:b],
                                         families[a:b], stochastic[a:b], loss, entities,
                                         members, mc.es_level, config_id))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["high_fragility"] = high_fragility(out, config)
    return out.sort_values(["as_of_date", "entity_type", "entity_id"], ignore_index=True)


def _wide_paths(paths: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(path keys sorted by date, set and path; the (paths, instruments) matrix of cumulative
    returns; the sorted instrument ids): what ``pivot_table`` makes of one date's paths, for
    every date at once (cells without a return are NaN, paths and instruments without any are
    left out). A set id names one set of one date, so (set_id, path_id) orders a date's paths
    as the pivot's (set_id, name, family, path_id) index does."""
    missing = sorted({"as_of_date", *PATH_COLUMNS} - set(paths.columns))
    if missing:
        raise KeyError(f"scenario paths lack columns {missing}")
    value = paths["cumulative_return"].to_numpy(dtype=float)
    col, instruments = pd.factorize(paths["instrument_id"].to_numpy(), sort=True)
    keep = ~np.isnan(value) & (col >= 0)  # a missing instrument id is code -1
    col, value = col[keep], value[keep]
    date_code, _ = pd.factorize(pd.to_datetime(paths["as_of_date"]).to_numpy()[keep], sort=True)
    set_code, set_ids = pd.factorize(paths["set_id"].to_numpy()[keep], sort=True)
    path_code, path_ids = pd.factorize(paths["path_id"].to_numpy()[keep], sort=True)
    composite = (date_code.astype(np.int64) * len(set_ids) + set_code) * len(path_ids) + path_code
    # factorize (hashing) and sort the few distinct paths, not the rows
    row, distinct = pd.factorize(composite, sort=True)
    first = np.full(len(distinct), len(row))
    np.minimum.at(first, row, np.arange(len(row)))
    keys = paths.iloc[np.flatnonzero(keep)[first]][PATH_KEYS].reset_index(drop=True)
    keys["as_of_date"] = pd.to_datetime(keys["as_of_date"])
    values = np.full((len(keys), len(instruments)), np.nan)
    values[row, col] = value
    return keys, values, np.asarray(instruments, dtype=object)


def _mean_of_present(block: np.ndarray) -> np.ndarray:
    """Per row, the mean of the non-NaN cells (NaN when none): an entity's path return."""
    present = ~np.isnan(block)
    with np.errstate(invalid="ignore"):
        return np.where(present.any(axis=1), np.nansum(block, axis=1)
                        / np.maximum(present.sum(axis=1), 1), np.nan)


def _date_measures(market_id: str, as_of_date: pd.Timestamp, keys: pd.DataFrame,
                   names: np.ndarray, families: np.ndarray, stochastic: np.ndarray,
                   loss: np.ndarray, entities: list[tuple[str, str]],
                   members: dict[tuple[str, str], list[str]], level: float,
                   config_id: str) -> pd.DataFrame:
    """One date's rows (without HighFragility) from its (entities, paths) loss matrix."""
    set_names = sorted(set(names))
    per_name = []
    for name in set_names:
        rows = np.flatnonzero(names == name)
        stats = _row_stats(loss[:, rows], level)
        per_name.append((name, str(families[rows[0]]), len(rows),
                         *(_rounded(stats[s]) for s in ("mean", "es", "worst"))))
    per_set = [{name: {"family": fam, "paths": n, "mean": m[i], "es": e[i], "worst": w[i]}
                for name, fam, n, m, e, w in per_name} for i in range(len(entities))]
    total = _row_stats(loss, level)
    pooled = _row_stats(loss[:, np.flatnonzero(stochastic)], level)
    set_ids = sorted(set(keys["set_id"].astype(str)))
    return pd.DataFrame({
        "market_id": market_id, "entity_type": [e[0] for e in entities],
        "entity_id": [e[1] for e in entities], "as_of_date": pd.Timestamp(as_of_date),
        "expected_shortfall": pooled["es"], "worst_case_loss": total["worst"],
        "mean_loss": pooled["mean"], "n_paths": total["count"].astype(int),
        "scenario_losses": per_set, "scenario_set_ids": [list(set_ids) for _ in entities],
        "members": [len(members[e]) for e in entities], "config_id": config_id})


def _rounded(x: np.ndarray) -> list[float | None]:
    """:func:`_round` of each value, vectorised: rint(x * 1e6) / 1e6 is Python's correctly
    rounded ``round(x, 6)`` except where x * 1e6 lies within its own rounding error of a
    half-integer; those few (and huge values) take Python's ``round``."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = x * 1e6
        near_half = np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) <= 1e-6
        fast = np.rint(scaled) / 1e6
    slow = finite & (near_half | (np.abs(x) >= 1e3))
    out: list[float | None] = fast.tolist()
    for k in np.flatnonzero(slow | ~finite):
        out[k] = round(float(x[k]), 6) if finite[k] else None
    return out
