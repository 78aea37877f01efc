"""The DuckDB backend: one file that one process at a time may open. Every operation (reads
included) holds a cross-process file lock (``<file>.lock``) for its whole connect/work/close
cycle; a program outside the warehouse that holds the file is waited for, then named."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prometheus_dagster.core.errors import WarehouseError
from prometheus_dagster.core.schemas import TableSchema
from prometheus_dagster.resources.warehouse_backend import LOCK_TIMEOUT_ENV, _Backend, _Session
from prometheus_dagster.resources.warehouse_conditions import _ident
from prometheus_dagster.resources.warehouse_errors import (
    cause_hint,
    held_open_message,
    is_lock_conflict,
    lock_file_holders,
)
from prometheus_dagster.resources.warehouse_values import _arrow_table, storage_frame

COMPACT_AFTER_ROWS = 50_000
"""A write session that deleted or cleared at least this many rows is a large rewrite: the
file is then compacted when it has become sparse (:data:`COMPACT_FREE_SHARE`)."""
COMPACT_FREE_SHARE = 0.25
"""Share of the file's blocks left free (DuckDB reuses them, never returns them) above which a
large rewrite copies the database into a fresh file."""

log = logging.getLogger(__name__)

_FOREIGN_HOLDER_WAIT_S = 60.0
"""How long (at most; never longer than the lock timeout) an operation waits for a program
outside the warehouse (a ``duckdb`` shell, a notebook's own connection) to close the file."""


class _DuckDBSession(_Session):
    param_marker = "?"
    kind = "duckdb"

    def __init__(self, con: Any) -> None:
        self.con = con
        self.in_tx = False
        self.rows_freed = 0

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.con.execute(sql, list(params or []))

    def delete(self, sql: str, params: Sequence[Any] | None = None) -> None:
        row = self.con.execute(sql, list(params or [])).fetchone()
        self.rows_freed += int(row[0]) if row else 0

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
        self.con.register("_prometheus_frame", _arrow_table(schema, storage_frame(schema, frame)))
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
            session = _DuckDBSession(con)
            try:
                if self.schema_prefix and read_only:
                    con.execute(f"SET search_path = '{self.sql_schema('main')}'")
                yield session
            finally:
                con.close()
                if not read_only:
                    self._drop_empty_wal()
            if session.rows_freed >= COMPACT_AFTER_ROWS:
                self._compact_after_rewrite()
        finally:
            lock.release()

    def _compact_after_rewrite(self) -> None:
        """The write is committed: a compaction that fails leaves the (valid) sparse file."""
        import duckdb

        try:
            self.compact(min_free_share=COMPACT_FREE_SHARE)
        except (duckdb.Error, OSError) as exc:
            log.warning("DuckDB warehouse %s: compaction after a large rewrite failed, the "
                        "file keeps its free blocks: %s", self.path, exc)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock file (no connection open): for :meth:`compact`."""
        from filelock import FileLock

        with FileLock(str(self.lock_path), timeout=self.lock_timeout, poll_interval=0.01):
            yield

    def free_share(self) -> float:
        """Share of the file's blocks that hold no data."""
        import duckdb

        con = duckdb.connect(str(self.path), read_only=True)
        try:
            row = con.execute(
                "SELECT total_blocks, free_blocks FROM pragma_database_size() "
                "WHERE database_name = current_database()").fetchone()
        finally:
            con.close()
        total, free = row if row is not None else (0, 0)
        return float(free) / total if total else 0.0

    def compact(self, min_free_share: float = 0.0) -> bool:
        """Copy the database into a fresh file (``COPY FROM DATABASE``) and put it in place,
        when at least ``min_free_share`` of its blocks are free: DuckDB reuses freed blocks but
        never shrinks its file. Call it holding the lock file, with no connection open."""
        import duckdb

        if not self.path.exists() or self.free_share() < min_free_share:
            return False
        fresh = Path(str(self.path) + ".compact")
        fresh.unlink(missing_ok=True)
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH '{self.path}' AS prometheus_src (READ_ONLY)")
            con.execute(f"ATTACH '{fresh}' AS prometheus_dst")
            con.execute("COPY FROM DATABASE prometheus_src TO prometheus_dst")
            con.execute("DETACH prometheus_src")
            con.execute("DETACH prometheus_dst")
        except BaseException:
            con.close()
            fresh.unlink(missing_ok=True)
            raise
        con.close()
        fresh.replace(self.path)
        return True
