"""Priority tiers through Dagster's real queued run coordinator and its dequeue daemon: a tier-1
daily run queued after a research backfill starts first, and research runs never take more
than their concurrency limit of slots."""

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.test_utils import create_run_for_test, create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from prometheus_dagster.definitions import build_definitions
from prometheus_dagster.jobs.daily import TIER_TAG, research_tags, tier_tags


def queued_instance(tmp_path, max_concurrent_runs: int) -> DagsterInstance:
    """A SQLite instance with the queued coordinator and the tier limits of dagster.yaml; runs
    are handed to a launcher that records them instead of starting processes."""
    import yaml

    from prometheus_dagster.core.paths import REPO_ROOT

    shipped = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    coordinator = shipped["run_coordinator"]
    coordinator["config"]["max_concurrent_runs"] = max_concurrent_runs
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        "run_coordinator": coordinator,
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
    }))
    return DagsterInstance.from_config(str(tmp_path))


def submit(instance, job_name: str, tags: dict) -> str:
    """A run waiting in the queue (as the coordinator leaves a submitted run)."""
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(
        RegisteredCodeLocationOrigin("prometheus_dagster"), "__repository__"), job_name)
    run = create_run_for_test(instance, job_name=job_name, tags=tags,
                              status=DagsterRunStatus.QUEUED, remote_job_origin=origin)
    return run.run_id


def dequeue(instance) -> list[str]:
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as ctx:
        list(daemon.run_iteration(ctx))
    return [r.run_id for r in instance.run_launcher.queue()]


@pytest.fixture
def daily_tags() -> dict:
    tags = build_definitions().resolve_job_def("US_EQ_daily").tags
    assert tags[TIER_TAG] == "1"
    return dict(tags)


def test_tier1_run_starts_before_an_earlier_research_backfill(tmp_path, daily_tags):
    instance = queued_instance(tmp_path, max_concurrent_runs=1)
    research = submit(instance, "US_EQ_daily", {**research_tags(), "dagster/backfill": "r1"})
    tier1 = submit(instance, "US_EQ_daily", daily_tags)
    assert dequeue(instance) == [tier1]
    assert instance.get_run_by_id(research).status == DagsterRunStatus.QUEUED


def test_research_runs_never_take_more_than_their_slot(tmp_path, daily_tags):
    instance = queued_instance(tmp_path, max_concurrent_runs=3)
    research = [submit(instance, "US_EQ_daily", research_tags()) for _ in range(3)]
    tier1 = submit(instance, "EU_EQ_daily", daily_tags)
    launched = dequeue(instance)
    assert launched[0] == tier1
    assert sum(r in launched for r in research) == 1  # the tier-3 limit in dagster.yaml


def test_tiers_map_to_priorities_and_retries():
    assert int(tier_tags("1")["dagster/priority"]) > int(tier_tags("2")["dagster/priority"]) \
        > int(research_tags()["dagster/priority"])
    assert tier_tags("1")["dagster/max_retries"] == "3"
    assert "dagster/max_retries" not in research_tags()
    with pytest.raises(ValueError, match="unknown tier"):
        tier_tags("4")
