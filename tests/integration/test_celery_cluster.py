"""The Celery deployment for real: Celery workers (RabbitMQ broker, Redis results) run the steps
of the US_EQ daily chain against a PostgreSQL warehouse and PostgreSQL Dagster storage.

Needs PostgreSQL (127.0.0.1:5432), RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379); each
test skips with a message naming the missing one. Every test uses queues of its own (deleted at
the end) so a running `make cluster-up` never takes its work, and stops its workers even when it
fails."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml  # type: ignore[import-untyped]  # types-PyYAML is not installed
from dagster import AssetKey, DagsterInstance, execute_job, reconstructable
from dagster._core.definitions.reconstruct import ReconstructableJob

from prometheus_dagster.cluster import (
    Worker,
    kill_worker,
    start_worker,
    stop_workers,
    wait_until_ready,
)
from prometheus_dagster.definitions import build_definitions
from prometheus_dagster.engines.features.schemas import FEATURE_TABLES
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.warehouse import Warehouse
from tests.integration.celery_jobs import (
    GATE_ENV,
    release,
    started_files,
    tier1_gated_job,
    tier3_gated_job,
)
from tests.integration.pg_daily_job import us_eq_daily_job
from tests.services import (
    RABBITMQ_URL,
    REDIS_URL,
    require_rabbitmq,
    require_redis,
    throwaway_postgres_database,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source"
pytestmark = pytest.mark.postgres

DATES = ["2024-02-05", "2024-02-06"]
INGESTED = ["prices_daily", "corporate_actions", "fundamentals"]
SELECTION = [AssetKey(["US_EQ", t]) for t in [*INGESTED, *FEATURE_TABLES]]
# bookkeeping columns that differ between any two runs of the same computation
RUN_COLUMNS = {"run_id", "ingested_at", "created_at", "computed_at", "updated_at", "loaded_at"}


def _pg_url(db: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{db}"


@pytest.fixture()
def services() -> None:
    require_rabbitmq()
    require_redis()


@pytest.fixture()
def cluster_env(services, tmp_path, monkeypatch) -> Iterator[dict]:
    """Dagster storage and warehouse in fresh PostgreSQL databases, a Celery YAML with queues of
    this test only; the environment the code location and the workers share."""
    with throwaway_postgres_database("prometheus_celery") as db, \
            throwaway_postgres_database("prometheus_celery_ref") as ref_db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump({
            "telemetry": {"enabled": False},
            "storage": {"postgres": {"postgres_db": {
                "username": "postgres", "password": "", "hostname": "127.0.0.1",
                "db_name": db, "port": 5432, "scheme": "postgresql+psycopg2"}}},
        }))
        tag = uuid.uuid4().hex[:8]
        queues = {"1": f"tier1-{tag}", "2": f"tier2-{tag}", "3": f"tier3-{tag}"}
        config = tmp_path / "celery.yaml"
        config.write_text(yaml.safe_dump({"execution": {"config": {
            "broker": RABBITMQ_URL, "backend": REDIS_URL, "tier_queues": queues,
            "config_source": {"task_acks_late": True, "task_reject_on_worker_lost": True,
                              "worker_prefetch_multiplier": 1},
        }}}))
        env = {
            "DAGSTER_HOME": str(home),
            "PROMETHEUS_WAREHOUSE_URL": _pg_url(db),
            "PROMETHEUS_SOURCE": "files",
            "PROMETHEUS_FILES_ROOT": str(FIXTURE),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "PROMETHEUS_CELERY_CONFIG": str(config),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        _forget_reconstructed_jobs()
        try:
            yield {"db": db, "ref_db": ref_db, "queues": queues, "config": config,
                   "run_dir": tmp_path / "cluster", **env}
        finally:
            _forget_reconstructed_jobs()
            _delete_queues(queues.values())


def _forget_reconstructed_jobs() -> None:
    # Dagster caches a reconstructed job per code pointer: the job built under another test's
    # environment (warehouse URL, executor) must not be reused
    ReconstructableJob.get_definition.cache_clear()


def _delete_queues(names) -> None:  # noqa: ANN001
    from kombu import Connection

    with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        for name in names:
            try:
                channel.queue_delete(name)
            except Exception:  # noqa: BLE001 (a queue never declared is not there to delete)
                channel = conn.channel()


class Workers:
    """Workers started by a test; all stopped at its end."""

    def __init__(self, cluster_env: dict) -> None:
        self.env = cluster_env
        self.started: list[Worker] = []

    def start(self, name: str, tiers: list[str]) -> Worker:
        queues = [self.env["queues"][t] for t in tiers]
        worker = start_worker(name, queues, self.env["config"], self.env["run_dir"])
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        stop_workers([w.pid for w in self.started], grace_seconds=10)


@pytest.fixture()
def workers(cluster_env) -> Iterator[Workers]:
    pool = Workers(cluster_env)
    try:
        yield pool
    finally:
        pool.stop_all()


def _load_reference_data(url: str) -> None:
    from prometheus_dagster.engines.ingestion.file_source import FileSource

    ref = FileSource(FIXTURE).reference("US_EQ")
    Warehouse.from_url(url).replace_all("instruments", ref["instruments"],
                                        where={"market_id": "US_EQ"})


def _single_process_reference(env: dict) -> None:
    """The same partitions run in this process (in-process executor) on the reference
    warehouse."""
    url = _pg_url(env["ref_db"])
    _load_reference_data(url)
    defs = build_definitions(**build_resources(warehouse_url=url,
                                               mlflow_uri=env["MLFLOW_TRACKING_URI"]))
    job = defs.resolve_job_def("US_EQ_daily")
    with DagsterInstance.ephemeral() as instance:
        for date in DATES:
            result = job.execute_in_process(partition_key=date, asset_selection=SELECTION,
                                            instance=instance)
            assert result.success


def _celery_worker_of_steps(result) -> dict[str, str]:  # noqa: ANN001
    """step key -> the Celery worker that ran it, from the run's engine events."""
    return {e.step_key: e.event_specific_data.metadata["Celery worker"].value
            for e in result.all_events
            if e.event_type_value == "ENGINE_EVENT" and e.step_key
            and "Celery worker" in (e.event_specific_data.metadata or {})}


def _warehouse_tables(url: str) -> dict[str, pd.DataFrame]:
    wh = Warehouse.from_url(url)
    tables = {}
    for table in [*INGESTED, *FEATURE_TABLES]:
        frame = wh.read(table)
        frame = frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])
        tables[table] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return tables


def test_two_workers_run_the_daily_chain_like_a_single_process(cluster_env, workers):
    first = workers.start("w1", ["1"])
    second = workers.start("w2", ["1"])
    _single_process_reference(cluster_env)  # while the workers start
    wait_until_ready(first)
    wait_until_ready(second)

    _load_reference_data(cluster_env["PROMETHEUS_WAREHOUSE_URL"])
    ran_on: dict[str, set[str]] = {}
    with DagsterInstance.get() as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        for date in DATES:
            result = execute_job(reconstructable(us_eq_daily_job), instance=instance,
                                 tags={"dagster/partition": date}, asset_selection=SELECTION)
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            steps = _celery_worker_of_steps(result)
            assert {"US_EQ__prices_daily", "US_EQ_features"} <= set(steps)
            for step, worker in steps.items():
                ran_on.setdefault(worker.split("@")[0], set()).add(f"{date} {step}")
            assert result.dagster_run.tags["prometheus/tier"] == "1"
    # the steps were spread over both workers of the tier-1 queue
    assert set(ran_on) == {"w1", "w2"}, ran_on

    got = _warehouse_tables(cluster_env["PROMETHEUS_WAREHOUSE_URL"])
    want = _warehouse_tables(_pg_url(cluster_env["ref_db"]))
    for table in ["prices_daily", "returns_daily", "volatility_daily"]:
        assert len(want[table]) > 0, f"{table}: the reference run wrote nothing"
    for table in want:
        pd.testing.assert_frame_equal(got[table], want[table], obj=table)


# -- queue routing and a lost worker, on small gated jobs (tests/integration/celery_jobs.py) --

WAIT_SECONDS = 240


def _wait_for(condition, what: str, timeout: float = WAIT_SECONDS):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")


def _messages_waiting(queue: str) -> int:
    from kombu import Connection

    with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        try:
            return conn.channel().queue_declare(queue=queue, passive=True).message_count
        except Exception:  # noqa: BLE001 (not declared yet: nothing published to it)
            return 0


class RunInThread:
    """execute_job of a gated job in a thread (the run's executor submits to Celery and waits)."""

    def __init__(self, job_fn, read_outputs: tuple[str, ...] = ()) -> None:  # noqa: ANN001
        self.result: Any = None
        self.read_outputs = read_outputs
        self.outputs: dict[str, object] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(job_fn,), daemon=True)
        self.thread.start()

    def _run(self, job_fn) -> None:  # noqa: ANN001
        try:
            with DagsterInstance.get() as instance:
                with execute_job(reconstructable(job_fn), instance=instance) as result:
                    self.result = result
                    if result.success:
                        self.outputs = {node: result.output_for_node(node)
                                        for node in self.read_outputs}
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            self.error = exc

    def wait(self):  # noqa: ANN201
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), "the run did not finish"
        assert self.error is None, self.error
        assert self.result.success, [e.message for e in self.result.all_events if e.is_failure]
        return self.result


@pytest.fixture()
def gate_dir(cluster_env, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "gates"
    folder.mkdir()
    monkeypatch.setenv(GATE_ENV, str(folder))
    return folder


def test_tier3_work_waits_while_tier1_work_holds_the_workers(cluster_env, gate_dir, workers):
    tier1_worker = workers.start("tier1-only", ["1"])
    wait_until_ready(tier1_worker)
    release(gate_dir, "tier3_gated")  # tier-3 work is ready to run at once when taken

    tier1_run = RunInThread(tier1_gated_job)
    _wait_for(lambda: started_files(gate_dir, "tier1_gated"), "the tier-1 step to start")
    tier3_run = RunInThread(tier3_gated_job)
    tier3_queue = cluster_env["queues"]["3"]
    _wait_for(lambda: _messages_waiting(tier3_queue) == 1, "the tier-3 step to be queued")

    # the tier-1 worker finishes its run and is idle, yet never takes the tier-3 step
    release(gate_dir, "tier1_gated")
    tier1_result = tier1_run.wait()
    assert set(_celery_worker_of_steps(tier1_result).values()) == {_celery_name(tier1_worker)}
    assert _messages_waiting(tier3_queue) == 1
    assert not started_files(gate_dir, "tier3_gated")
    assert tier3_run.thread.is_alive()

    # a worker of the tier-3 queue takes it
    tier3_worker = workers.start("tier3-only", ["3"])
    wait_until_ready(tier3_worker)
    tier3_result = tier3_run.wait()
    assert set(_celery_worker_of_steps(tier3_result).values()) == {_celery_name(tier3_worker)}
    assert tier3_result.dagster_run.tags["prometheus/tier"] == "3"


def _celery_name(worker: Worker) -> str:
    return f"{worker.name}@{socket.gethostname()}"


def _worker_running(workers_started: list[Worker], pid: int) -> Worker:
    """The worker whose process group holds ``pid`` (a pool child running a step)."""
    group = os.getpgid(pid)
    return next(w for w in workers_started if w.pid == group)


def test_a_worker_killed_mid_step_is_replaced_and_the_result_is_unchanged(
    cluster_env, gate_dir, workers
):
    expected = tier1_gated_job_result_in_process(gate_dir)
    started = [workers.start("k1", ["1"]), workers.start("k2", ["1"])]
    for worker in started:
        wait_until_ready(worker)

    run = RunInThread(tier1_gated_job, read_outputs=("realised_volatility",))
    first = _wait_for(lambda: started_files(gate_dir, "tier1_gated"), "the step to start")
    victim = _worker_running(started, int(first[0].suffix[1:]))
    kill_worker(victim.pid)  # SIGKILL to the worker and its pool child, mid-step

    # the unacknowledged step is redelivered to the surviving worker and runs again there
    retried = _wait_for(lambda: [f for f in started_files(gate_dir, "tier1_gated")
                                 if f not in first], "the step to start again")
    survivor = _worker_running(started, int(retried[0].suffix[1:]))
    assert survivor is not victim
    release(gate_dir, "tier1_gated")
    result = run.wait()
    assert run.outputs["realised_volatility"] == expected
    assert _celery_worker_of_steps(result)["gated_prices"] == _celery_name(survivor)


def tier1_gated_job_result_in_process(gate_dir: Path) -> float:
    """The job's result without Celery: the reference for a run that lost a worker."""
    release(gate_dir, "reference")
    from dagster import in_process_executor

    job = tier1_gated_job().graph.to_job(name="reference", executor_def=in_process_executor)
    result = job.execute_in_process()
    for path in gate_dir.glob("reference.*"):
        path.unlink()
    return result.output_for_node("realised_volatility")
