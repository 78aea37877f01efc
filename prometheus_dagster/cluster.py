"""A local Celery cluster: one worker per tier queue on this machine, pointed at the services of
the deployment's Celery YAML (``make cluster-up`` / ``make cluster-down``).

    python -m prometheus_dagster.cluster up [--config deploy/celery/celery.yaml]
    python -m prometheus_dagster.cluster down
    python -m prometheus_dagster.cluster status

Each worker's pid and log files are under ``$PROMETHEUS_HOME/cluster/``. Workers inherit this
process's environment: the warehouse URL, MLflow URI and ``DAGSTER_HOME`` must be the ones the
code location uses.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_dagster.celery_executor import (
    CONFIG_ENV,
    DEFAULT_TIER_QUEUES,
    TIER_QUEUES_KEY,
    load_celery_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "deploy" / "celery" / "celery.yaml"
STOP_GRACE_SECONDS = 30.0
READY_TIMEOUT_SECONDS = 180.0


@dataclass(frozen=True)
class Worker:
    """A Celery worker process started by this module."""

    name: str
    queues: tuple[str, ...]
    pid: int
    log_file: Path


def cluster_dir(home: Path | None = None) -> Path:
    root = home or Path(os.environ.get("PROMETHEUS_HOME", REPO_ROOT / ".prometheus"))
    return root / "cluster"


def worker_command(name: str, queues: Sequence[str], log_file: Path,
                   concurrency: int = 1) -> list[str]:
    """The celery command line of one worker (prefork pool, one task at a time per child)."""
    return [sys.executable, "-m", "celery", "-A", "prometheus_dagster.celery_app", "worker",
            "-Q", ",".join(queues), "-n", f"{name}@%h", f"--concurrency={concurrency}",
            "--prefetch-multiplier=1", "--without-gossip", "--without-mingle",
            "--loglevel=INFO", f"--logfile={log_file}"]


def start_worker(name: str, queues: Sequence[str], config_path: Path, run_dir: Path,
                 env: Mapping[str, str] | None = None, concurrency: int = 1) -> Worker:
    """Start a worker in its own process group and record its pid in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = run_dir / f"{name}.log"
    worker_env = {**os.environ, **(env or {}), CONFIG_ENV: str(config_path)}
    worker_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), worker_env.get("PYTHONPATH", "")) if p)
    with open(run_dir / f"{name}.out", "ab") as out:
        proc = subprocess.Popen(worker_command(name, queues, log_file, concurrency),
                                cwd=REPO_ROOT, env=worker_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    (run_dir / f"{name}.pid").write_text(str(proc.pid))
    return Worker(name, tuple(queues), proc.pid, log_file)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of this process counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def stop_workers(pids: Sequence[int], grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM each worker (warm shutdown: the running step ends first), then
    SIGKILL its process group after the grace period."""
    for pid in pids:  # the main process stops its pool children itself
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        kill_worker(pid)


def kill_worker(pid: int) -> None:
    """SIGKILL the worker and its pool children at once, as a lost machine would."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)


def wait_until_ready(worker: Worker, timeout_seconds: float = READY_TIMEOUT_SECONDS) -> None:
    """Wait until the worker's log says it is consuming; raise if it died or never got there."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if worker.log_file.exists() and " ready." in worker.log_file.read_text(errors="replace"):
            return
        if not _alive(worker.pid):
            raise RuntimeError(f"worker {worker.name} exited; see {worker.log_file}")
        time.sleep(0.5)
    raise TimeoutError(f"worker {worker.name} not ready after {timeout_seconds:.0f}s; "
                       f"see {worker.log_file}")


def tier_queues(config_path: Path) -> dict[str, str]:
    return dict(load_celery_config(config_path).get(TIER_QUEUES_KEY) or DEFAULT_TIER_QUEUES)


def cluster_up(config_path: Path, run_dir: Path) -> list[Worker]:
    """One worker per tier queue; a tier whose worker already runs is left alone."""
    workers = []
    for tier, queue in sorted(tier_queues(config_path).items()):
        name = f"prometheus-tier{tier}"
        pid_file = run_dir / f"{name}.pid"
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            print(f"{name}: already running (pid {pid_file.read_text()})")
            continue
        worker = start_worker(name, [queue], config_path, run_dir)
        wait_until_ready(worker)
        print(f"{name}: queue {queue}, pid {worker.pid}, log {worker.log_file}")
        workers.append(worker)
    return workers


def cluster_down(run_dir: Path) -> None:
    pid_files = sorted(run_dir.glob("*.pid"))
    running = {f: int(f.read_text()) for f in pid_files if _alive(int(f.read_text()))}
    stop_workers(list(running.values()))
    for pid_file in pid_files:
        if pid_file in running:
            print(f"{pid_file.stem}: stopped (pid {running[pid_file]})")
        pid_file.unlink()


def cluster_status(run_dir: Path) -> None:
    pid_files = sorted(run_dir.glob("*.pid"))
    if not pid_files:
        print("no workers")
    for pid_file in pid_files:
        pid = int(pid_file.read_text())
        print(f"{pid_file.stem}: pid {pid} {'running' if _alive(pid) else 'gone'}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m prometheus_dagster.cluster")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--config", type=Path,
                        default=Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG)))
    args = parser.parse_args(argv)
    run_dir = cluster_dir()
    if args.action == "up":
        cluster_up(args.config.resolve(), run_dir)
    elif args.action == "down":
        cluster_down(run_dir)
    else:
        cluster_status(run_dir)


if __name__ == "__main__":
    main()
