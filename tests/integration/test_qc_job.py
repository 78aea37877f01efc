"""The pre-open QC job through Dagster: a clean session passes and writes its report; a failed
ingestion unit fails the blocking check and so the run; a session whose data never arrived is
stale."""

import re

import pandas as pd
import pytest
from dagster import DagsterInstance

from prometheus_dagster.assets.ingestion import MARKET_TABLES
from prometheus_dagster.assets.qc import preopen_qc_asset
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.jobs.daily import jobs_for, qc_job_name
from prometheus_dagster.steps.qc import preopen_checks
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
    assert set(report["check_name"]) == {"ingestion", "outputs", "decisions", "exposures",
                                         "freshness"}
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
    # the session's prices were refused, so the newest delivered prices are a session old
    assert sorted(zip(failed["check_name"], failed["subject"], strict=True)) == [
        ("freshness", "prices_daily"), ("ingestion", "prices_daily")]
    assert "high < low" in failed[failed["check_name"] == "ingestion"]["detail"].iloc[0]


def test_session_without_new_data_is_stale(env):
    wh, _ = env
    after = pd.Timestamp("2024-03-15")  # the session after the last one ingested
    report = preopen_checks(wh, M, [after], list(MARKET_TABLES), list(FEATURE_TABLES), {},
                            macro_roles={"commodity": ["OIL", "WTI"]})
    fresh = report[report["check_name"] == "freshness"].set_index("subject")
    assert fresh.loc["prices_daily", "status"] == "FAIL"
    # 2024-03-14, or 03-13 once the failed-unit test refused 03-14's prices
    assert re.search(r"newest 2024-03-1[34], [12] sessions old \(limit 0\)",
                     fresh.loc["prices_daily", "detail"])
    assert fresh.loc["prices_daily/instruments", "status"] == "FAIL"
    assert fresh.loc["prices_daily/instruments", "detail"].startswith("6 of 6")
    assert fresh.loc["fundamentals", "status"] == "PASS"
    # no macro series were ingested here: the role the regimes would read is skipped, named
    assert fresh.loc["macro/commodity", "status"] == "SKIP"
