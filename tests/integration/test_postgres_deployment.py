"""A shared deployment: one partition of the US_EQ daily job runs end to end with the
multiprocess executor, with Dagster's runs and event logs in PostgreSQL (dagster-postgres) and
the warehouse in PostgreSQL too. Needs the server at 127.0.0.1:5432 (see README)."""

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance, execute_job, reconstructable

from prometheus_dagster.resources.warehouse import Warehouse
from tests.integration.pg_daily_job import us_eq_daily_job
from tests.services import throwaway_postgres_database

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source"
pytestmark = pytest.mark.postgres


@pytest.fixture()
def pg_database() -> Iterator[str]:
    with throwaway_postgres_database("prometheus_test") as name:
        yield name


def test_daily_job_partition_runs_on_postgres_with_multiprocess_executor(
    pg_database, tmp_path, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(f"""
telemetry:
  enabled: false
storage:
  postgres:
    postgres_db:
      username: postgres
      password: ""
      hostname: 127.0.0.1
      db_name: {pg_database}
      port: 5432
      scheme: postgresql+psycopg2
""")
    warehouse_url = f"postgresql://postgres@127.0.0.1:5432/{pg_database}"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("PROMETHEUS_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("PROMETHEUS_SOURCE", "files")
    monkeypatch.setenv("PROMETHEUS_FILES_ROOT", str(FIXTURE))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # reference data first (unpartitioned), then one partition of the daily chain
    wh = Warehouse.from_url(warehouse_url)
    from prometheus_dagster.engines.ingestion.file_source import FileSource

    ref = FileSource(FIXTURE).reference("US_EQ")
    wh.replace_all("instruments", ref["instruments"], where={"market_id": "US_EQ"})
    with DagsterInstance.get() as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        result = execute_job(
            reconstructable(us_eq_daily_job), instance=instance,
            tags={"dagster/partition": "2024-02-05"},
            run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        run_id = result.run_id
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert {"US_EQ__prices_daily", "US_EQ_features", "US_EQ__target_portfolios",
                "US_EQ__paper_execution"} <= steps
        # the run and its event log are stored in PostgreSQL
        assert instance.get_run_by_id(run_id).is_success
        assert instance.all_logs(run_id)
    with psycopg2.connect(f"postgresql://postgres@127.0.0.1:5432/{pg_database}") as conn:
        cur = conn.cursor()
        cur.execute("select count(*) from runs where run_id = %s", (run_id,))
        assert cur.fetchone()[0] == 1
        cur.execute("select count(*) from event_logs where run_id = %s", (run_id,))
        assert cur.fetchone()[0] > 10
        cur.execute("select count(*) from prices_daily where date = '2024-02-05'")
        assert cur.fetchone()[0] == 6
        cur.execute("select count(*) from returns_daily where date = '2024-02-05'")
        assert cur.fetchone()[0] >= 5
    assert os.environ["DAGSTER_HOME"] == str(home)
