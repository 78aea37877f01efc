"""A PostgreSQL server that lives in the project home, for Dagster's run and event storage.

The binaries come from the ``pgserver`` package (PostgreSQL 16, installed by pip). The server
listens on a unix socket only, in ``$PROMETHEUS_HOME/dagster_pg``. Any process that opens the
project's Dagster instance starts it when it is not running and registers itself as a user;
when the last registered process exits the server is stopped, so nothing is left running
after a command, a demo or ``make ui``. Processes that died without exiting (SIGKILL) are
pruned from the list by the next one that starts or stops.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import time
import warnings
from pathlib import Path

from filelock import FileLock

from prometheus_dagster.core.errors import PrometheusError
from prometheus_dagster.core.paths import prometheus_home

DATABASE = "dagster"


class EmbeddedPostgresError(PrometheusError):
    """The embedded PostgreSQL server cannot run here."""


def embedded_postgres_dir() -> Path:
    return prometheus_home() / "dagster_pg"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """The server of one data folder: ``url()`` starts it (and registers this process),
    ``stop()`` stops it whoever uses it."""

    _registered: set[Path] = set()

    def __init__(self, data_dir: Path | None = None):
        self.data_dir = (data_dir or embedded_postgres_dir()).resolve()
        self._users_file = self.data_dir.with_name(self.data_dir.name + ".users.json")
        self._lock = FileLock(str(self.data_dir.with_name(self.data_dir.name + ".lock")))

    # -- users of the server (one pid per process that opened the instance) --
    def _read_users(self) -> list[int]:
        try:
            pids = json.loads(self._users_file.read_text())
        except (OSError, ValueError):
            return []
        return [p for p in pids if isinstance(p, int) and _pid_alive(p)]

    def _write_users(self, pids: list[int]) -> None:
        self._users_file.write_text(json.dumps(sorted(set(pids))))

    def postmaster_pid(self) -> int | None:
        """The running server's pid, or None."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def url(self, *, register: bool = True) -> str:
        """Start the server if needed and return a SQLAlchemy URL to its ``dagster`` database.
        With ``register`` this process holds the server until it exits."""
        try:
            with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError as exc:
            raise EmbeddedPostgresError(
                "the embedded PostgreSQL needs the 'pgserver' package (make install); or set "
                "PROMETHEUS_INSTANCE=sqlite and run `python -m prometheus_dagster.cli setup-home`"
            ) from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            users = self._read_users()
            try:
                server = pgserver.get_server(self.data_dir, cleanup_mode=None)
                uri = server.get_uri(DATABASE)
                _ensure_database(server.get_uri("postgres"), DATABASE)
            except Exception as exc:  # pgserver raises subprocess/OS/assertion errors alike
                log = self.data_dir / "log"
                tail = log.read_text()[-1500:] if log.exists() else ""
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL server in {self.data_dir} did not start "
                    f"({type(exc).__name__}: {exc}). {tail}\nUse the SQLite instance instead: "
                    "PROMETHEUS_INSTANCE=sqlite python -m prometheus_dagster.cli setup-home"
                ) from exc
            if register and os.getpid() not in users:
                users.append(os.getpid())
            self._write_users(users)
        if register and self.data_dir not in EmbeddedPostgres._registered:
            EmbeddedPostgres._registered.add(self.data_dir)
            atexit.register(self.release)
        return uri.replace("postgresql://", "postgresql+psycopg2://", 1)

    def release(self) -> None:
        """This process no longer uses the server; the last user stops it."""
        with self._lock:
            users = self._read_users()
            if os.getpid() not in users:
                return
            users.remove(os.getpid())
            self._write_users(users)
            if not users:
                self._stop_locked()
        EmbeddedPostgres._registered.discard(self.data_dir)

    def stop(self) -> bool:
        """Stop the server now (fast shutdown: open transactions are rolled back); True if it
        was running."""
        with self._lock:
            self._write_users([])
            return self._stop_locked()

    def _stop_locked(self, timeout: float = 30.0) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            try:  # reap it when this process started it (pg_ctl's child is not ours, usually)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        return True


def _ensure_database(admin_uri: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_uri)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'create database "{name}"')
    finally:
        conn.close()
