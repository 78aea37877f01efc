"""Dagster resources over the warehouse: an IO manager that stores DataFrame outputs in their
tables, and a resource that hands assets a :class:`Warehouse` for direct reads and writes.

Asset -> table mapping: the table is the last element of the asset key (``["US_EQ",
"prices_daily"]`` -> ``prices_daily``), or the asset's ``metadata={"table": "truth.regime_path"}``.
A key prefix element that is a configured market id names the market; ``GLOBAL`` (or no prefix)
means no market. Partitioned assets replace exactly their partitions (dates) of their market, in
one transaction; unpartitioned assets replace their market's rows, or the whole table.
Optional metadata ``{"partition_extra": {"engine_name": "regime"}}`` narrows the replaced slice
to rows with those column values (several assets sharing one table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import pandas as pd
from dagster import (
    AssetKey,
    ConfigurableIOManager,
    ConfigurableResource,
    InputContext,
    OutputContext,
)

from prometheus_dagster.core.errors import WarehouseError
from prometheus_dagster.core.reader import RecordingReader, active_recording
from prometheus_dagster.core.schemas import TableSchema, get_schema
from prometheus_dagster.resources.warehouse import Warehouse

TABLE_METADATA_KEY = "table"
EXTRA_METADATA_KEY = "partition_extra"


def _warehouse(url: str) -> Warehouse:
    return Warehouse.from_url(url) if url else Warehouse.default()


def _plain(value: Any) -> Any:
    """Unwrap a Dagster MetadataValue to its Python value."""
    from dagster import MetadataValue

    return value.value if isinstance(value, MetadataValue) else value


def market_of(asset_key: AssetKey) -> str | None:
    """The market named by an asset key's prefix (None for GLOBAL or no market prefix)."""
    from prometheus_dagster.core.calendars import GLOBAL, market_ids

    prefix = asset_key.path[:-1]
    if not prefix or GLOBAL in prefix:
        return None
    known = set(market_ids())
    for part in prefix:
        if part in known:
            return part
    return None


def table_target(asset_key: AssetKey, metadata: Mapping[str, Any] | None
                 ) -> tuple[TableSchema, str | None, dict[str, Any]]:
    """(table schema, market id, extra slice columns) for an asset."""
    metadata = metadata or {}
    table = _plain(metadata.get(TABLE_METADATA_KEY)) or asset_key.path[-1]
    schema = get_schema(str(table))
    market = market_of(asset_key)
    if schema.market_column is None:
        market = None
    extra = _plain(metadata.get(EXTRA_METADATA_KEY)) or {}
    if not isinstance(extra, Mapping):
        raise WarehouseError(
            f"asset {asset_key.to_user_string()}: metadata {EXTRA_METADATA_KEY!r} must be a "
            f"mapping of column to value, got {extra!r}"
        )
    return schema, market, dict(extra)


def _dates(asset_key: AssetKey, keys: Sequence[str]) -> list[pd.Timestamp]:
    try:
        return [pd.Timestamp(k).normalize() for k in keys]
    except (TypeError, ValueError) as exc:
        raise WarehouseError(
            f"asset {asset_key.to_user_string()}: partition keys {list(keys)[:3]} are not "
            "dates; the warehouse IO manager stores date-partitioned assets only"
        ) from exc


def partition_row_counts(keys: Sequence[str], frame: pd.DataFrame | None,
                         date_column: str) -> dict[str, int]:
    """Rows per partition key (0 for a key with none), counted in one pass."""
    counts: dict[str, int] = dict.fromkeys(keys, 0)
    if isinstance(frame, pd.DataFrame) and len(frame) and date_column in frame.columns:
        days = pd.to_datetime(frame[date_column]).dt.strftime("%Y-%m-%d")
        for day, n in days.value_counts().items():
            if day in counts:
                counts[day] = int(n)
    return counts


def _add_partition_rows(context: OutputContext, asset_key: AssetKey, keys: Sequence[str],
                        frame: pd.DataFrame | None, date_column: str) -> None:
    """Each partition's materialization says how many rows it has (``rows``); the run's
    figures stay on every partition (``rows_written``, first and last partition)."""
    try:
        step = context.step_context
    except Exception:  # an output context built outside a run (tests, direct calls)
        return
    add_partition_metadata(step, asset_key, {
        key: {"rows": n} for key, n in partition_row_counts(keys, frame, date_column).items()})


def add_partition_metadata(step_context: Any, asset_key: AssetKey,
                           per_partition: Mapping[str, Mapping[str, Any]]) -> None:
    """Partition-scoped materialization metadata for many partitions at once. Dagster's
    ``add_asset_metadata(partition_key=...)`` lists the run's partition range and copies its
    accumulator on every call: quadratic over a long backfill, dearer than the events
    themselves. This merges every partition's entry in one step (same result)."""
    from dagster._core.execution.context.metadata_logging import (
        AssetMetadataHandle,
        OutputMetadataAccumulator,
    )

    accumulator = step_context._metadata_accumulator  # noqa: SLF001
    merged = dict(accumulator.per_output_metadata)
    for key, metadata in per_partition.items():
        handle = AssetMetadataHandle(asset_key=asset_key, partition_key=key)
        merged[handle] = {**merged.get(handle, {}), **metadata}
    step_context._metadata_accumulator = OutputMetadataAccumulator(  # noqa: SLF001
        per_output_metadata=merged)


def _fill_slice_columns(df: pd.DataFrame, schema: TableSchema, market: str | None,
                        extra: Mapping[str, Any]) -> pd.DataFrame:
    """Add the market and extra columns when the asset's frame leaves them out."""
    fill: dict[str, Any] = dict(extra)
    if market is not None and schema.market_column is not None:
        fill[schema.market_column] = market
    missing = {k: v for k, v in fill.items() if k not in df.columns}
    return df.assign(**missing) if missing else df


class WarehouseIOManager(ConfigurableIOManager):
    """Stores DataFrame outputs in the warehouse table of their asset and loads them back
    (only the partitions and market an input needs). ``url`` empty means
    ``Warehouse.default()``."""

    url: str = ""

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | None) -> None:
        """Write ``obj`` (None writes nothing): partitioned assets replace their partitions,
        unpartitioned assets their market's rows or the whole table."""
        if obj is None:
            return
        asset_key = context.asset_key
        schema, market, extra = table_target(asset_key, context.definition_metadata)
        wh = _warehouse(self.url)
        df = _fill_slice_columns(obj, schema, market, extra) if isinstance(
            obj, pd.DataFrame) else obj
        meta: dict[str, Any] = {"table": schema.qualified_name}
        if market is not None:
            meta["market_id"] = market
        if context.has_asset_partitions:
            if schema.partition_column is None:
                raise WarehouseError(
                    f"asset {asset_key.to_user_string()} is partitioned but table "
                    f"{schema.qualified_name} has no partition column"
                )
            dates = _dates(asset_key, context.asset_partition_keys)
            rows = wh.write_partitions(schema, df, market_id=market, dates=dates, extra=extra)
            _add_partition_rows(context, asset_key, context.asset_partition_keys,
                                df, schema.partition_column)
            meta.update({
                "partitions": len(dates),
                "first_partition": min(dates).strftime("%Y-%m-%d"),
                "last_partition": max(dates).strftime("%Y-%m-%d"),
            })
        else:
            where: dict[str, Any] = dict(extra)
            if market is not None and schema.market_column is not None:
                where[schema.market_column] = market
            rows = wh.replace_all(schema, df, where=where or None)
        meta["rows_written"] = int(rows)
        context.add_output_metadata(meta)

    def load_input(self, context: InputContext) -> pd.DataFrame:
        """The upstream asset's rows for the partitions this input maps to (all of them when
        the upstream is unpartitioned), restricted to its market."""
        asset_key = context.asset_key
        upstream = context.upstream_output
        metadata = upstream.definition_metadata if upstream is not None else None
        schema, market, extra = table_target(asset_key, metadata)
        wh = _warehouse(self.url)
        if context.has_asset_partitions and schema.partition_column is not None:
            dates = _dates(asset_key, context.asset_partition_keys)
            return wh.read_partitions(schema, market_id=market, dates=dates, extra=extra)
        where: dict[str, Any] = dict(extra)
        if market is not None and schema.market_column is not None:
            where[schema.market_column] = market
        order = [c for c in (schema.partition_column,) if c] + [
            k for k in schema.primary_key if k != schema.partition_column]
        return wh.read(schema, where=where or None, order_by=order)


class WarehouseResource(ConfigurableResource):
    """Gives assets the :class:`Warehouse` (history windows, logs, direct writes)."""

    url: str = ""

    def get(self) -> Warehouse:
        """The configured warehouse (``Warehouse.default()`` when ``url`` is empty). Inside
        ``core.reader.recording()`` it notes every read under the running asset step's name."""
        wh = _warehouse(self.url)
        rec = active_recording()
        if rec is None:
            return wh
        from dagster import AssetExecutionContext

        try:
            owner = AssetExecutionContext.get().op_execution_context.op.name
        except Exception:  # outside an asset step (a sensor, a test helper): not recorded
            return wh
        return cast(Warehouse, RecordingReader(wh, rec, owner))
