"""The research Dagster instance (embedded PostgreSQL, batched event writes, one planned event
per asset): a range backfill marks every partition materialized and writes the same warehouse
rows as on the SQLite instance; a range that fails is shown failed (Dagster's status, the
``failed`` report and the run's alert), not missing."""

import json
import os
import uuid
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DailyPartitionsDefinition,
    asset,
    build_run_status_sensor_context,
    materialize,
)
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from prometheus_dagster.core.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError
from prometheus_dagster.core.instance import (
    ResearchEventLogStorage,
    install_instance_config,
    installed_kind,
)
from prometheus_dagster.sensors.alerts import FileNotifier, run_failure_alerts
from prometheus_dagster.sensors.failed_ranges import failed_ranges
from tests.integration.test_ingestion_embedded import (
    DAYS,
    KEYS,
    MACRO,
    MARKET_TABLES,
    RANGE,
    env,
    table_rows,
    tiny_config,
)


@pytest.fixture(scope="module")
def research(tmp_path_factory):
    """A DAGSTER_HOME with the research instance config on this session's embedded server."""
    home = tmp_path_factory.mktemp("research_home")
    try:
        kind = install_instance_config(home, "postgres")
    except EmbeddedPostgresError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"embedded PostgreSQL cannot run here: {exc}")
    if kind != "postgres":
        pytest.skip("embedded PostgreSQL cannot run here (setup-home fell back to SQLite)")
    instance = DagsterInstance.from_config(str(home))
    yield instance
    instance.dispose()
    EmbeddedPostgres().stop()


@pytest.fixture
def sqlite_instance(tmp_path):
    instance = DagsterInstance.from_config(str(_sqlite_home(tmp_path)))
    yield instance
    instance.dispose()


def _sqlite_home(tmp_path: Path) -> Path:
    home = tmp_path / "sqlite_home"
    home.mkdir()
    assert install_instance_config(home, "sqlite") == "sqlite"
    return home


def _status(instance: DagsterInstance, key: AssetKey, partitions_def) -> tuple[set, set]:
    value = get_and_update_asset_status_cache_value(instance, key, partitions_def)
    return (set(value.deserialize_materialized_partition_subsets(partitions_def)
                .get_partition_keys()),
            set(value.deserialize_failed_partition_subsets(partitions_def).get_partition_keys()))


def _planned_events(instance: DagsterInstance, run_id: str) -> int:
    return len(instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED))


def test_research_instance_is_postgres_with_subset_planning(research):
    assert isinstance(research.event_log_storage, ResearchEventLogStorage)
    assert research.event_log_storage.supports_partition_subset_in_asset_materialization_planned_events  # noqa: E501


def test_range_backfill_marks_every_partition_and_matches_sqlite(research, sqlite_instance,
                                                                 tmp_path):
    config = tiny_config(tmp_path)
    results = {}
    for name, instance in (("pg", research), ("sqlite", sqlite_instance)):
        wh, resources, assets = env(tmp_path, name, config)
        for selection in (KEYS, [MACRO]):
            result = materialize(assets, resources=resources, selection=selection, tags=RANGE,
                                 instance=instance)
            assert result.success
            results[(name, len(selection))] = result.run_id
        results[name] = wh
        partitions = {k: a.partitions_def for a in assets for k in a.keys}
        for key in [*KEYS, MACRO]:
            materialized, failed = _status(instance, key, partitions[key])
            assert materialized == set(DAYS), (name, key)
            assert not failed
    # each partition's materialization: its own row count, the config and the MLflow run
    prices = AssetKey(["US_EQ", "prices_daily"])
    for day in (DAYS[0], DAYS[-1]):
        record = research.fetch_materializations(
            AssetRecordsFilter(asset_key=prices, asset_partitions=[day]), limit=1).records[0]
        meta = record.asset_materialization.metadata
        day_rows = results["pg"].read("prices_daily", where={"date": [pd.Timestamp(day)]})
        assert meta["rows"].value == len(day_rows) > 0
        assert meta["config_id"].value.startswith("ingestion@")
        assert meta["mlflow_run_id"].value in meta["mlflow_url"].value
    # one planned event per asset on the research instance, one per asset-partition on SQLite
    assert _planned_events(research, results[("pg", len(KEYS))]) == len(KEYS)
    assert _planned_events(sqlite_instance, results[("sqlite", len(KEYS))]) == \
        len(KEYS) * len(DAYS)
    for table in [*MARKET_TABLES, "macro_time_series"]:
        pg_rows = table_rows(results["pg"], table, DAYS)
        assert len(pg_rows) > 0 or table == "fundamentals", table
        pd.testing.assert_frame_equal(pg_rows, table_rows(results["sqlite"], table, DAYS),
                                      check_like=True)


DAILY = DailyPartitionsDefinition(start_date="2024-01-01")
BROKEN = {"on": False}


@asset(partitions_def=DAILY, key=AssetKey(["TEST", "fragile"]))
def fragile(context) -> None:
    if BROKEN["on"]:
        raise RuntimeError("source feed rejected the request")


def _range(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last}


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_failed_range_is_reported_failed_not_missing(kind, research, sqlite_instance,
                                                       tmp_path):
    instance = research if kind == "postgres" else sqlite_instance
    key = fragile.key
    instance.wipe_assets([key])
    BROKEN["on"] = False
    assert materialize([fragile], instance=instance, tags=_range("2024-01-01", "2024-01-05"))\
        .success
    BROKEN["on"] = True
    failed_run = materialize([fragile], instance=instance, raise_on_error=False,
                             tags=_range("2024-01-06", "2024-01-15"))
    assert not failed_run.success
    bad = {f"2024-01-{d:02d}" for d in range(6, 16)}

    materialized, failed = _status(instance, key, DAILY)
    assert materialized == {f"2024-01-0{d}" for d in range(1, 6)}
    assert failed == bad  # what the UI shows per partition

    report = [r for r in failed_ranges(instance, prefix="TEST")]
    assert [(r.asset_key, r.first, r.last, r.partitions, r.run_id) for r in report] == [
        ("TEST/fragile", "2024-01-06", "2024-01-15", 10, failed_run.run_id)]
    assert "source feed rejected" in report[0].error

    alerts = tmp_path / "alerts.jsonl"
    sensor = run_failure_alerts(FileNotifier(alerts))
    run = instance.get_run_by_id(failed_run.run_id)
    failure = next(e.dagster_event for e in instance.all_logs(run.run_id)
                   if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE")
    sensor(build_run_status_sensor_context(sensor.name, failure, instance, run)
           .for_run_failure())
    alert = json.loads(alerts.read_text().splitlines()[0])
    assert alert["failed_partitions"] == [
        {"asset": "TEST/fragile", "first": "2024-01-06", "last": "2024-01-15", "count": 10}]

    # a later successful run of part of the range clears those partitions only
    BROKEN["on"] = False
    assert materialize([fragile], instance=instance, tags=_range("2024-01-06", "2024-01-10"))\
        .success
    assert [(r.first, r.last, r.partitions) for r in failed_ranges(instance, prefix="TEST")] \
        == [("2024-01-11", "2024-01-15", 5)]


def test_setup_home_keeps_an_edited_instance_config(tmp_path):
    home = _sqlite_home(tmp_path)
    target = home / "dagster.yaml"
    assert installed_kind(target) == "sqlite"
    target.write_text(target.read_text() + "\n# my own setting\n")
    assert installed_kind(target) is None
    assert install_instance_config(home, "sqlite") == "custom"
    assert target.read_text().endswith("# my own setting\n")


MACHINE_PG = os.environ.get("PROMETHEUS_TEST_POSTGRES_URL",
                            "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def machine_database(monkeypatch):
    """A throwaway database on the machine's PostgreSQL server, named by PROMETHEUS_DAGSTER_PG_URL
    for the research instance; dropped afterwards."""
    try:
        conn = psycopg2.connect(MACHINE_PG, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {MACHINE_PG} ({str(exc).strip()}); start it with "
                    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    conn.autocommit = True
    name = f"prom_dagster_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f'create database "{name}"')
    base = MACHINE_PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    monkeypatch.setenv("PROMETHEUS_DAGSTER_PG_URL", f"{base}/{name}")
    yield name
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
    conn.close()


@pytest.mark.postgres
def test_research_instance_on_the_machine_server(machine_database, tmp_path):
    home = tmp_path / "machine_home"
    home.mkdir()
    assert install_instance_config(home, "postgres") == "postgres"
    instance = DagsterInstance.from_config(str(home))
    try:
        assert machine_database in instance.event_log_storage.postgres_url
        BROKEN["on"] = False
        ok = materialize([fragile], instance=instance, tags=_range("2024-02-01", "2024-02-20"))
        assert ok.success
        assert _planned_events(instance, ok.run_id) == 1
        BROKEN["on"] = True
        assert not materialize([fragile], instance=instance, raise_on_error=False,
                               tags=_range("2024-02-21", "2024-02-29")).success
        materialized, failed = _status(instance, fragile.key, DAILY)
        assert len(materialized) == 20 and len(failed) == 9
    finally:
        BROKEN["on"] = False
        instance.dispose()


def test_setup_home_falls_back_to_sqlite_when_postgres_cannot_run(tmp_path, monkeypatch, capsys):
    import prometheus_dagster.core.instance as instance_module

    def no_server(config=None):
        raise EmbeddedPostgresError("initdb failed: no shared memory")

    monkeypatch.setattr(instance_module, "research_postgres_url", no_server)
    home = tmp_path / "fallback_home"
    home.mkdir()
    assert install_instance_config(home, "postgres") == "sqlite"
    assert installed_kind(home / "dagster.yaml") == "sqlite"
    err = capsys.readouterr().err
    assert "using the SQLite instance" in err and "no shared memory" in err
