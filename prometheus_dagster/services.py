"""Long-running child services (the Dagster and MLflow UIs) that stop together, whole.

Each service starts in its own session, so a terminal's Ctrl-C reaches only the launcher, which
then stops every service in order. ``dagster dev`` and ``mlflow server`` start their own children
(webserver, daemon, code servers; uvicorn workers, job consumers); a child whose parent exits
first is re-parented and would outlive a plain ``kill`` of the service. So :meth:`stop` records
every process of each service's session and descendant tree first, sends SIGTERM to all of them
at once, and SIGKILL to whatever of that record still runs after a grace period.

The launcher stops on SIGINT, SIGTERM and SIGHUP alike, when a service exits, and when its own
parent goes away (``make`` killed without forwarding the signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import psutil

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(Exception):  # noqa: N818  (a request, not an error)
    """Raised in the launcher's main thread by a stop signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`StopRequested`; previous
    handlers are restored afterwards."""

    def handler(signum: int, _frame: object) -> None:
        raise StopRequested(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """Within the block, stop signals are ignored (a second Ctrl-C cannot cut a shutdown short;
    the shutdown itself is bounded)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ServiceGroup:
    """Services started with :meth:`start`, watched by :meth:`wait`, ended by :meth:`stop`."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self._parent_pid = os.getppid()

    def start(self, argv: Sequence[str], *, cwd: Path) -> subprocess.Popen:
        proc = subprocess.Popen(list(argv), cwd=cwd, start_new_session=True)
        self.procs.append(proc)
        return proc

    def wait(self, poll_s: float = 0.5) -> str:
        """Block until a stop signal (re-raised as :class:`StopRequested`), a service exits or
        the launcher's parent goes away; returns why it stopped waiting otherwise."""
        while True:
            for proc in self.procs:
                if proc.poll() is not None:
                    program = cast("list[str]", proc.args)[0]  # start() always passes a list
                    return f"{Path(program).name} exited with code {proc.returncode}"
            if os.getppid() != self._parent_pid:
                return "the launcher's parent process went away"
            time.sleep(poll_s)

    def processes(self) -> list[psutil.Process]:
        """Every running process of the services: their sessions and descendant trees."""
        found: dict[int, psutil.Process] = {}
        sessions: set[int] = set()
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(proc.pid)
                sessions.add(proc.pid)  # start_new_session: the leader's pid is the session id
                found[leader.pid] = leader
                for child in leader.children(recursive=True):
                    found[child.pid] = child
        for candidate in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if candidate.pid != os.getpid() and os.getsid(candidate.pid) in sessions:
                    found.setdefault(candidate.pid, candidate)
        return list(found.values())

    def stop(self, grace_s: float = 10.0, orphan_grace_s: float = 2.0,
             kill_wait_s: float = 3.0) -> list[int]:
        """Stop every service and all its processes; returns the pids that needed SIGKILL.
        Every recorded process gets SIGTERM at once (as a terminal's Ctrl-C reaches a whole
        foreground job), then ``grace_s`` to exit, or ``orphan_grace_s`` once the service
        leaders are gone (nothing coordinates their children's shutdown any more); whatever is
        left gets SIGKILL."""
        with stop_signals_ignored():
            tracked = {p.pid: p for p in self.processes()}
            for proc in self.procs:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)  # the leader's process group
            for p in tracked.values():  # and any that left the group
                with contextlib.suppress(psutil.Error):
                    p.terminate()
            alive = self._wait(tracked, grace_s, orphan_grace_s)
            if alive:  # started during shutdown?
                tracked.update({p.pid: p for p in self.processes()})
                alive = [p for p in tracked.values() if _running(p)]
            killed = []
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()
                    killed.append(p.pid)
            self._wait(tracked, kill_wait_s)
            for proc in self.procs:  # reap the direct children
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
        return killed

    def _wait(self, tracked: dict[int, psutil.Process], timeout: float,
              orphan_grace_s: float | None = None) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout
        while True:
            leaders_gone = all(proc.poll() is not None for proc in self.procs)  # also reaps
            if leaders_gone and orphan_grace_s is not None:
                deadline = min(deadline, time.monotonic() + orphan_grace_s)
                orphan_grace_s = None
            alive = [p for p in tracked.values() if _running(p)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.1)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
