"""The run launcher of every shipped Dagster instance: Dagster's ``DefaultRunLauncher`` (a run
worker process started by the code server), plus the worker health check that Dagster's run
monitoring needs and the default launcher lacks.

Without it a run whose worker died together with its code server (``kill -9``, the OOM killer,
a crashed ``dagster dev``) stays STARTED forever, holds a slot of the queued run coordinator and
is never retried. With it, the monitoring daemon (``run_monitoring`` in dagster.yaml) checks
every STARTED run each poll:

* a worker on this machine: its process (pid from the run's "Started process for run" event)
  must exist and be the same process (started no later than that event, not a zombie);
* a worker on another machine: the code server that launched it must still list the run;
  a code server that does not answer for ``unreachable_checks_before_failure`` polls in a row
  counts as gone.

A run found dead is marked FAILURE by the daemon, and tier-1 runs are then retried by the run
retry daemon (``dagster/max_retries``). Runs executed in process rather than launched
(``execute_job``, ``materialize``, the demo's workers) carry no code server and are not checked:
they may run on another machine than the daemon.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any

from dagster import Field, IntSource
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes.config_class import ConfigurableClassData

WORKER_STARTED_MESSAGE = "Started process for run"
# A worker's process may be created up to this long before its "started" event is stored
# (never after it); a process created later than that is another process that reused the pid.
PID_CLOCK_SLACK_SECONDS = 2.0
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class MonitoredRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers Dagster's run monitoring can check."""

    def __init__(self, inst_data: ConfigurableClassData | None = None,
                 unreachable_checks_before_failure: int = 3):
        super().__init__(inst_data=inst_data)
        self.unreachable_checks_before_failure = unreachable_checks_before_failure
        self._workers: dict[str, tuple[int, float]] = {}
        self._unreachable: dict[str, int] = {}

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"unreachable_checks_before_failure": Field(IntSource, is_required=False,
                                                           default_value=3)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData,
                          config_value: Mapping[str, Any]) -> MonitoredRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        grpc_info = json.loads(run.tags.get(GRPC_INFO_TAG) or "{}")
        worker = self._worker(run.run_id)
        if worker is not None and _is_local(grpc_info):
            pid, started_at = worker
            problem = _process_problem(pid, started_at)
            if problem:
                return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker {problem}",
                                            run_worker_id=str(pid))
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return self._ask_code_server(run, grpc_info)

    def _worker(self, run_id: str) -> tuple[int, float] | None:
        """(pid, time of its "started" event) of the run's worker process, once it reported."""
        if run_id not in self._workers:
            records = self._instance.get_records_for_run(
                run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=50).records
            for record in records:
                entry = record.event_log_entry
                event = entry.dagster_event
                if event is None or not (event.message or entry.user_message or "").startswith(
                        WORKER_STARTED_MESSAGE):
                    continue
                pid = event.engine_event_data.metadata.get("pid")
                if pid is not None:
                    # dagster records the pid as a text metadata value
                    self._workers[run_id] = (int(str(pid.value)), entry.timestamp)
                    break
        return self._workers.get(run_id)

    def _ask_code_server(self, run: DagsterRun, grpc_info: dict) -> CheckRunHealthResult:
        from dagster._core.errors import DagsterUserCodeUnreachableError
        from dagster._grpc.client import DagsterGrpcClient
        from dagster._grpc.types import GetCurrentRunsResult
        from dagster._serdes import deserialize_value

        if not grpc_info:
            # Not launched through a code server: executed in process by the process that
            # created it (execute_job, materialize, the demo), possibly on another machine.
            return CheckRunHealthResult(WorkerStatus.RUNNING,
                                        "executed in process, not launched: not checked")
        where = grpc_info.get("socket") or f"{grpc_info.get('host')}:{grpc_info.get('port')}"
        client = DagsterGrpcClient(port=grpc_info.get("port"), socket=grpc_info.get("socket"),
                                   host=grpc_info.get("host", "localhost"),
                                   use_ssl=bool(grpc_info.get("use_ssl", False)))
        try:
            current = deserialize_value(client.get_current_runs(), GetCurrentRunsResult)
        except DagsterUserCodeUnreachableError:
            misses = self._unreachable[run.run_id] = self._unreachable.get(run.run_id, 0) + 1
            if misses >= self.unreachable_checks_before_failure:
                return CheckRunHealthResult(
                    WorkerStatus.FAILED, f"the code server that launched the run ({where}) has "
                    f"not answered {misses} checks in a row")
            return CheckRunHealthResult(WorkerStatus.RUNNING,
                                        f"code server {where} did not answer ({misses})")
        self._unreachable.pop(run.run_id, None)
        if run.run_id in current.current_runs:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"the code server at {where} no longer runs it (its run worker "
            "process ended without reporting, or the code server was restarted)")


def _is_local(grpc_info: dict) -> bool:
    if grpc_info.get("socket"):
        return True
    host = str(grpc_info.get("host", ""))
    return host in LOCAL_HOSTS or host in {socket.gethostname(), socket.getfqdn()}


def _process_problem(pid: int, started_at: float) -> str | None:
    """Why process ``pid`` is not the run worker that reported at ``started_at`` (None if it is)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return f"process {pid} has exited"
        if process.create_time() > started_at + PID_CLOCK_SLACK_SECONDS:
            return f"process {pid} has exited (the pid now belongs to another process)"
    except psutil.NoSuchProcess:
        return f"process {pid} has exited"
    return None
