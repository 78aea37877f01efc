"""Failed partition ranges: the asset partitions whose latest run failed, grouped per asset and
run, so that a failed backfill is reported as failed and never mistaken for a missing one.

The answer is the one the Dagster UI gives (a partition planned by a run that failed and not
materialized since) on either instance; on the research instance it holds because its event
log marks a failed run's unmaterialized partitions when the failure is stored
(``core.instance``). ``prometheus failed`` prints it; run-failure alerts carry the ranges of
their run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.storage.dagster_run import RunsFilter

from prometheus_dagster.core.instance import (
    PLAN_AND_MATERIALIZE_EVENTS,
    unmaterialized_planned_partitions,
)


@dataclass(frozen=True)
class FailedRange:
    asset_key: str
    run_id: str
    first: str
    last: str
    partitions: int
    error: str

    def describe(self) -> str:
        span = self.first if self.partitions == 1 else f"{self.first}...{self.last}"
        return f"{self.asset_key} {span} ({self.partitions} partitions), run {self.run_id[:8]}"


def _first_error(instance: DagsterInstance, run_id: str) -> str:
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = entry.get_dagster_event().step_failure_data
        if data and data.error:
            cause = data.error.cause or data.error
            return cause.message.strip().splitlines()[0][:300] if cause.message else ""
    return ""


def failed_ranges(instance: DagsterInstance, prefix: str | None = None) -> list[FailedRange]:
    """Every asset partition whose latest planned run failed and that has not been
    materialized since, as (asset, run) ranges; ``prefix`` keeps assets under one key
    prefix (e.g. ``US_EQ``)."""
    storage = instance.event_log_storage
    keys = instance.get_asset_keys(prefix=[prefix] if prefix else None)
    pending: dict[tuple[AssetKey, str], list[str]] = {}
    for key in keys:
        attempts = storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)  # noqa: E501
        for partition, (run_id, _) in attempts.items():
            pending.setdefault((key, run_id), []).append(partition)
    if not pending:
        return []
    run_ids = sorted({run_id for _, run_id in pending})
    failed = {r.run_id for r in instance.get_runs(RunsFilter(
        run_ids=run_ids, statuses=[DagsterRunStatus.FAILURE]))}
    errors = {run_id: _first_error(instance, run_id) for run_id in failed}
    out = [FailedRange(key.to_user_string(), run_id, min(parts), max(parts), len(parts),
                       errors[run_id])
           for (key, run_id), parts in pending.items() if run_id in failed]
    return sorted(out, key=lambda r: (r.asset_key, r.first))


def run_failed_ranges(instance: DagsterInstance, run: DagsterRun) -> list[FailedRange]:
    """The partitions one failed run planned and did not materialize, per asset."""
    entries = [r.event_log_entry for r in instance.get_records_for_run(
        run.run_id, of_type=PLAN_AND_MATERIALIZE_EVENTS).records]
    error = _first_error(instance, run.run_id)
    return [FailedRange(key.to_user_string(), run.run_id, keys[0], keys[-1], len(keys), error)
            for _, key, keys in unmaterialized_planned_partitions(entries)]


def format_failed_ranges(ranges: Iterable[FailedRange]) -> str:
    lines = [f"FAILED {r.describe()}: {r.error}" if r.error else f"FAILED {r.describe()}"
             for r in ranges]
    return "\n".join(lines) if lines else "no failed partitions"
