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
"""

from __future__ import annotations

import abc
import contextlib
import io
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError, PrometheusError, WarehouseError
from prometheus_dagster.core.schemas import (
    SQL_TYPES,
    TableSchema,
    empty_frame,
    get_schema,
    validate_frame,
)
from prometheus_dagster.resources.warehouse_errors import (
    cause_hint,
    held_open_message,
    is_lock_conflict,
    lock_file_holders,
)

__all__ = ["Between", "Warehouse", "between", "sql"]

DEFAULT_LOCK_TIMEOUT_S = 600.0
"""How long an operation waits for the DuckDB file lock (or a PostgreSQL lock) before failing."""
LOCK_TIMEOUT_ENV = "PROMETHEUS_WAREHOUSE_LOCK_TIMEOUT"
URL_ENV = "PROMETHEUS_WAREHOUSE_URL"

_FOREIGN_HOLDER_WAIT_S = 60.0
"""How long (at most; never longer than the lock timeout) an operation waits for a program
outside the warehouse (a ``duckdb`` shell, a notebook's own connection) to close the file."""
_PG_DDL_LOCK = (80_417, 0)  # advisory lock (class, object) serialising DDL
_PG_TABLE_LOCK_CLASS = 80_418  # advisory lock class of per-table write locks
_PG_PAGE_SIZE = 2_000
_IN_LIST_LIMIT = 1_000  # longer date lists are read as a range, then filtered


# --- conditions ---------------------------------------------------------------------------------
class Between(NamedTuple):
    """Inclusive range condition for a ``where`` mapping; ``None`` leaves that end open."""

    lo: Any
    hi: Any


def between(lo: Any, hi: Any) -> Between:
    """``where={"date": between("2024-01-01", "2024-01-31")}``: BETWEEN, both ends inclusive.
    Pass ``None`` for an open end."""
    return Between(lo, hi)


@dataclass(frozen=True)
class _Cond:
    column: str
    dtype: str
    op: Literal["eq", "null", "in", "between"]
    values: tuple[Any, ...]  # normalised pandas-comparable values (Timestamps for dates)


def _norm_value(schema: TableSchema, column: str, dtype: str, value: Any) -> Any:
    where = f"table {schema.qualified_name}, column {column!r}"
    try:
        if dtype == "date":
            ts = pd.Timestamp(value)
            if ts.tzinfo is not None:
                ts = ts.tz_convert("UTC").tz_localize(None)
            return ts.normalize()
        if dtype == "timestamp":
            ts = pd.Timestamp(value)
            return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
        if dtype == "int":
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError("not an integer")
            return int(value)
        if dtype == "float":
            return float(value)
        if dtype == "bool":
            if not isinstance(value, bool | np.bool_):
                raise ValueError("not a boolean")
            return bool(value)
        if dtype in ("str", "json"):
            return str(value)
    except (TypeError, ValueError) as exc:
        raise DataSchemaError(f"{where}: filter value {value!r} is not a {dtype}: {exc}") from exc
    raise DataSchemaError(f"{where}: cannot filter on a {dtype} column")


def _conditions(schema: TableSchema, where: Mapping[str, Any] | None) -> list[_Cond]:
    conds: list[_Cond] = []
    for column, value in (where or {}).items():
        if column not in schema.column_names:
            raise DataSchemaError(
                f"table {schema.qualified_name}: filter column {column!r} is not a column "
                f"(columns: {', '.join(schema.column_names)})"
            )
        dtype = schema.column(column).dtype

        def norm(v: Any, column: str = column, dtype: str = dtype) -> Any:
            return _norm_value(schema, column, dtype, v)

        if isinstance(value, Between):
            lo = None if value.lo is None else norm(value.lo)
            hi = None if value.hi is None else norm(value.hi)
            conds.append(_Cond(column, dtype, "between", (lo, hi)))
        elif isinstance(value, list | tuple | set | frozenset | pd.Index | pd.Series | np.ndarray):
            items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
            normed = list(dict.fromkeys(norm(v) for v in items if v is not None))
            conds.append(_Cond(column, dtype, "in", tuple(normed)))
        elif value is None:
            conds.append(_Cond(column, dtype, "null", ()))
        else:
            conds.append(_Cond(column, dtype, "eq", (norm(value),)))
    return conds


def _cond_mask(cond: _Cond, s: pd.Series) -> pd.Series:
    if cond.op == "null":
        return s.isna()
    if cond.op == "eq":
        return (s == cond.values[0]).fillna(False).astype(bool)
    if cond.op == "in":
        return s.isin(list(cond.values)).fillna(False).astype(bool)
    lo, hi = cond.values
    mask = s.notna()
    if lo is not None:
        mask &= (s >= lo).fillna(False).astype(bool)
    if hi is not None:
        mask &= (s <= hi).fillna(False).astype(bool)
    return mask


def _describe(cond: _Cond) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, pd.Timestamp):
            return v.strftime("%Y-%m-%d") if cond.dtype == "date" else v.isoformat()
        return repr(v)

    if cond.op == "null":
        return f"{cond.column} IS NULL"
    if cond.op == "eq":
        return f"{cond.column} = {fmt(cond.values[0])}"
    if cond.op == "in":
        shown = ", ".join(fmt(v) for v in cond.values[:10])
        more = f", ... ({len(cond.values)} values)" if len(cond.values) > 10 else ""
        return f"{cond.column} IN [{shown}{more}]"
    lo, hi = cond.values
    return f"{cond.column} BETWEEN {fmt(lo) if lo is not None else '-inf'} AND " \
           f"{fmt(hi) if hi is not None else '+inf'}"


def _check_rows(schema: TableSchema, frame: pd.DataFrame, conds: list[_Cond]) -> None:
    """Every row written must belong to the slice it replaces (else DataSchemaError)."""
    for cond in conds:
        mask = _cond_mask(cond, frame[cond.column])
        if not mask.all():
            pos = int(np.flatnonzero(~mask.to_numpy())[0])
            value = frame[cond.column].iloc[pos]
            if isinstance(value, pd.Timestamp) and cond.dtype == "date":
                value = value.strftime("%Y-%m-%d")
            raise DataSchemaError(
                f"table {schema.qualified_name}: row {pos} has {cond.column}={value!r}, outside "
                f"the slice being replaced ({_describe(cond)}); "
                f"{int((~mask).sum())} row(s) do not belong to it"
            )


def _param(dtype: str, value: Any) -> Any:
    """A normalised condition value as a DB-API parameter."""
    if isinstance(value, pd.Timestamp):
        return value.date() if dtype == "date" else value.to_pydatetime()
    return value


def _where_sql(conds: list[_Cond], ph: str) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for cond in conds:
        col = _ident(cond.column)
        if cond.op == "null":
            parts.append(f"{col} IS NULL")
        elif cond.op == "eq":
            parts.append(f"{col} = {ph}")
            params.append(_param(cond.dtype, cond.values[0]))
        elif cond.op == "in":
            if not cond.values:
                parts.append("FALSE")
            else:
                parts.append(f"{col} IN ({', '.join([ph] * len(cond.values))})")
                params.extend(_param(cond.dtype, v) for v in cond.values)
        else:
            lo, hi = cond.values
            if lo is not None:
                parts.append(f"{col} >= {ph}")
                params.append(_param(cond.dtype, lo))
            if hi is not None:
                parts.append(f"{col} <= {ph}")
                params.append(_param(cond.dtype, hi))
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


# --- frames <-> database values -----------------------------------------------------------------
def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _to_bytes(v: Any) -> bytes | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return bytes(v)


def _typed(schema: TableSchema, df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Database output -> the dtypes ``validate_frame`` produces (dates as datetime64[ns],
    ints as Int64, bools as boolean, vectors as bytes, missing text as None)."""
    out: dict[str, pd.Series] = {}
    n = len(df)
    for name in columns:
        dtype = schema.column(name).dtype
        s = df[name] if name in df.columns else pd.Series([None] * n, dtype=object)
        s = s.reset_index(drop=True)
        if dtype in ("str", "json"):
            s = s.astype(object).where(s.notna(), None)
        elif dtype in ("date", "timestamp"):
            s = pd.to_datetime(s).astype("datetime64[ns]")
            if dtype == "date":
                s = s.dt.normalize()
        elif dtype == "float":
            if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s):
                s = s.astype("float64")
            else:
                s = pd.to_numeric(s.astype(object).where(s.notna(), np.nan)).astype("float64")
        elif dtype == "int":
            if pd.api.types.is_integer_dtype(s.dtype):
                s = s.astype("Int64")
            else:
                s = pd.Series(
                    pd.array([None if pd.isna(v) else int(v) for v in s.tolist()], dtype="Int64")
                )
        elif dtype == "bool":
            s = s.astype(object).where(s.notna(), None).astype("boolean")
        elif dtype == "vector":
            s = pd.Series([_to_bytes(v) for v in s.tolist()], dtype=object)
        out[name] = s
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def _py_values(dtype: str, s: pd.Series) -> list[Any]:
    """A validated column as plain Python values for psycopg2 (NaN/NaT/NA -> None)."""
    if dtype == "date":
        return [None if pd.isna(v) else v for v in s.dt.date.tolist()]
    if dtype == "timestamp":
        return [None if pd.isna(v) else v.to_pydatetime() for v in s.astype(object).tolist()]
    if dtype == "float":
        return [None if v != v else v for v in s.tolist()]
    return [None if v is None or v is pd.NA else v for v in s.tolist()]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(dtype: str, values: list[Any]) -> list[str]:
    """Plain Python values as fields of PostgreSQL's COPY text format (NULL is ``\\N``)."""
    if dtype in ("str", "json"):
        return ["\\N" if v is None else v.translate(_COPY_ESCAPES) for v in values]
    if dtype == "vector":
        return ["\\N" if v is None else "\\\\x" + v.hex() for v in values]
    if dtype == "bool":
        return ["\\N" if v is None else ("t" if v else "f") for v in values]
    if dtype == "float":
        return ["\\N" if v is None else repr(v) for v in values]
    return ["\\N" if v is None else str(v) for v in values]


def _arrow_table(schema: TableSchema, frame: pd.DataFrame) -> Any:
    import pyarrow as pa

    arrays = []
    for col in schema.columns:
        s = frame[col.name]
        if col.dtype in ("str", "json"):
            arr = pa.array(s, type=pa.string(), from_pandas=True)
        elif col.dtype == "date":
            arr = pa.array(s, type=pa.timestamp("ns"), from_pandas=True).cast(pa.date32())
        elif col.dtype == "timestamp":
            arr = pa.array(s, type=pa.timestamp("ns"), from_pandas=True)
        elif col.dtype == "float":
            arr = pa.array(s, type=pa.float64(), from_pandas=True)
        elif col.dtype == "int":
            arr = pa.array(s, type=pa.int64(), from_pandas=True)
        elif col.dtype == "bool":
            arr = pa.array(s, type=pa.bool_(), from_pandas=True)
        else:
            arr = pa.array(s, type=pa.binary(), from_pandas=True)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=schema.column_names)


def _market_filter(schema: TableSchema, market_id: str | None, action: str) -> dict[str, Any]:
    """``{market_column: market_id}`` (empty without a market); an error if the table has no
    market column."""
    if market_id is None:
        return {}
    if schema.market_column is None:
        raise DataSchemaError(
            f"table {schema.qualified_name} has no market column; cannot {action} market "
            f"{market_id!r}"
        )
    return {schema.market_column: market_id}


# --- backends ------------------------------------------------------------------------------------
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


class _DuckDBSession(_Session):
    param_marker = "?"
    kind = "duckdb"

    def __init__(self, con: Any) -> None:
        self.con = con
        self.in_tx = False

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.con.execute(sql, list(params or []))

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, list(params or [])).fetchall()

    def fetch_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, list(params or [])).df()

    def table_columns(self, sql_schema: str, name: str) -> list[str] | None:
        rows = self.fetchall(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
            "AND database_name = current_database() ORDER BY column_index",
            [sql_schema, name],
        )
        return [r[0] for r in rows] or None

    def begin(self) -> None:
        self.con.begin()
        self.in_tx = True

    def commit(self) -> None:
        if self.in_tx:
            self.con.commit()
            self.in_tx = False

    def rollback(self) -> None:
        if self.in_tx:
            self.in_tx = False
            self.con.rollback()

    def insert_frame(self, table: str, schema: TableSchema, frame: pd.DataFrame, *,
                     ignore_conflicts: bool = False) -> int:
        if frame.empty:
            return 0
        cols = ", ".join(_ident(c) for c in schema.column_names)
        self.con.register("_prometheus_frame", _arrow_table(schema, frame))
        conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
        try:
            row = self.con.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _prometheus_frame{conflict}"
            ).fetchone()
        except BaseException:
            # After a failed statement the transaction is aborted and unregister fails too;
            # its error must not hide the real one (a full disk, a broken constraint).
            with contextlib.suppress(Exception):
                self.con.unregister("_prometheus_frame")
            raise
        self.con.unregister("_prometheus_frame")
        return int(row[0]) if row else len(frame)


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

    def exists(self) -> bool:
        """False when the store certainly holds no table (no DuckDB file yet)."""
        return True

    @abc.abstractmethod
    def session(self, *, read_only: bool = False) -> contextlib.AbstractContextManager[_Session]:
        ...


class _DuckDBBackend(_Backend):
    kind = "duckdb"
    default_schema = "main"

    def __init__(self, path: Path, schema_prefix: str | None, lock_timeout: float) -> None:
        super().__init__(schema_prefix, lock_timeout)
        self.path = path
        self.lock_path = Path(str(path) + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def wal_path(self) -> Path:
        return Path(str(self.path) + ".wal")

    def _connect(self, read_only: bool) -> Any:
        """Open the file; a program outside the warehouse that holds it (it does not take the
        lock file) is waited for, briefly, then named in the error."""
        import duckdb

        started = time.monotonic()
        budget = min(self.lock_timeout, _FOREIGN_HOLDER_WAIT_S)
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                waited = time.monotonic() - started
                if is_lock_conflict(exc):
                    if waited + delay <= budget:
                        time.sleep(delay)
                        delay = min(delay * 2, 2.0)
                        continue
                    raise WarehouseError(held_open_message(self.path, exc, waited)) from exc
                hint = cause_hint(self.path, exc)
                raise WarehouseError(
                    f"cannot open the DuckDB warehouse {self.path}: {exc}"
                    + (f". {hint}" if hint else "")
                ) from exc

    def _drop_empty_wal(self) -> None:
        """A write that failed at commit (a full disk) can leave an empty ``.wal`` behind.
        Opening and closing the database lets DuckDB itself remove it; this runs under the lock
        file, and DuckDB's own file lock keeps it away from a file another program has open."""
        try:
            if self.wal_path.stat().st_size:
                return
        except OSError:
            return
        import duckdb

        with contextlib.suppress(duckdb.Error, OSError):
            duckdb.connect(str(self.path)).close()

    @contextlib.contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[_Session]:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.lock_path), timeout=self.lock_timeout, poll_interval=0.01)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except Timeout as exc:
            holders = lock_file_holders(self.lock_path)
            who = ("; holding it: " + ", ".join(str(h) for h in holders)) if holders else ""
            raise WarehouseError(
                f"timed out after {self.lock_timeout:g}s waiting for the warehouse lock "
                f"{self.lock_path}: another process kept the DuckDB warehouse busy{who}. Raise "
                f"the timeout with {LOCK_TIMEOUT_ENV} or ?lock_timeout= in the warehouse URL."
            ) from exc
        except OSError as exc:
            hint = cause_hint(self.lock_path, exc)
            raise WarehouseError(
                f"cannot use the DuckDB warehouse {self.path}: {exc}"
                + (f". {hint}" if hint else "")
            ) from exc
        try:
            con = self._connect(read_only)
            try:
                if self.schema_prefix and read_only:
                    con.execute(f"SET search_path = '{self.sql_schema('main')}'")
                yield _DuckDBSession(con)
            finally:
                con.close()
                if not read_only:
                    self._drop_empty_wal()
        finally:
            lock.release()


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


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# --- the API -------------------------------------------------------------------------------------
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
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        schema_prefix = query.pop("schema", None) or None
        timeout_text = query.pop("lock_timeout", None) or os.environ.get(LOCK_TIMEOUT_ENV)
        if lock_timeout is None:
            try:
                lock_timeout = float(timeout_text) if timeout_text else DEFAULT_LOCK_TIMEOUT_S
            except ValueError:
                raise WarehouseError(
                    f"warehouse URL {_mask_password(url)}: lock_timeout {timeout_text!r} is not "
                    "a number of seconds"
                ) from None
        if schema_prefix is not None and not schema_prefix.replace("_", "").isalnum():
            raise WarehouseError(
                f"warehouse URL {_mask_password(url)}: schema {schema_prefix!r} must be letters, "
                "digits and underscores"
            )
        self.lock_timeout = float(lock_timeout)
        self.schema_prefix = schema_prefix
        scheme = parts.scheme.lower()
        self._backend: _Backend
        if scheme == "duckdb" or (scheme == "" and parts.path.endswith(".duckdb")):
            # duckdb:///abs/file and duckdb:////abs/file both mean /abs/file; duckdb://rel/file
            # (or a bare path) is relative to the working directory.
            raw = url.split("://", 1)[1].split("?", 1)[0] if "://" in url else parts.path
            path = Path("/" + raw.lstrip("/")) if raw.startswith("/") else Path(raw)
            if not str(path) or str(path) == ".":
                raise WarehouseError(f"warehouse URL {url!r} names no DuckDB file")
            self.backend: Literal["duckdb", "postgres"] = "duckdb"
            self._backend = _DuckDBBackend(path.expanduser().resolve(), schema_prefix,
                                           self.lock_timeout)
        elif scheme in ("postgresql", "postgres", "postgresql+psycopg2"):
            dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))
            self.backend = "postgres"
            self._backend = _PostgresBackend(dsn, schema_prefix, self.lock_timeout)
        else:
            raise WarehouseError(
                f"unsupported warehouse URL {_mask_password(url)!r}: use "
                "duckdb:///absolute/path.duckdb or postgresql://user@host:port/database"
            )
        self._ready: set[tuple[str, tuple[str, ...]]] = set()

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
        schema = self._schema(table)
        return f"{_ident(self._backend.sql_schema(schema.namespace))}.{_ident(schema.name)}"

    # -- DDL ---------------------------------------------------------------------------------------
    def _table_columns(self, s: _Session, schema: TableSchema) -> list[str] | None:
        return s.table_columns(self._backend.sql_schema(schema.namespace), schema.name)

    def _create_ddl(self, s: _Session, schema: TableSchema) -> str:
        idx = 0 if s.kind == "duckdb" else 1
        cols = [f"{_ident(c.name)} {SQL_TYPES[c.dtype][idx]}" for c in schema.columns]
        if schema.primary_key:
            key = ", ".join(_ident(k) for k in schema.primary_key)
            # A key column the schema allows to be empty cannot be in a PRIMARY KEY (it implies
            # NOT NULL); such keys are declared UNIQUE instead.
            required = all(not schema.column(k).nullable for k in schema.primary_key)
            cols.append(f"{'PRIMARY KEY' if required else 'UNIQUE'} ({key})")
        return f"CREATE TABLE IF NOT EXISTS {self.sql_name(schema)} ({', '.join(cols)})"

    def _ensure(self, s: _Session, schema: TableSchema) -> None:
        key = (self.sql_name(schema), tuple(schema.column_names))
        if key in self._ready:
            return
        existing = self._table_columns(s, schema)
        if existing is not None and not [c for c in schema.column_names if c not in existing]:
            s.commit()
            self._ready.add(key)
            return
        idx = 0 if s.kind == "duckdb" else 1
        sql_schema = self._backend.sql_schema(schema.namespace)
        try:
            s.begin()
            s.lock_ddl()
            existing = self._table_columns(s, schema)  # again, under the lock
            if existing is None:
                has_schema = s.fetchall(
                    f"SELECT 1 FROM information_schema.schemata WHERE schema_name = "
                    f"{s.param_marker}", [sql_schema])
                if not has_schema:
                    s.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(sql_schema)}")
                s.execute(self._create_ddl(s, schema))
            else:
                for col in schema.columns:
                    if col.name not in existing:
                        s.execute(
                            f"ALTER TABLE {self.sql_name(schema)} ADD COLUMN IF NOT EXISTS "
                            f"{_ident(col.name)} {SQL_TYPES[col.dtype][idx]}"
                        )
            s.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                s.rollback()
            if isinstance(exc, PrometheusError) or not isinstance(exc, Exception):
                raise
            raise WarehouseError(
                f"{self.backend} warehouse: cannot create or update table "
                f"{schema.qualified_name}: {exc}"
            ) from exc
        self._ready.add(key)

    def ensure_table(self, table: str | TableSchema) -> None:
        """Create the table (and its SQL schema) if missing; add declared columns it lacks."""
        schema = self._schema(table)
        with self._guard(f"ensure table {schema.qualified_name}"), \
                self._backend.session() as s:
            self._ensure(s, schema)

    def table_exists(self, table: str | TableSchema) -> bool:
        """Whether the table exists in the warehouse."""
        schema = self._schema(table)
        if not self._backend.exists():
            return False
        with self._guard(f"look up table {schema.qualified_name}"), \
                self._backend.session() as s:
            return self._table_columns(s, schema) is not None

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
            self._ensure(s, schema)
            try:
                s.begin()
                s.lock_table(table)
                if mode == "replace":
                    clause, params = _where_sql(conds or [], s.param_marker)
                    s.execute(f"DELETE FROM {table}{clause}", params)
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
        if not schema.primary_key:
            raise DataSchemaError(
                f"table {schema.qualified_name} has no primary key; insert_missing needs one"
            )
        frame = validate_frame(schema, df)
        if frame.empty:
            return 0
        return self._write(schema, frame, conds=None, mode="missing")

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
            existing = self._table_columns(s, schema)
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
