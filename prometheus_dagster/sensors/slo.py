"""Freshness SLOs per market, measured from the session's close (README, "Pre-open checks and
alerts"; the deadlines in configs/engines/qc.yaml, shipped: ingestion done by close + 3 h, the
daily chain by close + 4 h; the same deadlines as the Dagster freshness checks,
``assets/freshness.py``). A sensor checks the latest sessions whose deadlines have passed and
sends one SLO_MISS alert per (market, session, SLO) through the alert notifiers."""

import json
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from dagster import DagsterRunStatus, RunsFilter, SensorEvaluationContext, sensor

from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.engines.qc.config import QcConfig
from prometheus_dagster.jobs.daily import daily_job_name
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.sensors.alerts import Notifier, notifier_from_env
from prometheus_dagster.steps.qc import qc_config

LOOKBACK_SESSIONS = 3


@dataclass(frozen=True)
class Slo:
    name: str
    minutes_after_close: int


def configured_slos() -> tuple[Slo, ...]:
    """The deadlines of configs/engines/qc.yaml (``freshness.deadlines``)."""
    deadlines = qc_config().typed(QcConfig).freshness.deadlines
    return (Slo("ingestion", deadlines.ingestion), Slo("daily_chain", deadlines.daily_chain))


def slo_misses(market_id: str, session: pd.Timestamp, now: pd.Timestamp,
               finished: dict[str, pd.Timestamp | None],
               slos: tuple[Slo, ...] | None = None) -> list[dict]:
    """SLOs of a session whose deadline has passed at ``now`` and that were not met on time;
    ``finished``: SLO name -> when that stage finished (None: not yet)."""
    slos = configured_slos() if slos is None else slos
    close = trading_calendar(market_id).session_close(session)
    out = []
    for slo in slos:
        deadline = close + pd.Timedelta(minutes=slo.minutes_after_close)
        if now < deadline:
            continue
        done = finished.get(slo.name)
        if done is None or done > deadline:
            out.append({"kind": "SLO_MISS", "market": market_id, "slo": slo.name,
                        "session": str(pd.Timestamp(session).date()),
                        "deadline": deadline.isoformat(),
                        "finished": None if done is None else done.isoformat()})
    return out


def _utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def slo_sensor(markets: list[str], notifier: Notifier | None = None, name: str = "slo_monitor",
               clock: Callable[[], pd.Timestamp] = _utc_now):
    """Checks the last sessions of each market against the SLOs; alerts once per miss."""
    @sensor(name=name, minimum_interval_seconds=300,
            description="Alerts when a market's ingestion or daily chain misses its SLO.")
    def _sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
        now = clock()
        sent = set(json.loads(context.cursor)) if context.cursor else set()
        wh = warehouse.get()
        for market in markets:
            cal = trading_calendar(market)
            last = cal.previous_trading_day(now.tz_localize(None).normalize()
                                            + pd.Timedelta(days=1))
            sessions = [cal.previous_trading_day(last, k) for k in range(LOOKBACK_SESSIONS - 1,
                                                                          0, -1)] + [last]
            for session in sessions:
                key = session.strftime("%Y-%m-%d")
                runs = wh.read("ingestion_runs", where={"market_id": market, "date": session})
                ok = runs[runs["status"] == "SUCCESS"] if len(runs) else runs
                ingested = _utc(ok["finished_at"].max()) if len(ok) else None
                records = context.instance.get_run_records(
                    RunsFilter(job_name=daily_job_name(market),
                               statuses=[DagsterRunStatus.SUCCESS],
                               tags={"dagster/partition": key}), limit=1)
                chain = (pd.Timestamp(records[0].end_time, unit="s", tz="UTC")
                         if records and records[0].end_time else None)
                for miss in slo_misses(market, session, now,
                                       {"ingestion": ingested, "daily_chain": chain}):
                    ident = f"{market}:{key}:{miss['slo']}"
                    if ident not in sent:
                        (notifier or notifier_from_env()).send(miss)
                        sent.add(ident)
        recent = sorted(sent, key=lambda ident: ident.split(":")[1])[-500:]
        context.update_cursor(json.dumps(recent))

    return _sensor
