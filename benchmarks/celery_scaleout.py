"""Celery scale-out: the same short backfill of the US_EQ daily chain's data stages (ingestion
of prices, corporate actions and fundamentals, then features) on 1 and then 2 Celery workers of
the tier-1 queue, against PostgreSQL (warehouse and Dagster storage), RabbitMQ and Redis on
loopback.

    .venv/bin/python -m benchmarks.celery_scaleout [--sessions 4] [--workers 1,2]

One run per session, in date order (features read the earlier sessions' prices); a first
session, untimed, makes every worker build the job once. Reported per worker count: wall
seconds of the timed sessions (workers already started), the seconds the steps ran inside the
workers (sum over steps) and the rest (Celery hand-off, the run's executor, Dagster's storage),
and the speed-up against one worker. Each worker count gets fresh databases and queues.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # types-PyYAML is not installed

from benchmarks.common import REPO
from prometheus_dagster.cluster import start_worker, stop_workers, wait_until_ready
from prometheus_dagster.definitions import build_definitions

FIXTURE = REPO / "tests" / "fixtures" / "file_source"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
BACKEND = "redis://127.0.0.1:6379/0"
PG = "postgresql://postgres@127.0.0.1:5432"
FIRST_SESSION = "2024-02-05"
TABLES = ["prices_daily", "corporate_actions", "fundamentals", "returns_daily",
          "volatility_daily", "liquidity_daily", "factors_daily", "instrument_factors_daily",
          "market_correlation_daily"]


def us_eq_daily_job():  # noqa: ANN201 (reconstructed by the workers from this module)
    return build_definitions().resolve_job_def("US_EQ_daily")


def _sessions(count: int) -> list[str]:
    from prometheus_dagster.core.partitions import partitions_def_for

    keys = partitions_def_for("US_EQ").get_partition_keys()
    start = keys.index(FIRST_SESSION)
    return list(keys[start:start + count])


def _create_db(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{PG}/postgres")
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()


def _drop_db(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{PG}/postgres")
    conn.autocommit = True
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def _step_seconds(instance, run_id: str) -> float:  # noqa: ANN001
    """Seconds between each step's start and end events, summed over the run's steps."""
    starts, total = {}, 0.0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") \
                and event.step_key in starts:
            total += entry.timestamp - starts.pop(event.step_key)
    return total


def measure(worker_count: int, sessions: list[str], tmp: Path) -> dict:
    from dagster import AssetKey, DagsterInstance, execute_job, reconstructable
    from dagster._core.definitions.reconstruct import ReconstructableJob
    from kombu import Connection

    from prometheus_dagster.engines.ingestion.file_source import FileSource
    from prometheus_dagster.resources.warehouse import Warehouse

    tag = uuid.uuid4().hex[:8]
    db = f"prometheus_bench_celery_{tag}"
    _create_db(db)
    home = tmp / f"home-{worker_count}"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        "storage": {"postgres": {"postgres_db": {
            "username": "postgres", "password": "", "hostname": "127.0.0.1", "db_name": db,
            "port": 5432, "scheme": "postgresql+psycopg2"}}}}))
    queue = f"bench-tier1-{tag}"
    config = tmp / f"celery-{worker_count}.yaml"
    config.write_text(yaml.safe_dump({"execution": {"config": {
        "broker": BROKER, "backend": BACKEND, "tier_queues": {"1": queue},
        "config_source": {"task_acks_late": True, "task_reject_on_worker_lost": True,
                          "worker_prefetch_multiplier": 1}}}}))
    env = {"DAGSTER_HOME": str(home), "PROMETHEUS_WAREHOUSE_URL": f"{PG}/{db}",
           "PROMETHEUS_SOURCE": "files", "PROMETHEUS_FILES_ROOT": str(FIXTURE),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / f'mlflow-{worker_count}.db'}",
           "PROMETHEUS_CELERY_CONFIG": str(config)}
    os.environ.update(env)
    ReconstructableJob.get_definition.cache_clear()
    workers = [start_worker(f"bench{worker_count}-{i}", [queue], config, tmp / "cluster")
               for i in range(worker_count)]
    try:
        for worker in workers:
            wait_until_ready(worker)
        ref = FileSource(FIXTURE).reference("US_EQ")
        Warehouse.from_url(env["PROMETHEUS_WAREHOUSE_URL"]).replace_all(
            "instruments", ref["instruments"], where={"market_id": "US_EQ"})
        selection = [AssetKey(["US_EQ", t]) for t in TABLES]
        job = reconstructable(us_eq_daily_job)
        job.get_definition()  # built once here, outside the timed backfill
        run_ids = []
        with DagsterInstance.get() as instance:
            # the first session, untimed, builds the job once in every worker
            warm = execute_job(job, instance=instance, asset_selection=selection,
                               tags={"dagster/partition": sessions[0]})
            if not warm.success:
                raise RuntimeError(f"{sessions[0]}: the warm-up run failed")
            started = time.perf_counter()
            for session in sessions[1:]:
                result = execute_job(job, instance=instance, asset_selection=selection,
                                     tags={"dagster/partition": session})
                if not result.success:
                    raise RuntimeError(f"{session}: the run failed")
                run_ids.append(result.run_id)
            wall = time.perf_counter() - started
            inside = sum(_step_seconds(instance, run_id) for run_id in run_ids)
    finally:
        stop_workers([w.pid for w in workers], grace_seconds=10)
        with Connection(BROKER) as conn:
            conn.channel().queue_delete(queue)
        _drop_db(db)
    return {"workers": worker_count, "sessions": len(sessions) - 1, "wall_s": round(wall, 1),
            "step_s": round(inside, 1), "rest_s": round(wall - inside, 1)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=4, help="timed sessions")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args(argv)
    sessions = _sessions(args.sessions + 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="celery-scaleout-") as tmp:
        for count in [int(n) for n in args.workers.split(",")]:
            row = measure(count, sessions, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["wall_s"]
    for row in rows:
        row["speedup"] = round(base / row["wall_s"], 2)
    print(f"{'workers':>7} {'wall s':>8} {'in steps s':>10} {'rest s':>8} {'speed-up':>8}")
    for row in rows:
        print(f"{row['workers']:>7} {row['wall_s']:>8} {row['step_s']:>10} {row['rest_s']:>8} "
              f"{row['speedup']:>8}")
    out = REPO / "benchmarks" / "results" / "celery_scaleout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"load_average": os.getloadavg(), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
