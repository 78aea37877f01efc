"""Reference assets: the configured markets and each market's trading sessions."""


import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import run_dates
from prometheus_dagster.assets.lineage import declare, step_name
from prometheus_dagster.core.calendars import GLOBAL, load_markets, trading_calendar
from prometheus_dagster.core.inputs import Inputs
from prometheus_dagster.core.partitions import market_partitions_def

GROUP = "reference"
# both come from the configuration and the exchange calendars: no warehouse input
NO_INPUTS = Inputs()


@asset(group_name=GROUP, key=[GLOBAL, "markets"], description="Configured logical markets.",
       metadata=declare(step_name(GLOBAL, "markets"), NO_INPUTS, GLOBAL))
def markets(context: AssetExecutionContext) -> pd.DataFrame:
    rows = pd.DataFrame([
        {"market_id": m, "name": s.name, "region": s.region, "timezone": s.timezone,
         "calendar_code": s.calendar_code, "currency": s.currency}
        for m, s in load_markets().markets.items()
    ])
    context.add_output_metadata({"markets": ", ".join(rows["market_id"])})
    return rows


def calendar_sessions_asset(market_id: str) -> AssetsDefinition:
    """Per-market sessions with open/close in UTC and early-close flags."""

    @asset(
        name="calendar_sessions",
        key_prefix=[market_id],
        group_name=GROUP,
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        description=f"Trading sessions of {market_id} (open/close UTC, early closes).",
        tags={"prometheus/tier": "1"},
        metadata=declare(step_name(market_id, "calendar_sessions"), NO_INPUTS, market_id),
    )
    def _sessions(context: AssetExecutionContext) -> pd.DataFrame:
        dates = run_dates(context)
        frame = trading_calendar(market_id).sessions_frame(dates[0], dates[-1])
        early = int(frame["early_close"].sum())
        context.log.info(f"{market_id}: {len(frame)} sessions, {early} early closes")
        context.add_output_metadata({"sessions": len(frame), "early_closes": early})
        return frame

    return _sessions


def reference_assets(market_ids: list[str]) -> list[AssetsDefinition]:
    return [markets, *(calendar_sessions_asset(m) for m in market_ids)]
