"""The Celery app of the deployment's workers: ``celery -A prometheus_dagster.celery_app worker
-Q tier1``. It reads the same YAML file as the executor (``PROMETHEUS_CELERY_CONFIG``), so the
broker, result backend and task settings (late acks, requeue of a lost worker's task) agree on
both sides, and registers dagster-celery's step task."""

from __future__ import annotations

import os

from celery import Celery
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from prometheus_dagster.celery_executor import CONFIG_ENV, TIER_QUEUES_KEY, load_celery_config


def build_app(config_path: str) -> Celery:
    config = {k: v for k, v in load_celery_config(config_path).items()
              if k not in (TIER_QUEUES_KEY, "retries")}
    return make_app(CeleryExecutor.for_cli(**config).app_args())


if not os.environ.get(CONFIG_ENV):
    raise RuntimeError(f"{CONFIG_ENV} must name the deployment's Celery YAML "
                       "(deploy/celery/celery.yaml)")
app = build_app(os.environ[CONFIG_ENV])
execute_plan = create_task(app)
