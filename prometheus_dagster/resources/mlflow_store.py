"""The local MLflow store (``sqlite:///$PROMETHEUS_HOME/mlflow.db``), created once and safely.

MLflow creates and migrates a SQLite store from whichever process opens it first, without a
lock: several step processes starting on a new home raced each other and left the store half
migrated (``_alembic_tmp_*`` tables, ``alembic_version`` behind), after which every run failed.
``prepare_store`` takes a file lock beside the database, and under it creates the store, or
finds it complete, or repairs it:

* a store at MLflow's current schema is used as it is;
* an incomplete store that holds no runs or registered models (a creation that was
  interrupted) is moved aside as ``mlflow.db.incomplete-<UTC time>`` and created anew;
* an incomplete or older store that holds runs or models is never touched: ``TrackingStoreError``
  says what was found and how to upgrade it or start a new one.

Stores on a server (``http://``, PostgreSQL, ...) are left to the server, which migrates them.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from pathlib import Path

from filelock import FileLock, Timeout

from prometheus_dagster.core.errors import PrometheusError

log = logging.getLogger(__name__)

# Creating the store takes a few seconds; a process that waits much longer than this is stuck
# behind something else than another creator.
STORE_LOCK_TIMEOUT_SECONDS = 300.0
_USER_DATA_TABLES = ("runs", "registered_models", "logged_models")

_ready: set[str] = set()
_ready_guard = threading.Lock()


class TrackingStoreError(PrometheusError):
    """The MLflow store cannot be used as it is."""


def sqlite_store_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI (None for any other store)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def head_revision() -> str:
    """The schema revision the installed MLflow expects."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def store_state(path: Path) -> tuple[str, str | None, list[str], int]:
    """(state, revision, leftover alembic tables, rows of runs and models) of a SQLite store;
    state is ``missing``, ``empty``, ``current`` or ``incomplete``."""
    if not path.exists() or path.stat().st_size == 0:
        return "missing", None, [], 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        revision = None
        if "alembic_version" in tables:
            rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
            revision = rows[0][0] if len(rows) == 1 else None
        leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
        user_rows = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                        for name in _USER_DATA_TABLES for t in (name, f"_alembic_tmp_{name}")
                        if t in tables)
    finally:
        con.close()
    if not {t for t in tables if not t.startswith("alembic_")}:
        return "empty", revision, leftovers, 0
    if revision == head_revision() and not leftovers and _all_tables_exist(path):
        return "current", revision, leftovers, user_rows
    return "incomplete", revision, leftovers, user_rows


def _all_tables_exist(path: Path) -> bool:
    import sqlalchemy
    from mlflow.store.db.utils import _all_tables_exist

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        return bool(_all_tables_exist(engine))
    finally:
        engine.dispose()


def _create(path: Path) -> None:
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()


def _move_aside(path: Path) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.incomplete-{stamp}")
    for suffix in ("", "-journal", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.rename(Path(f"{target}{suffix}"))
    return target


def prepare_store(uri: str) -> None:
    """Make the SQLite store behind ``uri`` ready, once per process; a no-op for other stores."""
    path = sqlite_store_path(uri)
    if path is None:
        return
    with _ready_guard:
        if uri in _ready:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = f"{path}.lock"
        try:
            with FileLock(lock_path, timeout=STORE_LOCK_TIMEOUT_SECONDS):
                _prepare_locked(path)
        except Timeout:
            raise TrackingStoreError(
                f"MLflow store {path}: waited {STORE_LOCK_TIMEOUT_SECONDS:.0f} s for {lock_path}, "
                "held by another process preparing the store; if no Prometheus process is "
                "running, delete the lock file and retry"
            ) from None
        _ready.add(uri)


def _prepare_locked(path: Path) -> None:
    state, revision, leftovers, user_rows = store_state(path)
    if state == "current":
        return
    if state == "incomplete" or (state == "empty" and (revision or leftovers)):
        found = (f"schema revision {revision or 'unknown'} (MLflow expects {head_revision()})"
                 + (f", leftover migration tables {', '.join(leftovers)}" if leftovers else ""))
        if user_rows:
            raise TrackingStoreError(
                f"MLflow store {path} is not at the schema this MLflow uses: {found}; it holds "
                f"{user_rows} runs/models, so it is left as it is. Back it up, then run "
                f"`mlflow db upgrade sqlite:///{path}`, or move it aside to start a new store"
            )
        aside = _move_aside(path)
        log.warning("MLflow store %s was incomplete (%s) and held no runs: moved to %s and "
                    "created anew", path, found, aside)
    _create(path)
    state, revision, leftovers, _ = store_state(path)
    if state != "current":
        extra = f", leftover tables {', '.join(leftovers)}" if leftovers else ""
        raise TrackingStoreError(f"MLflow store {path}: creation ended at schema revision "
                                 f"{revision} (expected {head_revision()}){extra}")
