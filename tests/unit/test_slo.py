"""Freshness SLOs: deadlines from the session close, one alert per miss."""

import json

import pandas as pd
from dagster import DagsterInstance, build_sensor_context

from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.warehouse import Warehouse
from prometheus_dagster.sensors.alerts import FileNotifier
from prometheus_dagster.sensors.slo import slo_misses, slo_sensor

SESSION = pd.Timestamp("2024-07-10")  # US_EQ closes 20:00 UTC in July


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_deadlines_count_from_the_close():
    on_time = {"ingestion": utc("2024-07-10 22:30"), "daily_chain": utc("2024-07-10 23:40")}
    assert slo_misses("US_EQ", SESSION, utc("2024-07-11 02:00"), on_time) == []
    late = {"ingestion": utc("2024-07-10 23:30"), "daily_chain": None}
    misses = slo_misses("US_EQ", SESSION, utc("2024-07-11 02:00"), late)
    assert [m["slo"] for m in misses] == ["ingestion", "daily_chain"]
    assert misses[0]["deadline"] == utc("2024-07-10 23:00").isoformat()
    # before the deadlines nothing is judged yet
    assert slo_misses("US_EQ", SESSION, utc("2024-07-10 22:00"), {}) == []


def test_sensor_alerts_once_per_miss(tmp_path):
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = Warehouse.from_url(url)
    wh.append("ingestion_runs", pd.DataFrame([{
        "ingestion_run_id": "r1", "market_id": "US_EQ", "date": SESSION, "source": "files",
        "table_name": "prices_daily", "status": "SUCCESS", "row_count": 5, "warnings": "[]",
        "started_at": utc("2024-07-10 21:00"), "finished_at": utc("2024-07-10 21:30")}]))
    alerts = tmp_path / "alerts.jsonl"
    clock = lambda: utc("2024-07-11 02:00")  # noqa: E731
    sensor = slo_sensor(["US_EQ"], FileNotifier(alerts), clock=clock)
    instance = DagsterInstance.ephemeral()
    ctx = build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource(
        url=url)})
    sensor(ctx)
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    # the last three sessions: 11 July (deadlines not reached yet), 10 July (ingested on time,
    # no successful daily run: one miss), 9 July (nothing at all: two misses)
    assert sorted((a["session"], a["slo"]) for a in sent) == [
        ("2024-07-09", "daily_chain"), ("2024-07-09", "ingestion"),
        ("2024-07-10", "daily_chain")]
    again = build_sensor_context(instance=instance, cursor=ctx.cursor,
                                 resources={"warehouse": WarehouseResource(url=url)})
    sensor(again)
    assert len(alerts.read_text().splitlines()) == len(sent)  # no repeats
