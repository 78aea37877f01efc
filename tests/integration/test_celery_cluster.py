"""The Celery deployment for real: Celery workers (RabbitMQ broker, Redis results) run the steps
of the US_EQ daily chain against a PostgreSQL warehouse and PostgreSQL Dagster storage.

Needs PostgreSQL (127.0.0.1:5432), RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379); each
test skips with a message naming the missing one. Every test uses queues of its own (deleted at
the end) so a running `make cluster-up` never takes its work, and stops its workers even when it
fails."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, execute_job, reconstructable
from dagster._core.definitions.reconstruct import ReconstructableJob

from prometheus_dagster.cluster import Worker, start_worker, stop_worker, wait_until_ready
from prometheus_dagster.definitions import build_definitions
from prometheus_dagster.engines.features.schemas import FEATURE_TABLES
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.warehouse import Warehouse
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
    ReconstructableJob.get_definition.cache_clear()  # type: ignore[attr-defined]


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
        for worker in self.started:
            stop_worker(worker.pid, grace_seconds=10)


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
