"""The warehouse: every table declared in ``core.schemas``, stored in DuckDB (one file, the
default) or PostgreSQL (shared deployments), behind one small API.

Guarantees, on both backends:

* Every write is validated against the table's :class:`~prometheus_dagster.core.schemas.TableSchema`
  before the database is touched (:class:`DataSchemaError`).
* A partition write (``replace_partition`` / ``write_partitions`` / ``replace_all``) deletes the
  rows it replaces and inserts the new ones in ONE transaction: on any failure the transaction is
  rolled back, the previous rows are left exactly as they were and :class:`WarehouseError` is
  raised.
* Concurrent writers never fail on a lock and never lose a write. DuckDB lets one process at a
  time open its file, so every DuckDB operation (reads included) holds a cross-process file lock
  (``<file>.lock``) for the whole short-lived connect/work/close cycle. PostgreSQL writers take a
  transaction-scoped advisory lock per table, and DDL runs under a global advisory lock.
* Researchers query through :func:`sql` (``prometheus_dagster.sql``, ``cli sql``): read-only,
  one short-lived connection per query under the same lock, so a query never makes a pipeline
  write fail. A program that opens the DuckDB file itself (a ``duckdb`` shell) is waited for up
  to 60 s, then named by PID and command line in the error. Errors caused by permissions, a
  read-only filesystem or a full disk say so (``warehouse_errors``); a write that fails on a full
  disk leaves no empty ``.wal`` file behind.
* Tables are created on first write from their schema; a column the schema declares but the
  table lacks is added (nullable). Nothing is ever dropped.

Table names may be qualified (``"truth.regime_path"``): a namespace other than ``main`` is a SQL
schema of that name. In PostgreSQL the ``main`` namespace is the ``public`` schema. A URL query
``?schema=NAME`` moves every namespace under a prefix (``main`` -> ``NAME``, ``truth`` ->
``NAME_truth``), which isolates test runs in throwaway schemas.

Module map (this facade; its parts next to it): ``warehouse_url`` (URL -> backend),
``warehouse_backend`` (the session and backend interfaces), ``warehouse_duckdb`` and
``warehouse_postgres`` (each backend with its locking), ``warehouse_ddl`` (create and extend
tables), ``warehouse_conditions`` (``where`` -> SQL and row checks), ``warehouse_values``
(pandas <-> database values), ``warehouse_errors`` (why a file could not be used).
``Between``/``between`` live in ``core.query`` so that engines need not import this package.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError, PrometheusError, WarehouseError
from prometheus_dagster.core.query import Between, between
from prometheus_dagster.core.schemas import TableSchema, empty_frame, get_schema, validate_frame
from prometheus_dagster.resources.warehouse_backend import (
    DEFAULT_LOCK_TIMEOUT_S as DEFAULT_LOCK_TIMEOUT_S,
)
from prometheus_dagster.resources.warehouse_backend import LOCK_TIMEOUT_ENV as LOCK_TIMEOUT_ENV
from prometheus_dagster.resources.warehouse_backend import _Backend, _mask_password
from prometheus_dagster.resources.warehouse_conditions import (
    _check_rows,
    _Cond,
    _conditions,
    _describe,
    _ident,
    _market_filter,
    _norm_value,
    _where_sql,
)
from prometheus_dagster.resources.warehouse_ddl import (
    ReadyTables,
    create_or_extend,
    table_columns,
)
from prometheus_dagster.resources.warehouse_duckdb import _DuckDBBackend
from prometheus_dagster.resources.warehouse_duckdb import _DuckDBSession as _DuckDBSession
from prometheus_dagster.resources.warehouse_errors import cause_hint
from prometheus_dagster.resources.warehouse_postgres import _PostgresSession as _PostgresSession
from prometheus_dagster.resources.warehouse_url import backend_for_url
from prometheus_dagster.resources.warehouse_values import _typed

__all__ = ["Between", "Warehouse", "between", "sql"]
# Names imported "as" themselves above are re-exported: they were defined here before the split
# and callers (tests patch the sessions) still take them from this module.

URL_ENV = "PROMETHEUS_WAREHOUSE_URL"
_IN_LIST_LIMIT = 1_000  # longer date lists are read as a range, then filtered


class Warehouse:
    """Tables of ``core.schemas`` in DuckDB or PostgreSQL; see the module docstring.

    Methods take a table name (``"prices_daily"``, ``"truth.regime_path"``) or a
    :class:`TableSchema`. ``where`` mappings filter rows: a scalar means equality, a list, tuple
    or set means IN, :func:`between` means an inclusive range, ``None`` means IS NULL.
    """

    def __init__(self, url: str, *, lock_timeout: float | None = None) -> None:
        """Parse ``url`` (see :meth:`from_url`); nothing is opened until the first operation.
        ``lock_timeout`` (seconds) overrides ``?lock_timeout=`` and
        ``$PROMETHEUS_WAREHOUSE_LOCK_TIMEOUT`` (default 600)."""
        self.url = url
        self._backend: _Backend = backend_for_url(url, lock_timeout)
        self.lock_timeout = self._backend.lock_timeout
        self.schema_prefix = self._backend.schema_prefix
        self.backend: Literal["duckdb", "postgres"] = (
            "duckdb" if isinstance(self._backend, _DuckDBBackend) else "postgres")
        self._ready: ReadyTables = set()

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, *, lock_timeout: float | None = None) -> Warehouse:
        """A warehouse at ``duckdb:///abs/path.duckdb`` or ``postgresql://user@host:port/db``
        (optional query: ``?schema=prefix&lock_timeout=seconds``)."""
        return cls(url, lock_timeout=lock_timeout)

    @classmethod
    def default(cls) -> Warehouse:
        """``$PROMETHEUS_WAREHOUSE_URL`` when set, else the DuckDB file under PROMETHEUS_HOME."""
        url = os.environ.get(URL_ENV, "").strip()
        if url:
            return cls.from_url(url)
        from prometheus_dagster.core.paths import warehouse_path

        return cls.from_url(f"duckdb://{warehouse_path()}")

    def __repr__(self) -> str:
        return f"Warehouse({_mask_password(self.url)!r})"

    @property
    def path(self) -> Path | None:
        """The DuckDB file (None for PostgreSQL)."""
        return self._backend.path if isinstance(self._backend, _DuckDBBackend) else None

    # -- names -------------------------------------------------------------------------------------
    @staticmethod
    def _schema(table: str | TableSchema) -> TableSchema:
        return table if isinstance(table, TableSchema) else get_schema(table)

    def sql_name(self, table: str | TableSchema) -> str:
        """The quoted, schema-qualified SQL name of a table on this backend."""
        return self._backend.sql_name(self._schema(table))

    # -- DDL ---------------------------------------------------------------------------------------
    def ensure_table(self, table: str | TableSchema) -> None:
        """Create the table (and its SQL schema) if missing; add declared columns it lacks."""
        schema = self._schema(table)
        with self._guard(f"ensure table {schema.qualified_name}"), \
                self._backend.session() as s:
            create_or_extend(s, self._backend, schema, self._ready)

    def table_exists(self, table: str | TableSchema) -> bool:
        """Whether the table exists in the warehouse."""
        schema = self._schema(table)
        if not self._backend.exists():
            return False
        with self._guard(f"look up table {schema.qualified_name}"), \
                self._backend.session() as s:
            return table_columns(s, self._backend, schema) is not None

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Database errors (outside write transactions) -> WarehouseError."""
        try:
            yield
        except PrometheusError:
            raise
        except Exception as exc:
            raise WarehouseError(
                f"{self.backend} warehouse: cannot {what}: {exc}{self._hint(exc)}"
            ) from exc

    def _hint(self, exc: BaseException) -> str:
        """What to do about a permission, read-only filesystem or full disk cause (DuckDB)."""
        path = self.path
        hint = cause_hint(path, exc) if path is not None else None
        return f". {hint}" if hint else ""

    # -- writes ------------------------------------------------------------------------------------
    def _write(self, schema: TableSchema, frame: pd.DataFrame, *,
               conds: list[_Cond] | None, mode: Literal["replace", "append", "missing"]) -> int:
        """Run one write transaction. ``conds`` None with mode 'replace' replaces every row."""
        table = self.sql_name(schema)
        with self._guard(f"write table {schema.qualified_name}"), \
                self._backend.session() as s:
            create_or_extend(s, self._backend, schema, self._ready)
            try:
                s.begin()
                s.lock_table(table)
                if mode == "replace":
                    clause, params = _where_sql(conds or [], s.param_marker)
                    s.delete(f"DELETE FROM {table}{clause}", params)
                written = s.insert_frame(table, schema, frame,
                                         ignore_conflicts=(mode == "missing"))
                s.commit()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    s.rollback()
                if not isinstance(exc, Exception):
                    raise
                slice_ = " AND ".join(_describe(c) for c in conds or []) or "all rows"
                raise WarehouseError(
                    f"{self.backend} warehouse: writing {len(frame)} row(s) to "
                    f"{schema.qualified_name} ({mode}, {slice_}) failed and was rolled back; "
                    f"the previous rows are unchanged: {exc}{self._hint(exc)}"
                ) from exc
        return written

    def replace_partition(self, table: str | TableSchema, df: pd.DataFrame, *,
                          where: Mapping[str, Any]) -> int:
        """Atomically replace the rows matching ``where`` with ``df`` (validated; every row of
        ``df`` must match ``where``). Returns the number of rows written."""
        schema = self._schema(table)
        if not where:
            raise DataSchemaError(
                f"table {schema.qualified_name}: replace_partition needs a non-empty `where`; "
                "use replace_all to replace the whole table"
            )
        frame = validate_frame(schema, df)
        conds = _conditions(schema, where)
        _check_rows(schema, frame, conds)
        return self._write(schema, frame, conds=conds, mode="replace")

    def write_partitions(self, table: str | TableSchema, df: pd.DataFrame, *,
                         market_id: str | None = None,
                         dates: Iterable[Any] | None = None,
                         extra: Mapping[str, Any] | None = None) -> int:
        """Replace the partitions ``dates`` (of ``market_id``, and of the ``extra`` column values
        such as ``{"engine_name": ...}``) with ``df``, atomically. ``dates`` defaults to the dates
        present in ``df``. Returns the number of rows written."""
        schema = self._schema(table)
        if schema.partition_column is None:
            raise DataSchemaError(
                f"table {schema.qualified_name} has no partition column; use replace_all"
            )
        frame = validate_frame(schema, df)
        if dates is None:
            dates = frame[schema.partition_column].dropna().unique().tolist()
            if not dates:
                return 0
        where: dict[str, Any] = {schema.partition_column: list(dates)}
        where.update(_market_filter(schema, market_id, "write partitions of"), **(extra or {}))
        conds = _conditions(schema, where)
        _check_rows(schema, frame, conds)
        return self._write(schema, frame, conds=conds, mode="replace")

    def replace_all(self, table: str | TableSchema, df: pd.DataFrame, *,
                    where: Mapping[str, Any] | None = None) -> int:
        """Atomically replace the whole table (or the rows matching ``where``, e.g.
        ``{"market_id": "US_EQ"}``) with ``df``. Returns the number of rows written."""
        schema = self._schema(table)
        frame = validate_frame(schema, df)
        conds = _conditions(schema, where)
        _check_rows(schema, frame, conds)
        return self._write(schema, frame, conds=conds, mode="replace")

    def append(self, table: str | TableSchema, df: pd.DataFrame) -> int:
        """Insert ``df`` (an append-only log); a key already present fails the whole append."""
        schema = self._schema(table)
        frame = validate_frame(schema, df)
        if frame.empty:
            return 0
        return self._write(schema, frame, conds=None, mode="append")

    def insert_missing(self, table: str | TableSchema, df: pd.DataFrame) -> int:
        """Insert the rows of ``df`` whose primary key is not present yet; returns how many."""
        schema = self._schema(table)
        if not schema.primary_key or not schema.key_index:
            raise DataSchemaError(
                f"table {schema.qualified_name} has no indexed primary key; insert_missing "
                "needs one"
            )
        frame = validate_frame(schema, df)
        if frame.empty:
            return 0
        return self._write(schema, frame, conds=None, mode="missing")

    def clear_values(self, table: str | TableSchema, columns: Sequence[str], *,
                     where: Mapping[str, Any]) -> int:
        """Set the nullable ``columns`` to empty in the rows matching ``where`` (one
        transaction); returns how many rows held a value. Keeps the rows, drops bulky detail
        (scenario step returns outside their stored window)."""
        schema = self._schema(table)
        for name in columns:
            if name not in schema.column_names or not schema.column(name).nullable:
                raise DataSchemaError(f"table {schema.qualified_name}: {name!r} is not a "
                                      "nullable column; only those can be cleared")
        if not where or not columns:
            raise DataSchemaError(f"table {schema.qualified_name}: clear_values needs columns "
                                  "and a non-empty `where`")
        conds = _conditions(schema, where)
        if not self.table_exists(schema):
            return 0
        sql_table = self.sql_name(schema)
        with self._guard(f"clear {', '.join(columns)} of {schema.qualified_name}"), \
                self._backend.session() as s:
            clause, params = _where_sql(conds, s.param_marker)
            held = " OR ".join(f"{_ident(c)} IS NOT NULL" for c in columns)
            clause = f"{clause} AND ({held})"
            try:
                s.begin()
                s.lock_table(sql_table)
                n = int(s.fetchall(f"SELECT COUNT(*) FROM {sql_table}{clause}", params)[0][0])
                if n:
                    sets = ", ".join(f"{_ident(c)} = NULL" for c in columns)
                    s.delete(f"UPDATE {sql_table} SET {sets}{clause}", params)
                s.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    s.rollback()
                raise
        return n

    def compact(self) -> bool:
        """Rewrite the DuckDB file without its free blocks (``COPY FROM DATABASE`` into a fresh
        file); False when there is nothing to do (no file yet, or PostgreSQL, whose autovacuum
        reuses space). Large rewrites compact a sparse file on their own."""
        backend = self._backend
        if not isinstance(backend, _DuckDBBackend) or not backend.exists():
            return False
        with self._guard("compact"), backend.locked():
            return backend.compact(min_free_share=0.0)

    # -- reads -------------------------------------------------------------------------------------
    def read(self, table: str | TableSchema, *, where: Mapping[str, Any] | None = None,
             columns: Sequence[str] | None = None,
             order_by: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows matching ``where`` with the dtypes ``validate_frame`` produces. ``order_by``
        defaults to the primary key. A missing table reads as an empty frame."""
        schema = self._schema(table)
        cols = list(columns) if columns is not None else schema.column_names
        order = list(order_by) if order_by is not None else list(schema.primary_key)
        for name in (*cols, *order):
            if name not in schema.column_names:
                raise DataSchemaError(
                    f"table {schema.qualified_name}: {name!r} is not a column "
                    f"(columns: {', '.join(schema.column_names)})"
                )
        conds = _conditions(schema, where)
        if not self._backend.exists():
            return empty_frame(schema)[cols]
        with self._guard(f"read table {schema.qualified_name}"), \
                self._backend.session() as s:
            existing = table_columns(s, self._backend, schema)
            if existing is None:
                return empty_frame(schema)[cols]
            lacking = [c.column for c in conds if c.column not in existing]
            lacking += [c for c in order if c not in existing]
            if lacking:
                raise WarehouseError(
                    f"table {schema.qualified_name} in the warehouse lacks column(s) "
                    f"{', '.join(dict.fromkeys(lacking))}; write to it once (or call "
                    "ensure_table) to add them"
                )
            select = ", ".join(
                _ident(c) if c in existing else f"NULL AS {_ident(c)}" for c in cols
            ) or "1"
            clause, params = _where_sql(conds, s.param_marker)
            order_sql = (" ORDER BY " + ", ".join(_ident(c) for c in order)) if order else ""
            raw = s.fetch_frame(
                f"SELECT {select} FROM {self.sql_name(schema)}{clause}{order_sql}", params
            )
            s.commit()
        return _typed(schema, raw, cols)

    def read_partitions(self, table: str | TableSchema, *, market_id: str | None = None,
                        start: Any = None, end: Any = None,
                        dates: Iterable[Any] | None = None,
                        extra: Mapping[str, Any] | None = None,
                        columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of the partitions ``dates`` (or of the inclusive range ``start``..``end``, either
        end open when None) of ``market_id``, ordered by partition then primary key."""
        schema = self._schema(table)
        part = schema.partition_column
        if part is None:
            raise DataSchemaError(f"table {schema.qualified_name} has no partition column")
        where: dict[str, Any] = {}
        post_filter: list[Any] | None = None
        if dates is not None:
            dtype = schema.column(part).dtype
            wanted = [_norm_value(schema, part, dtype, d) for d in dates]
            lo, hi = _conditions(schema, {part: between(start, end)})[0].values
            wanted = [d for d in wanted if (lo is None or d >= lo) and (hi is None or d <= hi)]
            if len(wanted) > _IN_LIST_LIMIT:
                where[part] = between(min(wanted), max(wanted))
                post_filter = wanted
            else:
                where[part] = wanted
        elif start is not None or end is not None:
            where[part] = between(start, end)
        where.update(_market_filter(schema, market_id, "read"), **(extra or {}))
        order = [part, *[k for k in schema.primary_key if k != part]]
        out = self.read(schema, where=where, columns=columns, order_by=order)
        if post_filter is not None and part in out.columns:
            out = out[out[part].isin(post_filter)].reset_index(drop=True)
        return out

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run read-only SQL (``?`` parameter markers on DuckDB, ``%s`` on PostgreSQL). Unqualified
        names resolve to the ``main`` namespace. Returns the result as the driver types it."""
        if not self._backend.exists():
            raise WarehouseError(f"the DuckDB warehouse {self.path} does not exist yet")
        with self._guard("run query"), self._backend.session(read_only=True) as s:
            out = s.fetch_frame(sql, params)
            s.commit()
        return out


def sql(query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """Run read-only SQL on the default warehouse (``$PROMETHEUS_WAREHOUSE_URL`` or the DuckDB
    file under PROMETHEUS_HOME) and return a DataFrame: the way to query while the pipeline runs.
    Each call opens and closes its own connection and takes turns with the pipeline's writes
    (the DuckDB lock file), so it never makes a pipeline step fail and waits at most for the
    write in progress. Unqualified table names resolve to the ``main`` namespace."""
    return Warehouse.default().query(query, params)
