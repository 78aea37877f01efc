"""The pre-open QC job through Dagster: a clean session passes and writes its report; a failed
ingestion unit fails the blocking check and so the run."""

from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
from prometheus_dagster.assets.qc import preopen_qc_asset
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.jobs.daily import jobs_for, qc_job_name
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source"
M = "US_EQ"
DAYS = ("2024-03-13", "2024-03-14")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from dagster import Definitions, materialize

    tmp = tmp_path_factory.mktemp("qc")
    url = f"duckdb:///{tmp / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="files", files_root=str(FIXTURE))
    assets = [*ingestion_assets([M]), *features_assets([M]),
              preopen_qc_asset(M, list(MARKET_TABLES), list(FEATURE_TABLES))]
    span = {"dagster/asset_partition_range_start": "2024-01-02",
            "dagster/asset_partition_range_end": DAYS[-1]}
    for selection, kw in (
            ([AssetKey([M, "instruments"]), AssetKey([M, "issuers"])], {}),
            ([AssetKey([M, t]) for t in MARKET_TABLES], {"tags": span}),
            ([AssetKey([M, t]) for t in FEATURE_TABLES], {"tags": span})):
        assert materialize(assets, resources=resources, selection=selection, **kw).success
    defs = Definitions(assets=assets, jobs=jobs_for(assets), resources=resources)
    return Warehouse.from_url(url), defs.resolve_job_def(qc_job_name(M))


def test_clean_session_passes_and_is_reported(env):
    wh, job = env
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(),
                                    partition_key=DAYS[0])
    assert result.success
    report = wh.read("qc_reports", where={"date": DAYS[0]})
    assert set(report["check_name"]) == {"ingestion", "outputs", "decisions", "exposures"}
    assert "FAIL" not in set(report["status"])
    assert (report[report["check_name"] == "outputs"]["status"] != "FAIL").all()


def test_failed_ingestion_unit_fails_the_run(env):
    wh, job = env
    now = pd.Timestamp.now(tz="UTC")
    wh.append("ingestion_runs", pd.DataFrame([{
        "ingestion_run_id": "test-failed-unit", "market_id": M, "date": DAYS[1],
        "source": "files", "table_name": "prices_daily", "status": "FAILED", "row_count": 0,
        "warnings": "[]", "error": "prices_daily.csv line 7: high < low",
        "started_at": now, "finished_at": now}]))
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(),
                                    partition_key=DAYS[1], raise_on_error=False)
    assert not result.success
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and not checks[0].event_specific_data.passed
    report = wh.read("qc_reports", where={"date": DAYS[1]})
    failed = report[report["status"] == "FAIL"]
    assert list(failed["subject"]) == ["prices_daily"]
    assert "high < low" in failed["detail"].iloc[0]
