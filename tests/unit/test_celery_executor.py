"""The tiered Celery executor's routing and configuration (no broker needed)."""

from pathlib import Path

import pytest

from prometheus_dagster.celery_executor import (
    DEFAULT_TIER_QUEUES,
    deployment_executor,
    load_celery_config,
    queue_for_run,
)
from prometheus_dagster.jobs.daily import research_tags, tier_tags

DEPLOY_CONFIG = Path(__file__).parents[2] / "deploy" / "celery" / "celery.yaml"


def test_a_run_goes_to_the_queue_of_its_tier():
    assert queue_for_run(tier_tags("1"), DEFAULT_TIER_QUEUES) == "tier1"
    assert queue_for_run(tier_tags("2"), DEFAULT_TIER_QUEUES) == "tier2"
    assert queue_for_run(research_tags(), DEFAULT_TIER_QUEUES) == "tier3"


def test_a_run_without_a_tier_is_best_effort():
    assert queue_for_run({"dagster/partition": "2024-02-05"}, DEFAULT_TIER_QUEUES) == "tier3"


def test_a_tier_without_a_queue_is_refused():
    with pytest.raises(ValueError, match="no Celery queue for tier '3'"):
        queue_for_run(research_tags(), {"1": "tier1"})


def test_the_shipped_config_acks_late_and_requeues_a_lost_workers_step():
    config = load_celery_config(DEPLOY_CONFIG)
    assert config["broker"].startswith("amqp://")
    assert config["backend"].startswith("redis://")
    assert config["tier_queues"] == DEFAULT_TIER_QUEUES
    assert config["config_source"]["task_acks_late"] is True
    assert config["config_source"]["task_reject_on_worker_lost"] is True


def test_the_executor_is_celery_only_when_the_config_is_named(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_CELERY_CONFIG", raising=False)
    assert deployment_executor() is None
    monkeypatch.setenv("PROMETHEUS_CELERY_CONFIG", str(DEPLOY_CONFIG))
    executor = deployment_executor()
    assert executor is not None and executor.name == "tiered_celery"


def test_a_file_without_an_executor_block_is_refused(tmp_path):
    path = tmp_path / "celery.yaml"
    path.write_text("broker: amqp://x//\n")
    with pytest.raises(ValueError, match="no 'execution: config:' block"):
        load_celery_config(path)
