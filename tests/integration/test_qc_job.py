"""The pre-open QC job through Dagster: a clean session passes and writes its report; a failed
ingestion unit fails the blocking check and so the run."""

import pandas as pd
import pytest
from dagster import DagsterInstance

from prometheus_dagster.assets.ingestion import MARKET_TABLES
from prometheus_dagster.assets.qc import preopen_qc_asset
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.jobs.daily import jobs_for, qc_job_name
from tests.integration.file_market import load_file_market

M = "US_EQ"
DAYS = ("2024-03-13", "2024-03-14")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from dagster import Definitions

    qc = preopen_qc_asset(M, list(MARKET_TABLES), list(FEATURE_TABLES))
    wh, resources, assets = load_file_market(tmp_path_factory.mktemp("qc"), M, [qc],
                                             "2024-01-02", DAYS[-1])
    defs = Definitions(assets=assets, jobs=jobs_for(assets), resources=resources)
    return wh, defs.resolve_job_def(qc_job_name(M))


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
