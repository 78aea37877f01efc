"""Run-failure alerts: a failed run produces exactly one alert on every channel (file and a
webhook served on loopback); a successful run produces none."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    build_run_status_sensor_context,
    job,
    op,
)

from prometheus_dagster.sensors.alerts import (
    FileNotifier,
    MultiNotifier,
    WebhookNotifier,
    run_failure_alerts,
)


@op
def explode():
    raise RuntimeError("prices feed unreachable")


@job(tags={"prometheus/tier": "1", "prometheus/market": "US_EQ"})
def failing_job():
    explode()


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()


def _failure_event(instance, run_id):
    return next(e.dagster_event for e in instance.all_logs(run_id)
                if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE")


def test_failed_run_alerts_once_on_every_channel(tmp_path, webhook):
    url, received = webhook
    alerts_file = tmp_path / "alerts.jsonl"
    sensor = run_failure_alerts(MultiNotifier([FileNotifier(alerts_file),
                                               WebhookNotifier(url)]))
    instance = DagsterInstance.ephemeral()
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    assert run.status == DagsterRunStatus.FAILURE
    ctx = build_run_status_sensor_context(sensor.name, _failure_event(instance, run.run_id),
                                          instance, run).for_run_failure()
    sensor(ctx)
    lines = alerts_file.read_text().splitlines()
    assert len(lines) == 1 and len(received) == 1
    alert = json.loads(lines[0])
    assert alert == received[0]
    assert alert["kind"] == "RUN_FAILURE" and alert["job"] == "failing_job"
    assert alert["market"] == "US_EQ" and alert["tier"] == "1"
    assert alert["run_id"] == run.run_id


def test_a_broken_channel_does_not_silence_the_others(tmp_path):
    alerts_file = tmp_path / "alerts.jsonl"
    notifier = MultiNotifier([WebhookNotifier("http://127.0.0.1:9/nowhere", timeout=0.5),
                              FileNotifier(alerts_file)])
    notifier.send({"kind": "RUN_FAILURE", "job": "x"})
    assert len(alerts_file.read_text().splitlines()) == 1


def test_default_channels_come_from_the_environment(monkeypatch, tmp_path, webhook):
    from prometheus_dagster.sensors.alerts import notifier_from_env

    url, received = webhook
    monkeypatch.setenv("PROMETHEUS_ALERT_FILE", str(tmp_path / "a.jsonl"))
    monkeypatch.setenv("PROMETHEUS_ALERT_WEBHOOK", url)
    notifier_from_env().send({"kind": "SLO_MISS", "market": "US_EQ"})
    assert len(received) == 1 and (tmp_path / "a.jsonl").exists()
    monkeypatch.delenv("PROMETHEUS_ALERT_WEBHOOK")
    notifier_from_env().send({"kind": "SLO_MISS", "market": "US_EQ"})
    assert len(received) == 1  # no webhook configured: file and log only
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
