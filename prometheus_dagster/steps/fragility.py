"""Fragility steps of the daily chain: scenario-loss measures per entity and date, soft-target
classes and their decision records (docs/engines/fragility.md). Used by the daily chain
(``assets/fragility.py``) and the portfolio risk reports (``read_paths_by_date``); written
against the reader protocol, so the strict time machine can run them unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.fragility import FragilityConfig, soft_target_classes
from prometheus_dagster.engines.fragility.measures import PATH_COLUMNS, fragility_measures_range
from prometheus_dagster.steps.common import chunked

# dates of scenario paths read per query: one query per date dominated a backfill, a year at
# once would hold every path of the year in memory (about 36,000 rows a date at 120 names)
PATHS_CHUNK_DATES = 16

# what a reader of scenario losses reads (``read_paths``): include it in the reader's inputs
PATHS_INPUTS = Inputs(Read("scenario_sets"), Read("scenario_paths"))

MEASURES_INPUTS = PATHS_INPUTS + Inputs(
    Read("stability_vectors", note="the entities of the date"),
    Read("instruments", reference=True, note="members of issuers, sectors and the market"),
    Read("issuers", reference=True, note="sectors of the issuers"))

SOFT_TARGET_INPUTS = Inputs(Read("stability_vectors"), Read("fragility_measures"))

Entity = tuple[str, str]


def entity_members(stability: pd.DataFrame, instruments: pd.DataFrame, issuers: pd.DataFrame
                   ) -> dict[Entity, list[str]]:
    """(entity_type, entity_id) -> instruments held: an issuer's equity, a sector's or the
    market's equities (the index instrument for a market without equities), an FX pair."""
    ins = instruments.merge(issuers[["issuer_id", "sector"]], on="issuer_id", how="left")
    equities = ins[ins["asset_class"] == "EQUITY"]
    equity_of = equities.drop_duplicates("issuer_id").set_index("issuer_id")["instrument_id"]
    by_sector = equities.groupby("sector")["instrument_id"].apply(list)
    index = list(ins.loc[ins["asset_class"] == "INDEX", "instrument_id"])
    out: dict[Entity, list[str]] = {}
    for etype, eid in stability[["entity_type", "entity_id"]].drop_duplicates().itertuples(
            index=False):
        eid = str(eid)
        if etype == "ISSUER" and eid in equity_of.index:
            out[(etype, eid)] = [str(equity_of[eid])]
        elif etype == "SECTOR":
            out[(etype, eid)] = [str(i) for i in by_sector.get(eid.split(":", 1)[-1], [])]
        elif etype == "MARKET":
            out[(etype, eid)] = [str(i) for i in equities["instrument_id"]] or index
        elif etype == "FX":
            out[(etype, eid)] = [eid]
    return {k: v for k, v in out.items() if v}


# --- scenario paths ---------------------------------------------------------------------------
def read_paths(reader: Any, market_id: str, dates: list[pd.Timestamp],
               instruments: list[str] | None = None) -> pd.DataFrame:
    """The scenario paths of ``dates`` (``as_of_date`` and :data:`PATH_COLUMNS`: each path
    with its set's name and family), of ``instruments`` only when given; one query per
    table."""
    window = InputWindow(reader, PATHS_INPUTS, market_id, dates)
    where: dict[str, Any] = {} if instruments is None else {"instrument_id": instruments}
    sets = window.frame("scenario_sets", columns=["as_of_date", "set_id", "name", "family"])
    paths = window.frame("scenario_paths", columns=["as_of_date", "set_id", "path_id",
                                                    "instrument_id", "cumulative_return"],
                         **where)
    return paths.merge(sets, on=["as_of_date", "set_id"], how="inner")


def read_paths_by_date(reader: Any, market_id: str, dates: list[pd.Timestamp],
                       instruments: Mapping[pd.Timestamp, set[str]] | None = None
                       ) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    """(date, its scenario paths with their set's name and family) for each of ``dates``,
    read :data:`PATHS_CHUNK_DATES` dates per query. ``instruments`` (date -> ids) keeps only
    those instruments' paths. The caller declares :data:`PATHS_INPUTS`."""
    for i in range(0, len(dates), PATHS_CHUNK_DATES):
        chunk = dates[i:i + PATHS_CHUNK_DATES]
        names = None
        if instruments is not None:
            names = sorted(set().union(*(instruments.get(d, set()) for d in chunk)))
        merged = None if names is not None and not names else \
            read_paths(reader, market_id, chunk, names)
        by_date = {} if merged is None else dict(list(
            merged.groupby(pd.to_datetime(merged["as_of_date"]), sort=False)))
        for d in chunk:
            day = by_date.get(pd.Timestamp(d))
            if day is None:
                yield d, pd.DataFrame(columns=["set_id", "path_id", "instrument_id",
                                               "cumulative_return", "name", "family"])
            else:
                day = day.drop(columns="as_of_date").reset_index(drop=True)
                if instruments is not None:
                    day = day[day["instrument_id"].isin(instruments.get(d, set()))]
                yield d, day


# --- measures ---------------------------------------------------------------------------------
def compute_fragility_measures(reader: Any, market_id: str, dates: list[pd.Timestamp],
                               cfg: FragilityConfig, config_id: str, log: Any = None
                               ) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """(``fragility_measures`` rows of ``dates``, the dates without any: no scenario paths or
    no stability vectors). Stability vectors and the reference tables are read once; paths
    a chunk of dates per query, each chunk computed in one pass."""
    window = InputWindow(reader, MEASURES_INPUTS, market_id, dates)
    stability = window.frame("stability_vectors",
                             columns=["entity_type", "entity_id", "as_of_date"])
    members = entity_members(stability, window.frame("instruments"), window.frame("issuers"))
    entities_on: dict[pd.Timestamp, list[Entity]] = {}
    for d, day in stability.groupby(pd.to_datetime(stability["as_of_date"]), sort=False):
        entities_on[pd.Timestamp(d)] = list(dict.fromkeys(
            zip(day["entity_type"].astype(str), day["entity_id"].astype(str), strict=True)))
    frames, without = [], []
    for year in chunked(window.dates, log, f"{market_id} fragility measures"):
        for i in range(0, len(year), PATHS_CHUNK_DATES):
            chunk = year[i:i + PATHS_CHUNK_DATES]
            paths = read_paths(reader, market_id, chunk)
            priced = set(pd.to_datetime(paths["as_of_date"]))
            without += [d for d in chunk if d not in priced or d not in entities_on]
            if len(paths):
                frames.append(fragility_measures_range(market_id, paths, entities_on, members,
                                                       cfg, config_id))
    frames = [f for f in frames if len(f)]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), without


# --- soft targets -----------------------------------------------------------------------------
def compute_soft_target_classes(reader: Any, market_id: str, dates: list[pd.Timestamp],
                                cfg: FragilityConfig, config_id: str) -> pd.DataFrame:
    """``soft_target_classes`` rows of ``dates`` (empty without stability vectors)."""
    window = InputWindow(reader, SOFT_TARGET_INPUTS, market_id, dates)
    stability = window.frame("stability_vectors")
    if stability.empty:
        return pd.DataFrame()
    return soft_target_classes(stability, window.frame("fragility_measures"), cfg, config_id)


def class_decisions(out: pd.DataFrame, column: str, flagged: tuple[str, ...],
                    input_refs: dict[str, Any],
                    extra: Callable[[pd.DataFrame], dict[str, Any]] | None = None
                    ) -> pd.DataFrame:
    """One decision record per date: the entities in each flagged class of ``column``."""
    rows = []
    for d, day in out.groupby("as_of_date", sort=True):
        action: dict[str, Any] = {c: sorted(set(day.loc[day[column] == c, "entity_id"]
                                                .astype(str))) for c in flagged}
        if extra is not None:
            action.update(extra(day))
        rows.append({"context_id": f"{day['market_id'].iloc[0]}:{pd.Timestamp(d).date()}",
                     "as_of_date": d, "config_id": day["config_id"].iloc[0],
                     "model_id": ", ".join(sorted(set(day["model_id"].dropna())))
                     if "model_id" in day and day["model_id"].notna().any() else None,
                     "input_refs": input_refs, "proposed_action": action})
    return pd.DataFrame(rows)


__all__ = ["PATHS_INPUTS", "PATH_COLUMNS", "MEASURES_INPUTS", "SOFT_TARGET_INPUTS",
           "entity_members", "read_paths", "read_paths_by_date", "compute_fragility_measures",
           "compute_soft_target_classes", "class_decisions"]
