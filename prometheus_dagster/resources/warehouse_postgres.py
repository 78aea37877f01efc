"""The PostgreSQL backend: writers take a transaction-scoped advisory lock per table, DDL runs
under a global advisory lock, and rows go in through COPY (or a paged INSERT ... ON CONFLICT DO
NOTHING when only missing keys are inserted)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from prometheus_dagster.core.errors import WarehouseError
from prometheus_dagster.core.schemas import TableSchema
from prometheus_dagster.resources.warehouse_backend import _Backend, _mask_password, _Session
from prometheus_dagster.resources.warehouse_conditions import _ident
from prometheus_dagster.resources.warehouse_values import _copy_text, _py_values, storage_frame

_PG_DDL_LOCK = (80_417, 0)  # advisory lock (class, object) serialising DDL
_PG_TABLE_LOCK_CLASS = 80_418  # advisory lock class of per-table write locks
_PG_PAGE_SIZE = 2_000


class _PostgresSession(_Session):
    param_marker = "%s"
    kind = "postgres"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, list(params) if params else None)

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, list(params) if params else None)
            return cur.fetchall()

    def fetch_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql, list(params) if params else None)
            names = [d[0] for d in cur.description or []]
            return pd.DataFrame.from_records(cur.fetchall(), columns=names)

    def begin(self) -> None:
        """psycopg2 opens a transaction with the first statement."""

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def lock_ddl(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(_PG_DDL_LOCK))

    def lock_table(self, table: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                     [_PG_TABLE_LOCK_CLASS, table])

    def insert_frame(self, table: str, schema: TableSchema, frame: pd.DataFrame, *,
                     ignore_conflicts: bool = False) -> int:
        if frame.empty:
            return 0
        from psycopg2.extras import execute_values

        frame = storage_frame(schema, frame)
        columns = [_py_values(c.dtype, frame[c.name]) for c in schema.columns]
        cols = ", ".join(_ident(c) for c in schema.column_names)
        with self.conn.cursor() as cur:
            if ignore_conflicts:
                rows = list(zip(*columns, strict=True))
                sql = f"INSERT INTO {table} ({cols}) VALUES %s ON CONFLICT DO NOTHING RETURNING 1"
                return len(execute_values(cur, sql, rows, page_size=_PG_PAGE_SIZE, fetch=True))
            fields = [_copy_text(c.dtype, v) for c, v in zip(schema.columns, columns, strict=True)]
            text = "".join("\t".join(row) + "\n" for row in zip(*fields, strict=True))
            cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN", io.StringIO(text))
        return len(frame)


class _PostgresBackend(_Backend):
    kind = "postgres"
    default_schema = "public"

    def __init__(self, dsn: str, schema_prefix: str | None, lock_timeout: float) -> None:
        super().__init__(schema_prefix, lock_timeout)
        self.dsn = dsn

    @contextlib.contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[_Session]:
        import psycopg2

        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            raise WarehouseError(
                f"cannot connect to the PostgreSQL warehouse {_mask_password(self.dsn)}: "
                f"{str(exc).strip()}"
            ) from exc
        try:
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", [f"{int(self.lock_timeout * 1000)}ms"])
                if read_only:
                    cur.execute("SET search_path TO " + _ident(self.sql_schema("main")))
            conn.commit()
            if read_only:
                conn.set_session(readonly=True)
            yield _PostgresSession(conn)
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
            conn.close()
