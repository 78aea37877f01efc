"""``cli ui`` stops the Dagster and MLflow UIs whole on SIGTERM as on SIGINT: the launcher runs
on free ports until both UIs answer, gets the signal, and every process it started (dagster dev,
webserver, daemon, code server, mlflow server, uvicorn, job consumers) is gone within seconds,
with nothing left listening on either port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from prometheus_dagster.core.paths import REPO_ROOT

STARTUP_TIMEOUT_S = 300.0  # both UIs on a loaded 2-core machine
STOP_TIMEOUT_S = 20.0  # the launcher's own bound is ~10 s grace + 3 s + 3 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tree(pid: int) -> list[psutil.Process]:
    """The launcher, its descendants and every process of its children's sessions."""
    root = psutil.Process(pid)
    found = {p.pid: p for p in [root, *root.children(recursive=True)]}
    sessions = {p.pid for p in root.children()}
    for candidate in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(candidate.pid) in sessions:
                found.setdefault(candidate.pid, candidate)
    return list(found.values())


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def _describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_ends_every_ui_process(signum: int, tmp_path: Path) -> None:
    home = tmp_path / "home"
    dagster_port, mlflow_port = _free_port(), _free_port()
    env = {**os.environ, "PROMETHEUS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "PYTHONPATH": str(REPO_ROOT)}
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "prometheus_dagster.cli", "ui",
             "--dagster-port", str(dagster_port), "--mlflow-port", str(mlflow_port)],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        urls = [f"http://127.0.0.1:{dagster_port}/server_info",
                f"http://127.0.0.1:{mlflow_port}/health"]
        while not all(_answers(u) for u in urls):
            assert launcher.poll() is None, f"launcher exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"UIs did not answer:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        tree = _tree(launcher.pid)
        names = " ".join(" ".join(p.cmdline()) for p in _alive(tree))
        for part in ("dagster dev", "dagster_webserver", "dagster._daemon", "dagster code-server",
                     "mlflow server", "uvicorn", "huey_consumer"):
            assert part in names, f"{part!r} not among the UI processes: {_describe(tree)}"

        launcher.send_signal(signum)
        started = time.monotonic()
        launcher.wait(timeout=STOP_TIMEOUT_S)
        _, left = psutil.wait_procs(_alive(tree), timeout=max(1.0, STOP_TIMEOUT_S -
                                                               (time.monotonic() - started)))
        assert not _alive(left), f"left running: {_describe(left)}\n{log.read_text()[-3000:]}"
        assert not _port_in_use(dagster_port) and not _port_in_use(mlflow_port)
        stopped = [line for line in log.read_text().splitlines() if "UIs stopped" in line]
        assert stopped, log.read_text()[-3000:]
        print(f"{len(tree)} processes; {stopped[-1]}")
    finally:
        for p in _alive(tree) + _alive([psutil.Process(launcher.pid)] if launcher.poll() is None
                                       else []):
            with contextlib.suppress(psutil.Error):
                p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            launcher.wait(timeout=10)
