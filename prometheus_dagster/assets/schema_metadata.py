"""Column schemas from the schema registry (``core.schemas``) published as Dagster metadata, so
each asset's page in the UI lists its table's columns, types, nullability and descriptions."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from prometheus_dagster.core.schemas import TABLES


def column_schema(table: str) -> dg.TableSchema | None:
    """The Dagster column schema of a registered table (None for an unknown one)."""
    schema = TABLES.get(table)
    if schema is None:
        return None
    return dg.TableSchema(columns=[
        dg.TableColumn(c.name, c.dtype, description=c.description or None,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable))
        for c in schema.columns])


def _with_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    table = spec.metadata.get("table")
    table = getattr(table, "value", table) or spec.key.path[-1]
    schema = column_schema(str(table))
    if schema is None or "dagster/column_schema" in spec.metadata:
        return spec
    return spec.merge_attributes(metadata={"dagster/column_schema": schema})


def with_column_schemas(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    return list(dg.map_asset_specs(_with_schema, list(assets)))
