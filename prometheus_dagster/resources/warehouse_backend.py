"""What the warehouse needs from a database: a :class:`_Backend` opens one short-lived
:class:`_Session` (one connection) per operation and names the SQL schemas; each backend
serialises its own writers (see ``warehouse_duckdb`` and ``warehouse_postgres``)."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from prometheus_dagster.core.schemas import TableSchema
from prometheus_dagster.resources.warehouse_conditions import _ident

DEFAULT_LOCK_TIMEOUT_S = 600.0
"""How long an operation waits for the DuckDB file lock (or a PostgreSQL lock) before failing."""
LOCK_TIMEOUT_ENV = "PROMETHEUS_WAREHOUSE_LOCK_TIMEOUT"


class _Session(abc.ABC):
    """One connection for one operation."""

    param_marker = "?"
    kind = ""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        ...

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        ...

    @abc.abstractmethod
    def fetch_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        ...

    def table_columns(self, sql_schema: str, name: str) -> list[str] | None:
        """The table's columns in order, or None when it does not exist."""
        rows = self.fetchall(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"{self.param_marker} AND table_name = {self.param_marker} "
            "AND table_catalog = current_database() ORDER BY ordinal_position",
            [sql_schema, name],
        )
        return [r[0] for r in rows] or None

    @abc.abstractmethod
    def begin(self) -> None:
        ...

    @abc.abstractmethod
    def commit(self) -> None:
        ...

    @abc.abstractmethod
    def rollback(self) -> None:
        ...

    def delete(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run a DELETE or UPDATE that frees stored values (DuckDB counts them for
        compaction)."""
        self.execute(sql, params)

    def lock_ddl(self) -> None:
        """Serialise DDL between processes (inside the current transaction). By default a no-op:
        DuckDB's file lock already serialises every operation."""
        return None

    def lock_table(self, table: str) -> None:
        """Serialise writers of ``table`` (inside the current transaction); a no-op by default,
        as for lock_ddl."""
        return None

    @abc.abstractmethod
    def insert_frame(self, table: str, schema: TableSchema, frame: pd.DataFrame, *,
                     ignore_conflicts: bool = False) -> int:
        """Insert a validated frame; returns the number of rows inserted."""


class _Backend(abc.ABC):
    kind: str = ""
    default_schema: str = "main"

    def __init__(self, schema_prefix: str | None, lock_timeout: float) -> None:
        self.schema_prefix = schema_prefix
        self.lock_timeout = lock_timeout

    def sql_schema(self, namespace: str) -> str:
        prefix = self.schema_prefix
        if prefix:
            return prefix if namespace == "main" else f"{prefix}_{namespace}"
        return self.default_schema if namespace == "main" else namespace

    def sql_name(self, schema: TableSchema) -> str:
        """The quoted, schema-qualified SQL name of a table on this backend."""
        return f"{_ident(self.sql_schema(schema.namespace))}.{_ident(schema.name)}"

    def exists(self) -> bool:
        """False when the store certainly holds no table (no DuckDB file yet)."""
        return True

    @abc.abstractmethod
    def session(self, *, read_only: bool = False) -> contextlib.AbstractContextManager[_Session]:
        ...


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
