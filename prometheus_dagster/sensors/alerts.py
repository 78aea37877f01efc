"""Alerts: a run-failure sensor that hands every failed run to a pluggable notifier.

Notifiers: ``LogNotifier`` (always), ``FileNotifier`` (JSON lines, default
``$PROMETHEUS_HOME/alerts.jsonl``) and ``WebhookNotifier`` (POSTs the alert as JSON to
``$PROMETHEUS_ALERT_WEBHOOK``). ``notifier_from_env`` combines them; anything with a
``send(alert: dict)`` method can be passed instead. Dagster's run-status sensor cursor makes
each failure alert exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from dagster import RunFailureSensorContext, run_failure_sensor

from prometheus_dagster.core.paths import prometheus_home
from prometheus_dagster.jobs.daily import MARKET_TAG, TIER_TAG

log = logging.getLogger("prometheus.alerts")


class Notifier(Protocol):
    def send(self, alert: dict[str, Any]) -> None: ...


class LogNotifier:
    def send(self, alert: dict[str, Any]) -> None:
        log.error("ALERT %s", json.dumps(alert, sort_keys=True))


class FileNotifier:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else prometheus_home() / "alerts.jsonl"

    def send(self, alert: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(alert, sort_keys=True) + "\n")


class WebhookNotifier:
    def __init__(self, url: str, timeout: float = 5.0):
        self.url, self.timeout = url, timeout

    def send(self, alert: dict[str, Any]) -> None:
        req = urllib.request.Request(self.url, data=json.dumps(alert).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            resp.read()


class MultiNotifier:
    def __init__(self, notifiers: Sequence[Notifier]):
        self.notifiers = list(notifiers)

    def send(self, alert: dict[str, Any]) -> None:
        errors = []
        for n in self.notifiers:
            try:
                n.send(alert)
            except Exception as exc:  # one broken channel must not silence the others
                errors.append(f"{type(n).__name__}: {exc}")
        if errors:
            log.error("alert delivery failed on %s", "; ".join(errors))


def notifier_from_env() -> Notifier:
    """Log + file, plus a webhook when ``PROMETHEUS_ALERT_WEBHOOK`` is set."""
    channels: list[Notifier] = [LogNotifier(),
                                FileNotifier(os.environ.get("PROMETHEUS_ALERT_FILE"))]
    if url := os.environ.get("PROMETHEUS_ALERT_WEBHOOK"):
        channels.append(WebhookNotifier(url))
    return MultiNotifier(channels)


def failure_alert(context: RunFailureSensorContext) -> dict[str, Any]:
    from prometheus_dagster.sensors.failed_ranges import run_failed_ranges

    run = context.dagster_run
    ranges = run_failed_ranges(context.instance, run)
    return {
        "kind": "RUN_FAILURE", "job": run.job_name, "run_id": run.run_id,
        "market": run.tags.get(MARKET_TAG), "tier": run.tags.get(TIER_TAG),
        "partition": run.tags.get("dagster/partition")
        or run.tags.get("dagster/asset_partition_range_start"),
        "message": context.failure_event.message,
        # partitions planned and not materialized: the failed range(s), per asset
        "failed_partitions": [{"asset": r.asset_key, "first": r.first, "last": r.last,
                               "count": r.partitions} for r in ranges],
    }


def run_failure_alerts(notifier: Notifier | None = None, name: str = "run_failure_alerts"):
    """A sensor that sends one alert per failed run of this code location."""
    @run_failure_sensor(name=name, minimum_interval_seconds=30,
                        description="Sends an alert (log, file, optional webhook) for each "
                                    "failed run.")
    def _alerts(context: RunFailureSensorContext) -> None:
        (notifier or notifier_from_env()).send(failure_alert(context))

    return _alerts
