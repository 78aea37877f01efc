"""What the research command prints: the plan (``--plan``), a progress line per finished unit
(plain lines: they read the same in a terminal and in a log file) and the final summary."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_dagster.demo_pool import JobOutcome, JobTask
from prometheus_dagster.research_estimate import Estimator, format_seconds
from prometheus_dagster.research_plan import RANGE_END, RANGE_START, Stages


def _partitions(task: JobTask) -> str:
    if task.tags and RANGE_START in task.tags:
        return f"{task.tags[RANGE_START]}...{task.tags[RANGE_END]}"
    return task.partition_key or "-"


def _selection(task: JobTask) -> str:
    if task.selection is None:
        return "all assets"
    if len(task.selection) == 1:
        return task.selection[0]
    return f"{len(task.selection)} assets"


def print_plan(stages: Stages, estimator: Estimator, workers: int, request: Any) -> None:
    """Stages, their runs (job, partitions, count) and estimated times."""
    from prometheus_dagster.research_plan import plan_markets

    markets = sorted(plan_markets(request.markets))
    print(f"==> Research plan {request.plan_id()}: {request.start:%Y-%m-%d} .. "
          f"{request.end:%Y-%m-%d}, markets {', '.join(markets)}; tier {request.tier}; "
          f"{workers} worker process(es); nothing is run (--plan)")
    total, runs, parts, defaults = 0.0, 0, 0, 0
    for i, (name, tasks) in enumerate(stages, 1):
        seconds = estimator.stage_seconds(tasks, workers)
        total += seconds
        units = [u for t in tasks for u in (t, *t.then)]
        runs += len(units)
        parts += sum(u.partitions for u in units)
        print(f"\nstage {i:>3}  {name}  ({len(units)} run(s), ~{format_seconds(seconds)})")
        for task in tasks:
            for unit in (task, *task.then):
                cost, measured = estimator.cost(unit.job, unit.kind)
                defaults += not measured
                print(f"    {unit.job:<28} {unit.kind or '-':<20} {_partitions(unit):<23} "
                      f"{unit.partitions:>5} partition(s)  "
                      f"{format_seconds(cost.seconds(unit.partitions)):>7} "
                      f"{'measured' if measured else 'default'}  {_selection(unit)}")
    print(f"\n==> {len(stages)} stages, {runs} runs, {parts:,} partitions; estimated "
          f"{format_seconds(total)} with {workers} worker(s) ({runs - defaults} run(s) timed "
          f"from this instance's past runs, {defaults} from configs/research.yaml "
          "default_costs)")


@dataclass
class StageRecord:
    name: str
    units: int
    skipped: int
    seconds: float = 0.0
    failed: int = 0


class Progress:
    """Progress lines: done/total units of the stage, elapsed, the stage's ETA (its remaining
    estimated work, at the pace of its finished work) and the plan's (the later stages'
    estimates, scaled by how the finished stages compared with theirs)."""

    def __init__(self, stages: Stages, estimator: Estimator, workers: int) -> None:
        self.stages = stages
        self.estimator = estimator
        self.workers = workers
        self.estimates = [estimator.stage_seconds(t, workers) for _, t in stages]
        self.records: list[StageRecord] = []
        self._pace_actual = self._pace_estimated = 0.0
        self.t0 = time.perf_counter()

    def start(self, index: int, todo: Sequence[JobTask]) -> None:
        name, tasks = self.stages[index]
        self.index = index
        self.record = StageRecord(name, len(tasks), len(tasks) - len(todo))
        self.records.append(self.record)
        self.weights = {t.label: self.estimator.seconds(t) for t in todo}
        self.left = sum(self.weights.values())
        self.finished = 0.0
        self.ran = 0
        self.t_stage = time.perf_counter()
        skipped = f", {self.record.skipped} already done (skipped)" if self.record.skipped \
            else ""
        print(f"==> stage {index + 1}/{len(self.stages)} {name}: {len(todo)} unit(s) to run"
              f"{skipped}, ~{format_seconds(self.estimator.stage_seconds(todo, self.workers))}",
              flush=True)

    def done(self, outcome: JobOutcome) -> None:
        rec = self.record
        rec.failed += not outcome.ok
        self.ran += 1
        weight = self.weights.get(outcome.label, 0.0)
        self.finished += weight
        self.left -= weight
        elapsed = time.perf_counter() - self.t_stage
        done = rec.skipped + self.ran
        stage_eta = elapsed * self.left / self.finished if self.finished > 0 else self.left
        later = sum(self.estimates[self.index + 1:]) * self._pace()
        print(f"    [{rec.name}] {done}/{rec.units} units done"
              f"{f', {rec.failed} failed' if rec.failed else ''}; stage {format_seconds(elapsed)}"
              f" elapsed, ETA {format_seconds(stage_eta)}; plan ETA "
              f"{format_seconds(stage_eta + later)} (running "
              f"{format_seconds(time.perf_counter() - self.t0)})", flush=True)

    def _pace(self) -> float:
        return self._pace_actual / self._pace_estimated if self._pace_estimated > 0 else 1.0

    def finish(self) -> None:
        self.record.seconds = time.perf_counter() - self.t_stage
        if self.finished > 0:
            self._pace_actual += self.record.seconds
            self._pace_estimated += self.finished / self.workers
        print(f"    -- {self.record.name}: {format_seconds(self.record.seconds)}", flush=True)


def _print_mlflow() -> None:
    from prometheus_dagster.core.paths import mlflow_tracking_uri
    from prometheus_dagster.resources import build_resources

    mlflow = build_resources()["mlflow"]
    experiments = mlflow.client().search_experiments()
    print(f"\n==> MLflow: tracking URI {mlflow_tracking_uri()}")
    for e in sorted(experiments, key=lambda e: e.name):
        print(f"    experiment {e.experiment_id:>4}  {e.name:<36} "
              f"{mlflow.ui_url.rstrip('/')}/#/experiments/{e.experiment_id}")


def _print_tear_sheets(wh: Any) -> None:
    from prometheus_dagster.resources import build_resources

    if not wh.table_exists("backtest_runs"):
        return
    runs = wh.read("backtest_runs", columns=["backtest_id", "mlflow_run_id"])
    client = build_resources()["mlflow"].client()
    if len(runs):
        print("\n==> Backtest tear sheets")
    for r in runs.itertuples():
        uri = client.get_run(r.mlflow_run_id).info.artifact_uri if r.mlflow_run_id else ""
        print(f"    {r.backtest_id}: {uri}/tear_sheet.html" if uri else
              f"    {r.backtest_id}: no MLflow run")


def print_summary(failed: Sequence[JobOutcome], progress: Progress) -> None:
    """Time per stage, rows per table, failed units, MLflow experiments, tear sheets."""
    from prometheus_dagster.demo import print_failed_partitions, print_warehouse
    from prometheus_dagster.resources.warehouse import Warehouse

    wh = Warehouse.default()
    print_warehouse(wh)
    print(f"    ({wh!r}; query it: python -m prometheus_dagster.cli sql \"select ...\")")
    _print_mlflow()
    _print_tear_sheets(wh)
    print("\n==> Stages (time, units run / skipped / failed)")
    for r in progress.records:
        print(f"    {r.name:<52} {format_seconds(r.seconds):>8}  {r.units - r.skipped:>4} run"
              f" / {r.skipped:>4} skipped / {r.failed:>3} failed")
    total = time.perf_counter() - progress.t0
    if failed:
        print(f"\n==> {len(failed)} failed unit(s) (run the same command again to retry them)")
        for o in failed:
            print(f"    {o.label} (run {o.run_id[:8]})")
            for line in o.failures[:3]:
                print(f"      {line[:300]}")
        print_failed_partitions()
    print(f"\n==> research done in {format_seconds(total)}: "
          + ("every unit succeeded" if not failed else f"{len(failed)} unit(s) failed"),
          flush=True)
