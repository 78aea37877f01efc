"""Tables are created on first write from their schema; a column the schema declares but the
table lacks is added (nullable). Nothing is ever dropped. DDL runs in its own transaction under
the backend's DDL lock, and a table found complete is remembered so later writes skip the look-up.
"""

from __future__ import annotations

import contextlib

from prometheus_dagster.core.errors import PrometheusError, WarehouseError
from prometheus_dagster.core.schemas import SQL_TYPES, TableSchema
from prometheus_dagster.resources.warehouse_backend import _Backend, _Session
from prometheus_dagster.resources.warehouse_conditions import _ident

ReadyTables = set[tuple[str, tuple[str, ...]]]
"""(SQL name, declared columns) of the tables known to match their schema."""


def table_columns(s: _Session, backend: _Backend, schema: TableSchema) -> list[str] | None:
    """The table's columns in the database, or None when it does not exist."""
    return s.table_columns(backend.sql_schema(schema.namespace), schema.name)


def create_table_sql(s: _Session, backend: _Backend, schema: TableSchema) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``schema`` in the session's SQL dialect."""
    idx = 0 if s.kind == "duckdb" else 1
    cols = [f"{_ident(c.name)} {SQL_TYPES[c.dtype][idx]}" for c in schema.columns]
    if schema.primary_key and schema.key_index:
        key = ", ".join(_ident(k) for k in schema.primary_key)
        # A key column the schema allows to be empty cannot be in a PRIMARY KEY (it implies
        # NOT NULL); such keys are declared UNIQUE instead.
        required = all(not schema.column(k).nullable for k in schema.primary_key)
        cols.append(f"{'PRIMARY KEY' if required else 'UNIQUE'} ({key})")
    return f"CREATE TABLE IF NOT EXISTS {backend.sql_name(schema)} ({', '.join(cols)})"


def create_or_extend(s: _Session, backend: _Backend, schema: TableSchema,
                     ready: ReadyTables) -> None:
    """Create the table (and its SQL schema) if missing and add the declared columns it lacks;
    a failure is rolled back and raised as :class:`WarehouseError`."""
    key = (backend.sql_name(schema), tuple(schema.column_names))
    if key in ready:
        return
    existing = table_columns(s, backend, schema)
    if existing is not None and not [c for c in schema.column_names if c not in existing]:
        s.commit()
        ready.add(key)
        return
    idx = 0 if s.kind == "duckdb" else 1
    sql_schema = backend.sql_schema(schema.namespace)
    try:
        s.begin()
        s.lock_ddl()
        existing = table_columns(s, backend, schema)  # again, under the lock
        if existing is None:
            has_schema = s.fetchall(
                f"SELECT 1 FROM information_schema.schemata WHERE schema_name = "
                f"{s.param_marker}", [sql_schema])
            if not has_schema:
                s.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(sql_schema)}")
            s.execute(create_table_sql(s, backend, schema))
        else:
            for col in schema.columns:
                if col.name not in existing:
                    s.execute(
                        f"ALTER TABLE {backend.sql_name(schema)} ADD COLUMN IF NOT EXISTS "
                        f"{_ident(col.name)} {SQL_TYPES[col.dtype][idx]}"
                    )
        s.commit()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            s.rollback()
        if isinstance(exc, PrometheusError) or not isinstance(exc, Exception):
            raise
        raise WarehouseError(
            f"{backend.kind} warehouse: cannot create or update table "
            f"{schema.qualified_name}: {exc}"
        ) from exc
    ready.add(key)
