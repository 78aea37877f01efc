"""The Celery executor of a shared deployment (deploy/celery/): dagster-celery's executor, with
every step of a run sent to the Celery queue of the run's priority tier, so that research
(tier 3) never takes the workers that tier-1 chains need.

A step's own ``dagster-celery/queue`` op tag still wins. Both the code location and the workers
(``prometheus_dagster.celery_app``) read the same YAML file, named by
``PROMETHEUS_CELERY_CONFIG``: dagster-celery's executor config under ``execution: config:``,
plus ``tier_queues`` (tier -> queue name).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # types-PyYAML is not installed
from dagster import ExecutorDefinition, Field, Permissive, executor
from dagster._core.execution.retries import RetryMode
from dagster_celery.config import dict_wrapper
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor

from prometheus_dagster.jobs.daily import TIER_TAG

CONFIG_ENV = "PROMETHEUS_CELERY_CONFIG"
DEFAULT_TIER_QUEUES = {"1": "tier1", "2": "tier2", "3": "tier3"}
# a run without a tier tag is best effort: only runs that declare tier 1 use tier-1 workers
UNTIERED = "3"
TIER_QUEUES_KEY = "tier_queues"


def queue_for_run(run_tags: Mapping[str, str], tier_queues: Mapping[str, str]) -> str:
    """The Celery queue for the steps of a run with these tags."""
    tier = run_tags.get(TIER_TAG, UNTIERED)
    if tier not in tier_queues:
        raise ValueError(f"no Celery queue for tier {tier!r}; tier_queues has "
                         f"{', '.join(sorted(tier_queues))}")
    return tier_queues[tier]


class TieredCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor whose default queue is the run's tier queue."""

    def __init__(self, tier_queues: Mapping[str, str], **celery_args: Any) -> None:
        super().__init__(**celery_args)
        self.tier_queues = dict(tier_queues)

    def execute(self, plan_context, execution_plan):  # noqa: ANN001, ANN201 (dagster's API)
        queue = queue_for_run(plan_context.dagster_run.tags, self.tier_queues)
        # core_celery_execution_loop sends untagged steps to the app's task_default_queue
        self.config_source = dict_wrapper({**vars(self.config_source),
                                           "task_default_queue": queue})
        return super().execute(plan_context, execution_plan)


@executor(
    name="tiered_celery",
    config_schema={
        **CELERY_CONFIG,
        TIER_QUEUES_KEY: Field(Permissive(), is_required=False,
                               default_value=DEFAULT_TIER_QUEUES,
                               description="Celery queue of each prometheus/tier value."),
    },
)
def tiered_celery_executor(init_context) -> TieredCeleryExecutor:  # noqa: ANN001
    config = init_context.executor_config
    return TieredCeleryExecutor(
        tier_queues=config.get(TIER_QUEUES_KEY) or DEFAULT_TIER_QUEUES,
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
        retries=RetryMode.from_config(config["retries"]),
    )


def load_celery_config(path: str | Path) -> dict[str, Any]:
    """The ``execution: config:`` block of a deployment's Celery YAML file."""
    parsed = yaml.safe_load(Path(path).read_text()) or {}
    config = (parsed.get("execution") or {}).get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: no 'execution: config:' block for the Celery executor")
    return config


def deployment_executor() -> ExecutorDefinition | None:
    """The tiered Celery executor configured from ``PROMETHEUS_CELERY_CONFIG`` when it is set;
    None (Dagster's default executor) otherwise."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return None
    return tiered_celery_executor.configured(load_celery_config(path))
