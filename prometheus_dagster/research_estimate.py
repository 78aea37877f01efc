"""Time estimates of a research plan.

A run's cost is ``fixed + per_partition x partitions`` for its job and kind (``daily``,
``history``, ``regime_training``...). Measured first: the successful runs of that job and kind
on the Dagster instance (the research command tags them with both and with their partition
count), their time being the sum of their steps' durations (Dagster's step stats). Two or more
runs of different sizes give a least-squares line; runs of one size scale the default line by
their mean ratio to it. Without measurements: ``default_costs`` of configs/research.yaml. A
stage's time is its tasks' costs spread over the workers (each task to the least-loaded
worker, in submission order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_dagster.core.research_config import ResearchConfig, RunCost
from prometheus_dagster.demo_pool import JobTask

KIND_TAG = "prometheus/research_kind"
PARTITIONS_TAG = "prometheus/research_partitions"
MEASURED_RUNS = 20  # the latest successful runs per job and kind that an estimate reads


def fit(samples: Sequence[tuple[int, float]], default: RunCost) -> RunCost:
    """The cost line through (partitions, seconds) samples (see the module docstring)."""
    sizes = {n for n, _ in samples}
    if len(sizes) >= 2:
        mean_n = sum(n for n, _ in samples) / len(samples)
        mean_s = sum(s for _, s in samples) / len(samples)
        var = sum((n - mean_n) ** 2 for n, _ in samples)
        slope = max(0.0, sum((n - mean_n) * (s - mean_s) for n, s in samples) / var)
        return RunCost(fixed=max(0.0, mean_s - slope * mean_n), per_partition=slope)
    ratios = [s / default.seconds(n) for n, s in samples if default.seconds(n) > 0]
    if not ratios:
        return default
    factor = sum(ratios) / len(ratios)
    return RunCost(fixed=default.fixed * factor, per_partition=default.per_partition * factor)


class Estimator:
    """Seconds per task: measured on ``instance`` when it holds runs of the task's job and kind
    (None: defaults only)."""

    def __init__(self, config: ResearchConfig, instance: Any | None = None) -> None:
        self.config = config
        self.instance = instance
        self._costs: dict[tuple[str, str], tuple[RunCost, bool]] = {}

    def cost(self, job: str, kind: str) -> tuple[RunCost, bool]:
        """(cost line, measured?) of ``job`` runs of ``kind``."""
        key = (job, kind)
        if key not in self._costs:
            default = self.config.default_cost(kind)
            samples = self._samples(job, kind)
            self._costs[key] = (fit(samples, default), True) if samples else (default, False)
        return self._costs[key]

    def _samples(self, job: str, kind: str) -> list[tuple[int, float]]:
        if self.instance is None or not kind:
            return []
        from dagster import DagsterRunStatus, RunsFilter

        runs = self.instance.get_runs(
            filters=RunsFilter(job_name=job, statuses=[DagsterRunStatus.SUCCESS],
                               tags={KIND_TAG: kind}), limit=MEASURED_RUNS)
        samples = []
        for run in runs:
            stats = self.instance.get_run_step_stats(run.run_id)
            seconds = sum(s.end_time - s.start_time for s in stats
                          if s.end_time is not None and s.start_time is not None)
            samples.append((int(run.tags.get(PARTITIONS_TAG, "1")), seconds))
        return samples

    def seconds(self, task: JobTask) -> float:
        """The estimated seconds of ``task`` and the tasks chained after it."""
        return sum(self.cost(t.job, t.kind)[0].seconds(t.partitions)
                   for t in (task, *task.then))

    def measured(self, task: JobTask) -> bool:
        return all(self.cost(t.job, t.kind)[1] for t in (task, *task.then))

    def stage_seconds(self, tasks: Sequence[JobTask], workers: int) -> float:
        """The time of a stage: each task to the least-loaded of ``workers``."""
        loads = [0.0] * max(1, workers)
        for task in tasks:
            loads[loads.index(min(loads))] += self.seconds(task)
        return max(loads)


def format_seconds(seconds: float) -> str:
    """``42s``, ``7m05s``, ``3h12m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
