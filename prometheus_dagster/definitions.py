"""The one Dagster code location of Prometheus."""

from __future__ import annotations

from dagster import AssetKey, Definitions

from prometheus_dagster.assets.brief import daily_brief_asset
from prometheus_dagster.assets.embeddings import encoder_assets
from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.ingestion import ingestion_assets
from prometheus_dagster.assets.profiles import profile_assets
from prometheus_dagster.assets.reference import reference_assets
from prometheus_dagster.core.calendars import MarketState, market_ids
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.ingestion_config import ingestion_config
from prometheus_dagster.jobs.daily import daily_job_name, jobs_for
from prometheus_dagster.resources import build_resources
from prometheus_dagster.sensors.market_state import market_state_sensor


def build_assets() -> list:
    data_markets = list(ingestion_config().markets)
    encoded = [m for m in encoder_markets() if m in data_markets]
    brief_inputs = [AssetKey([m, t]) for m in data_markets
                    for t in ("market_correlation_daily", "profiles")
                    if t != "profiles" or m in encoded]
    return [
        *reference_assets(market_ids()),
        *ingestion_assets(data_markets),
        *features_assets(data_markets),
        *encoder_assets(encoded, data_markets),
        *profile_assets(encoded),
        daily_brief_asset(data_markets, brief_inputs),
    ]


def encoder_markets() -> list[str]:
    """Markets with trained encoders and profiles (configs/engines/encoders.yaml)."""
    return list(load_engine_config("encoders").config.markets)  # type: ignore[attr-defined]


def build_definitions(**resource_overrides) -> Definitions:
    assets = build_assets()
    jobs = jobs_for(assets)
    by_name = {j.name: j for j in jobs}
    daily = {m: by_name[daily_job_name(m)] for m in ingestion_config().markets}
    return Definitions(
        assets=assets,
        jobs=jobs,
        sensors=[market_state_sensor(daily, MarketState.POST_CLOSE, "post_close_daily")],
        resources={**build_resources(), **resource_overrides},
    )


defs = build_definitions()
