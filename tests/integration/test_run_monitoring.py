"""A real run launched through the shipped instance config (MonitoredRunLauncher, run
monitoring, run retries): its code server and run worker are killed with SIGKILL, as a crash
or the OOM killer would; one pass of Dagster's monitoring daemon marks the run FAILURE and the
run retry daemon launches its tier-1 retry, which finishes on a restarted code server."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import PARENT_RUN_ID_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import (
    consume_new_runs_for_automatic_reexecution,
)
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._grpc.client import DagsterGrpcClient

from prometheus_dagster.core.paths import REPO_ROOT
from prometheus_dagster.jobs.daily import tier_tags
from tests.integration.monitored_job import MARKER_DIR_ENV, tier1_job
from tests.services import throwaway_postgres_database

LOCATION = "monitored"
log = logging.getLogger(__name__)


def shipped_instance(tmp_path: Path, config: str) -> DagsterInstance:
    """An instance with a shipped config as it is (its storage too, when it names one; the
    default SQLite storage goes to tmp_path)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / config).read_text())
    return DagsterInstance.from_config(str(home))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def code_server(instance: DagsterInstance, markers: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """``dagster api grpc`` serving the test job, in its own process group."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), MARKER_DIR_ENV: str(markers),
           "DAGSTER_HOME": instance.root_directory}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "api", "grpc", "--module-name",
         "tests.integration.monitored_job", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 120
        while True:
            try:
                client.ping("x")
                break
            except Exception:  # noqa: BLE001 - not serving yet
                assert proc.poll() is None, "code server exited while starting"
                assert time.monotonic() < deadline, "code server did not start in 120 s"
                time.sleep(0.5)
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@contextmanager
def workspace(instance: DagsterInstance, port: int) -> Iterator[WorkspaceProcessContext]:
    target = GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name=LOCATION)
    with WorkspaceProcessContext(instance, target) as ctx:
        yield ctx


def launch(instance: DagsterInstance, ctx: WorkspaceProcessContext) -> str:
    request = ctx.create_request_context()
    remote = request.get_code_location(LOCATION).get_repository("__repository__") \
        .get_full_job("tier1_job")
    run = instance.create_run_for_job(
        tier1_job, tags=dict(tier1_job.tags), remote_job_origin=remote.get_remote_origin(),
        job_code_origin=remote.get_python_origin())
    instance.submit_run(run.run_id, request)
    dequeue(ctx)
    return run.run_id


def dequeue(ctx: WorkspaceProcessContext) -> None:
    """One pass of the queued run coordinator's daemon: queued runs are launched."""
    list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(ctx))


def wait_for(predicate, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def monitor_once(ctx: WorkspaceProcessContext) -> None:
    list(execute_run_monitoring_iteration(ctx, log))


def retry_failed_runs(instance: DagsterInstance, ctx: WorkspaceProcessContext) -> None:
    records = instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
    list(consume_new_runs_for_automatic_reexecution(ctx, records, log))


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.yaml"])
def test_shipped_configs_turn_on_run_monitoring_with_a_worker_check(tmp_path, config):
    shipped = yaml.safe_load((REPO_ROOT / config).read_text())
    assert shipped["run_monitoring"]["enabled"] is True
    assert shipped["run_launcher"]["class"] == "MonitoredRunLauncher"
    shipped.pop("storage", None)  # the launcher and monitoring settings, without a server
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(shipped))
    instance = DagsterInstance.from_config(str(home))
    assert instance.run_monitoring_enabled
    assert instance.run_launcher.supports_check_run_worker_health
    assert tier_tags("1")["dagster/max_retries"] == "3"


@pytest.mark.slow
def test_a_killed_run_worker_fails_its_run_and_the_tier1_retry_runs(tmp_path):
    kill_a_run_and_recover(shipped_instance(tmp_path, "dagster.yaml"), tmp_path)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_same_on_the_shared_deployment_instance(tmp_path, dagster_pg_database, monkeypatch):
    """deploy/dagster.yaml as shipped: runs and event logs in PostgreSQL."""
    for name, value in {"USERNAME": "postgres", "PASSWORD": "", "HOST": "127.0.0.1",
                        "DB": dagster_pg_database}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    instance = shipped_instance(tmp_path, "deploy/dagster.yaml")
    assert "Postgres" in type(instance.run_storage).__name__
    kill_a_run_and_recover(instance, tmp_path)


@pytest.fixture()
def dagster_pg_database() -> Iterator[str]:
    """A throwaway database for Dagster's storage on the local server."""
    with throwaway_postgres_database("prometheus_monitor") as name:
        yield name


def kill_a_run_and_recover(instance: DagsterInstance, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with code_server(instance, markers) as (server, port), workspace(instance, port) as ctx:
        run_id = launch(instance, ctx)
        wait_for(lambda: (markers / "attempt-1").exists(), "the first attempt's step")
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED
        monitor_once(ctx)  # a live worker is left alone
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

        os.killpg(server.pid, signal.SIGKILL)  # code server, run worker and step process
        server.wait(timeout=30)
        step_pid = int((markers / "attempt-1").read_text())
        wait_for(lambda: not _alive(step_pid), "the killed step process to go")
        time.sleep(2)
        # nothing else notices: the run would hold its slot forever
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

    with code_server(instance, markers) as (_, port), workspace(instance, port) as ctx:
        monitor_once(ctx)
        failed = instance.get_run_by_id(run_id)
        assert failed.status == DagsterRunStatus.FAILURE
        messages = [(e.dagster_event.message if e.dagster_event else None) or e.user_message
                    for e in instance.all_logs(run_id)]
        assert any("run worker process" in m and "has exited" in m for m in messages), messages

        retry_failed_runs(instance, ctx)
        retries = instance.get_runs(RunsFilter(tags={PARENT_RUN_ID_TAG: run_id}))
        assert len(retries) == 1
        retry = retries[0]
        assert retry.tags["prometheus/tier"] == "1"
        dequeue(ctx)
        wait_for(lambda: instance.get_run_by_id(retry.run_id).is_finished, "the retry to finish")
        assert instance.get_run_by_id(retry.run_id).status == DagsterRunStatus.SUCCESS
        assert (markers / "attempt-2").exists()


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_a_worker_that_never_reported_is_checked_through_its_code_server(tmp_path):
    """Without a worker pid (a worker on another machine, or one that died before reporting)
    the launcher asks the code server that launched the run."""
    from dagster._core.launcher import WorkerStatus
    from dagster._core.storage.tags import GRPC_INFO_TAG
    from dagster._core.test_utils import create_run_for_test

    instance = shipped_instance(tmp_path, "dagster.yaml")
    launcher = instance.run_launcher
    with code_server(instance, tmp_path) as (_, port):
        forgotten = create_run_for_test(instance, job_name="tier1_job", tags={
            GRPC_INFO_TAG: f'{{"host": "127.0.0.1", "port": {port}}}'},
            status=DagsterRunStatus.STARTED)
        health = launcher.check_run_worker_health(forgotten)
        assert health.status == WorkerStatus.FAILED and "no longer runs it" in health.msg

    gone = create_run_for_test(instance, job_name="tier1_job", tags={
        GRPC_INFO_TAG: f'{{"host": "127.0.0.1", "port": {free_port()}}}'},
        status=DagsterRunStatus.STARTED)
    checks = [launcher.check_run_worker_health(gone).status for _ in range(3)]
    assert checks == [WorkerStatus.RUNNING, WorkerStatus.RUNNING, WorkerStatus.FAILED]

    # executed in process (execute_job, materialize): nothing to check it with, never failed
    in_process = create_run_for_test(instance, job_name="tier1_job",
                                     status=DagsterRunStatus.STARTED)
    assert launcher.check_run_worker_health(in_process).status == WorkerStatus.RUNNING
