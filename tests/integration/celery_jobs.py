"""Small jobs on the tiered Celery executor whose first step waits at a gate, so a test can hold
a worker busy (or kill it) at a known point. The gate folder is ``PROMETHEUS_TEST_GATE_DIR``:
the step writes ``<job>.started.<pid>`` on entry and goes on once ``<job>.release`` exists.
Workers import this module; the executor config is ``PROMETHEUS_CELERY_CONFIG``."""

import os
import time
from pathlib import Path

import numpy as np
from dagster import JobDefinition, OpExecutionContext, job, op

from prometheus_dagster.celery_executor import load_celery_config, tiered_celery_executor
from prometheus_dagster.jobs.daily import tier_tags

GATE_ENV = "PROMETHEUS_TEST_GATE_DIR"
GATE_TIMEOUT_SECONDS = 300


def started_files(gate_dir: Path, name: str) -> list[Path]:
    return sorted(gate_dir.glob(f"{name}.started.*"))


def release(gate_dir: Path, name: str) -> None:
    (gate_dir / f"{name}.release").touch()


@op
def gated_prices(context: OpExecutionContext) -> list[float]:
    gate_dir = Path(os.environ[GATE_ENV])
    name = context.job_name
    (gate_dir / f"{name}.started.{os.getpid()}").touch()
    deadline = time.monotonic() + GATE_TIMEOUT_SECONDS
    while not (gate_dir / f"{name}.release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: the gate was never released")
        time.sleep(0.1)
    # a small random walk, the same on every attempt
    steps = np.random.default_rng(7).normal(0.0, 0.01, 250)
    return (100 * np.exp(np.cumsum(steps))).tolist()


@op
def realised_volatility(prices: list[float]) -> float:
    returns = np.diff(np.log(prices))
    return float(np.std(returns, ddof=1) * np.sqrt(252))


def _gated_job(name: str, tier: str) -> JobDefinition:
    executor = tiered_celery_executor.configured(
        load_celery_config(os.environ["PROMETHEUS_CELERY_CONFIG"]))

    @job(name=name, executor_def=executor, tags=tier_tags(tier))
    def _job() -> None:
        realised_volatility(gated_prices())

    return _job


def tier1_gated_job() -> JobDefinition:
    return _gated_job("tier1_gated", "1")


def tier3_gated_job() -> JobDefinition:
    return _gated_job("tier3_gated", "3")
