"""Market-state sensors: start a market's daily job when the market enters POST_CLOSE on a
trading day (and the PRE_OPEN quality job when it enters PRE_OPEN), instead of fixed UTC cron
times. Asia closes first, then Europe, then the US, so the requests follow the sun.

The decision is a pure function of the instant and the cursor (the session already requested),
so it is tested without waiting for real time; only the sensor itself reads the clock.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from dagster import RunRequest, SensorEvaluationContext, SensorResult, sensor

from prometheus_dagster.core.calendars import MarketState, trading_calendar
from prometheus_dagster.jobs.daily import MARKET_TAG, TIER_TAG, daily_job_name


@dataclass(frozen=True)
class DueRun:
    market_id: str
    partition_key: str
    state: MarketState
    job_name: str

    @property
    def run_key(self) -> str:
        return f"{self.market_id}:{self.state}:{self.partition_key}"


def due_runs(
    now: pd.Timestamp, markets: list[str], cursor: dict[str, str], state: MarketState,
    job_name_for=daily_job_name, previous_session: bool = False,
) -> list[DueRun]:
    """Markets that are in ``state`` at ``now`` for a session not yet requested (per cursor).
    POST_CLOSE requests the session that just closed; PRE_OPEN the session about to open, or
    with ``previous_session`` the one before it (the pre-open checks of D+1 look at D)."""
    out = []
    for market in markets:
        cal = trading_calendar(market)
        session = cal.session_for_state(now, state)
        if session is None:
            continue
        if previous_session:
            session = cal.previous_trading_day(session)
        key = session.strftime("%Y-%m-%d")
        if cursor.get(market, "") >= key:
            continue
        out.append(DueRun(market, key, state, job_name_for(market)))
    return out


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def market_state_sensor(jobs: dict[str, Any], state: MarketState, name: str,
                        minimum_interval_seconds: int = 60,
                        clock: Callable[[], pd.Timestamp] = _utc_now,
                        previous_session: bool = False):
    """A sensor emitting one run request per market and session when the market enters
    ``state``; ``jobs`` maps market id to the job to run (``previous_session``: for the
    session before the one the state belongs to)."""
    markets = list(jobs)
    job_names = {m: j.name for m, j in jobs.items()}

    @sensor(name=name, minimum_interval_seconds=minimum_interval_seconds,
            jobs=list(jobs.values()),
            description=f"Runs each market's job when it enters {state} on a trading day.")
    def _sensor(context: SensorEvaluationContext) -> SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for due in due_runs(clock(), markets, cursor, state, job_names.__getitem__,
                            previous_session):
            requests.append(RunRequest(
                run_key=due.run_key, job_name=due.job_name, partition_key=due.partition_key,
                tags={TIER_TAG: "1", MARKET_TAG: due.market_id, "prometheus/state": str(state)},
            ))
            cursor[due.market_id] = due.partition_key
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return _sensor
