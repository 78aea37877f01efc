"""The research plan over years, without running it: refits before the dates they serve,
GLOBAL after the regions, the stages in the order the engines need; ``--plan`` writes nothing;
the time estimates."""

from __future__ import annotations

import pandas as pd
import pytest

from prometheus_dagster import research_plan as rp
from prometheus_dagster.core.research_config import RunCost, research_config
from prometheus_dagster.research_estimate import Estimator, fit

T = pd.Timestamp
START, END = T("2021-03-15"), T("2024-06-28")


@pytest.fixture(scope="module")
def defs():
    from prometheus_dagster.definitions import build_definitions

    return build_definitions()


@pytest.fixture(scope="module")
def stages(defs):
    return rp.plan_stages(defs, T("2020-01-02"), START, END, ("US_EQ", "EU_EQ"),
                          backtests=(("US_EQ", "core_equity_long_only"),
                                     ("EU_EQ", "core_equity_long_only")),
                          max_sessions=40, fragility_after_years=2)


def _span(task):
    return T(task.tags[rp.RANGE_START]), T(task.tags[rp.RANGE_END])


def test_every_daily_chain_comes_after_the_refits_serving_it(defs, stages):
    scheduled: dict[tuple[str, str], int] = {}
    daily_seen = 0
    for i, (_, tasks) in enumerate(stages):
        for t in tasks:
            if t.partition_key and t.job.endswith("_training"):
                scheduled[(t.job, t.partition_key)] = i
            if t.kind != "daily":
                continue
            daily_seen += 1
            first, _ = _span(t)
            market = t.job.removesuffix("_daily")
            for job in rp._training_jobs(defs, {market, "GLOBAL", "FX_GLOB"}, fragility=False):
                key = rp._partition_for(job, first)
                # trained strictly before the dates it serves, and run before them
                assert T(key) <= first
                assert scheduled.get((job.name, key), len(stages)) < i, (job.name, key, t.label)
    assert daily_seen > 20
    quarters = {k for (j, k) in scheduled if j == "US_EQ_regime_training"}
    assert {"2021-01-01", "2021-04-01", "2024-04-01"} <= quarters and len(quarters) == 14
    fragility = sorted(k for (j, k) in scheduled if j == "US_EQ_fragility_training")
    assert fragility == ["2024-01-01"]  # two years after the start, not before


def test_global_runs_after_the_regions_of_each_period(stages):
    regional: dict[str, int] = {}
    for i, (name, tasks) in enumerate(stages):
        if name.startswith("daily chains "):
            assert all(t.kind != "global" for t in tasks)
            regional[name.removeprefix("daily chains ")] = i
        if any(t.kind == "global" for t in tasks):
            assert regional[name.removeprefix("GLOBAL_daily ")] == i - 1
    assert len(regional) > 20


def test_stages_follow_the_engines_order(stages):
    names = [n for n, _ in stages]
    assert names[0] == "reference data" and names[1].startswith("history 2020-01-02")
    assert names[-2] == "pre-open checks and backtests" and names[-1] == "daily brief"
    kinds = [t.kind for _, tasks in stages for t in tasks]
    assert kinds.index("history") < kinds.index("model_training") < kinds.index("daily") \
        < kinds.index("global") < kinds.index("backtest") < kinds.index("brief")
    markets = {t.job.split("_daily")[0] for _, tasks in stages for t in tasks}
    assert {"US_EQ", "EU_EQ", "FX_GLOB", "GLOBAL"} <= markets
    backtests = [t for t in stages[-2][1] if t.kind == "backtest"]
    assert [t.job for t in backtests] == ["US_EQ_backtest", "EU_EQ_backtest"]


def test_periods_cover_the_range_in_pieces(defs):
    pieces = rp.periods(defs, START, END, None, 40)
    assert pieces[0][0] == START and pieces[-1][1] == END
    for (_, b), (a, _) in zip(pieces, pieces[1:], strict=False):
        assert a == b + pd.Timedelta(days=1)
    assert max(len(pd.bdate_range(a, b)) for a, b in pieces) <= 40
    assert {T("2022-01-01"), T("2022-04-01")} <= {a for a, _ in pieces}  # refit boundaries


def test_markets_are_checked(defs):
    only_eu = rp.plan_stages(defs, START, START, T("2021-03-31"), ("EU_EQ",), backtests=())
    jobs = {t.job for _, tasks in only_eu for t in tasks}
    assert "EU_EQ_daily" in jobs and "FX_GLOB_daily" in jobs and "GLOBAL_daily" in jobs
    assert not any(j.startswith("US_EQ") for j in jobs)
    with pytest.raises(ValueError, match="FX_GLOB is not an investment market"):
        rp.plan_stages(defs, START, START, END, ("FX_GLOB",))


def test_data_that_starts_late_leaves_out_refits_and_empty_markets(defs):
    """Files from 2024-01-02 (the warm-up's first day) on: the refits of 2024-01-01 would
    train on nothing and a market without files would ingest nothing; both are left out,
    and said."""
    plan = rp.plan_stages(defs, T("2024-01-02"), T("2024-02-01"), T("2024-03-28"),
                          ("US_EQ",), backtests=(), without_data=("FX_GLOB",))
    jobs = {t.job for _, tasks in plan for t in tasks}
    assert not any(j.endswith("_training") for j in jobs)
    assert "US_EQ_daily" in jobs and not any(j.startswith("FX_GLOB") for j in jobs)
    refit_stage = next(name for name, _ in plan if name.startswith("refits"))
    assert "left out, no data before their period: the data starts 2024-01-02" in refit_stage
    assert "US_EQ_model_training" in refit_stage
    # a warm-up that starts before the period keeps its refits
    kept = rp.plan_stages(defs, T("2023-06-01"), T("2024-02-01"), T("2024-03-28"),
                          ("US_EQ",), backtests=())
    assert "US_EQ_model_training" in {t.job for _, tasks in kept for t in tasks}


def test_plan_prints_estimates_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from prometheus_dagster import cli

    home = tmp_path / "home"
    monkeypatch.setenv("PROMETHEUS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    monkeypatch.delenv("PROMETHEUS_WAREHOUSE_URL", raising=False)
    code = cli.main(["research", "--markets", "US_EQ,EU_EQ", "--start", "2021-01-04",
                     "--end", "2022-12-30", "--plan"])
    out = capsys.readouterr().out
    assert code == 0
    assert "stage   1  reference data" in out and "US_EQ_model_training" in out
    assert "2022-01-01" in out and "estimated" in out and "default" in out
    assert not home.exists()  # no warehouse, no instance, no run


def test_cost_lines():
    default = RunCost(fixed=10, per_partition=1)
    line = fit([(10, 30.0), (20, 50.0), (30, 70.0)], default)
    assert line.fixed == pytest.approx(10) and line.per_partition == pytest.approx(2)
    scaled = fit([(10, 40.0)], default)  # twice the default at this size: twice the line
    assert scaled.fixed == pytest.approx(20) and scaled.per_partition == pytest.approx(2)
    est = Estimator(research_config())
    from prometheus_dagster.demo_pool import JobTask

    tasks = [JobTask(str(i), "X_daily", kind="daily", partitions=10) for i in range(3)]
    one = est.seconds(tasks[0])
    assert est.stage_seconds(tasks, 2) == pytest.approx(2 * one)
    assert est.stage_seconds(tasks, 1) == pytest.approx(3 * one)
