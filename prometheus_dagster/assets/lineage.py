"""Dagster lineage from the one input declaration of each asset (``core.inputs``): the deps with
their partition mappings, the asset metadata that shows the declaration in the UI, and the
registry the lineage test reads."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetDep, AssetKey, PartitionMapping, TimeWindowPartitionMapping

from prometheus_dagster.core.inputs import ConcreteRead, Inputs
from prometheus_dagster.core.partitions import model_for_date_mapping

INPUTS_METADATA_KEY = "prometheus/inputs"
# a history read ("every partition up to D") is declared over the ten years before D: the
# longest window an engine uses (regime refits' max_history_years); Dagster's cost of mapping
# a window grows with its length (about 0.5 s per mapping at ten years, 1.3 s at thirty)
HISTORY_SESSIONS = 2_520

# step (op) name -> (inputs, market, members): what each asset step declares it reads
DECLARED: dict[str, tuple[Inputs, str, tuple[str, ...]]] = {}


def _mapping(c: ConcreteRead, refit: bool) -> PartitionMapping | None:
    r = c.read
    if r.reference:
        return None
    if r.model:
        return model_for_date_mapping()
    if refit:
        # a refit partition P is trained on data dated before P; Dagster maps a refit window to
        # the daily partitions inside it, so the window before P is one refit period earlier
        return TimeWindowPartitionMapping(start_offset=-1, end_offset=-1,
                                          allow_nonexistent_upstream_partitions=True)
    back = HISTORY_SESSIONS if r.history else r.sessions
    return TimeWindowPartitionMapping(start_offset=-back,
                                      allow_nonexistent_upstream_partitions=True)


def asset_deps(inputs: Inputs, market_id: str, members: Sequence[str] = (),
               refit: bool = False) -> list[AssetDep]:
    """The Dagster deps of an asset of ``market_id`` with the declared ``inputs`` (``refit``:
    the asset is a model refit partitioned by period, trained on data before its period)."""
    deps: dict[AssetKey, AssetDep] = {}
    for c in inputs.concrete(market_id, members):  # several tables of one multi-asset: one dep
        key = AssetKey(c.key_path)
        deps.setdefault(key, AssetDep(key, partition_mapping=_mapping(c, refit)))
    return list(deps.values())


def declare(step_name: str, inputs: Inputs, market_id: str,
            members: Sequence[str] = ()) -> dict[str, str]:
    """Register what step ``step_name`` reads; returns the asset metadata showing it."""
    DECLARED[step_name] = (inputs, market_id, tuple(members))
    return {INPUTS_METADATA_KEY: inputs.describe(market_id, members)}


def step_name(market_id: str, table: str) -> str:
    """The op name Dagster gives ``@asset(key=AssetKey([market_id, table]))``."""
    return f"{market_id}__{table}"


def refit_asset_args(market_id: str, model_asset: str, inputs: Inputs, cadence: str,
                     first_year: int, slice_: dict, members: Sequence[str] = ()) -> dict:
    """The ``@asset`` arguments every model-refit asset shares: its key, deps on the data
    before its period, refit partitions, the ``models`` table slice it replaces (``slice_``),
    the declaration, tier 2."""
    from prometheus_dagster.core.partitions import refit_partitions_def

    return {"key": AssetKey([market_id, model_asset]),
            "deps": asset_deps(inputs, market_id, members, refit=True),
            "partitions_def": refit_partitions_def(cadence, first_year),
            "metadata": {"table": "models", "partition_extra": slice_,
                         **declare(step_name(market_id, model_asset), inputs, market_id,
                                   members)},
            "tags": {"prometheus/tier": "2"}}
