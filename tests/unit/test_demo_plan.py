"""The demo's plan: which history it loads, which jobs run side by side and in what order,
and how many worker processes it uses."""

from __future__ import annotations

import pandas as pd
import pytest

from prometheus_dagster import demo
from prometheus_dagster.demo_pool import WORKERS_ENV, JobRunner, JobTask, default_workers

T = pd.Timestamp


@pytest.fixture(scope="module")
def defs():
    from prometheus_dagster.definitions import build_definitions

    return build_definitions()


def test_text_history_covers_the_encoder_training_data_and_the_news_lookback():
    # profiles read 90 days of news before the window; encoders train on data before Jan 1
    got = demo.text_ranges(T("2023-04-10"), T("2024-11-30"), T("2024-01-01"))
    assert got == [(T("2023-04-10"), T("2023-12-31")), (T("2024-09-01"), T("2024-11-29"))]
    # overlapping ranges merge; no encoder refit: only the look-back
    assert demo.text_ranges(T("2023-04-10"), T("2024-02-01"), T("2024-01-01")) == \
        [(T("2023-04-10"), T("2024-01-31"))]
    assert demo.text_ranges(T("2023-04-10"), T("2024-11-30"), None) == \
        [(T("2024-09-01"), T("2024-11-29"))]


def test_history_tasks_chain_each_markets_text_after_its_data(defs):
    tasks = demo.history_tasks(defs, T("2023-04-10"), T("2024-11-29"),
                               [(T("2023-04-10"), T("2023-12-31"))])
    markets = [t.job.removesuffix("_daily") for t in tasks]
    assert markets[:3] == ["US_EQ", "EU_EQ", "FX_GLOB"]  # the heaviest go first
    us = tasks[0]
    assert us.ephemeral and all(t.ephemeral for t in us.then)
    assert "US_EQ/prices_daily" in us.selection and "US_EQ/text_embeddings" not in us.selection
    assert [t.selection for t in us.then] == [("US_EQ/text_embeddings",)]
    assert us.then[0].tags["dagster/asset_partition_range_end"] <= "2023-12-31"


def test_daily_tasks_run_the_regions_heaviest_first_and_global_after(defs):
    regional, global_task = demo.daily_tasks(defs, T("2024-11-30"), T("2024-12-31"))
    assert [t.job for t in regional][:3] == ["US_EQ_daily", "EU_EQ_daily", "FX_GLOB_daily"]
    assert global_task is not None and global_task.job == "GLOBAL_daily"
    assert demo.BRIEF.to_user_string() not in global_task.selection
    assert demo.MACRO.to_user_string() not in global_task.selection
    us = regional[0]
    assert "US_EQ/paper_execution" in us.selection
    assert us.tags == {"dagster/asset_partition_range_start": "2024-12-02",
                       "dagster/asset_partition_range_end": "2024-12-31"}


def test_training_and_closing_tasks(defs):
    training, cutoff = demo.training_tasks(defs, T("2024-11-30"))
    names = [t.job for t in training]
    assert cutoff == T("2024-01-01")
    assert not any(n.endswith("_fragility_training") for n in names)
    assert names[:2] == ["EU_EQ_model_training", "US_EQ_model_training"]  # slowest first
    assert {"US_EQ_assessment_training", "GLOBAL_regime_training"} <= set(names)
    closing = demo.closing_tasks(defs, T("2024-11-30"), T("2024-12-31"))
    assert closing[0].job == "US_EQ_backtest"
    cfg = closing[0].run_config["ops"]["US_EQ__backtest_runs"]["config"]
    assert cfg["strict"] and cfg["strategy_id"] == demo.DEMO_BACKTEST_STRATEGY
    assert {t.job for t in closing[1:]} == {"US_EQ_preopen_qc", "EU_EQ_preopen_qc",
                                            "FX_GLOB_preopen_qc"}


def test_workers_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=WORKERS_ENV):
            default_workers()
    monkeypatch.delenv(WORKERS_ENV)
    assert 1 <= default_workers() <= 4


def test_one_worker_runs_the_tasks_here_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("PROMETHEUS_HOME", str(tmp_path / "home"))
    with JobRunner(1) as runner:
        out = runner.run([JobTask("reference", "reference_data", ephemeral=True)])
    assert [o.label for o in out] == ["reference"] and out[0].ok, out[0].failures
    printed = capsys.readouterr().out
    assert "==> reference" in printed and "ok     reference" in printed
