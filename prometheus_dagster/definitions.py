"""The one Dagster code location of Prometheus."""

from __future__ import annotations

from dagster import Definitions

from prometheus_dagster.assets.assessment import assessment_assets
from prometheus_dagster.assets.backtest import backtest_assets
from prometheus_dagster.assets.brief import daily_brief_asset
from prometheus_dagster.assets.embeddings import encoder_assets
from prometheus_dagster.assets.execution import execution_assets
from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.fragility import fragility_assets
from prometheus_dagster.assets.freshness import freshness_checks, freshness_sensor
from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
from prometheus_dagster.assets.portfolio import portfolio_assets
from prometheus_dagster.assets.profiles import profile_assets
from prometheus_dagster.assets.qc import preopen_qc_asset
from prometheus_dagster.assets.reference import reference_assets
from prometheus_dagster.assets.regime import regime_assets, regime_regions
from prometheus_dagster.assets.risk import risk_assets
from prometheus_dagster.assets.scenarios import scenario_assets
from prometheus_dagster.assets.schema_metadata import with_column_schemas
from prometheus_dagster.assets.stability import stability_assets
from prometheus_dagster.assets.universe import universe_assets
from prometheus_dagster.celery_executor import deployment_executor
from prometheus_dagster.core.calendars import GLOBAL, MarketState, market_ids, markets_running
from prometheus_dagster.core.ingestion_config import ingestion_config
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.jobs.daily import daily_job_name, jobs_for, qc_job_name
from prometheus_dagster.market_configs import check_market_configs
from prometheus_dagster.resources import build_resources
from prometheus_dagster.sensors.alerts import run_failure_alerts
from prometheus_dagster.sensors.global_after_regional import global_after_regional_sensor
from prometheus_dagster.sensors.market_state import market_state_sensor
from prometheus_dagster.sensors.slo import slo_sensor


def build_assets() -> list:
    data_markets = list(ingestion_config().markets)
    encoded = [m for m in encoder_markets() if m in data_markets]
    regions = regime_regions(data_markets)
    return [
        *reference_assets(market_ids()),
        *ingestion_assets(data_markets),
        *features_assets(data_markets),
        *encoder_assets(encoded, data_markets),
        *profile_assets(encoded),
        *regime_assets(data_markets),
        *stability_assets(data_markets, encoded, list(regions)),
        *scenario_assets(data_markets, list(regions)),
        *fragility_assets(data_markets, encoded),
        *risk_assets(encoded),
        *assessment_assets(encoded),
        *universe_assets(encoded),
        *portfolio_assets(encoded),
        *execution_assets(encoded),
        *backtest_assets(encoded),
        daily_brief_asset(data_markets, encoded, list(regions)),
        *(preopen_qc_asset(m, list(MARKET_TABLES), engine_tables(m, encoded, list(regions)),
                           regions[m].macro if m in regions else None)
          for m in data_markets),
    ]


def engine_tables(market_id: str, encoded: list[str], regions: list[str]) -> list[str]:
    """The engine tables a market's daily chain writes (checked at PRE_OPEN)."""
    tables = [*FEATURE_TABLES, "text_embeddings"]
    if market_id in encoded:
        tables += ["numeric_window_embeddings", "joint_embeddings", "profiles"]
    if market_id in regions:
        tables.append("regimes")
    tables += ["stability_vectors", "scenario_sets", "scenario_paths", "fragility_measures",
               "soft_target_classes"]
    if market_id in encoded:
        tables += ["fragility_alpha", *INVESTMENT_TABLES]
    return tables


# the investment chain of the markets with profiles (equity markets): risk model, scores,
# universes, target portfolios, their risk reports and the paper book
INVESTMENT_TABLES = ("risk_factor_covariance", "risk_specific", "instrument_scores",
                     "universes", "target_portfolios", "portfolio_risk_reports",
                     "positions_snapshots")


def encoder_markets() -> list[str]:
    """Markets with trained encoders, profiles and the investment chain (``runs: investment``
    in configs/markets.yaml)."""
    return markets_running("investment")


def build_definitions(**resource_overrides) -> Definitions:
    check_market_configs()
    assets = with_column_schemas(build_assets())
    jobs = jobs_for(assets)
    by_name = {j.name: j for j in jobs}
    daily = {m: by_name[daily_job_name(m)] for m in ingestion_config().markets}
    qc = {m: by_name[qc_job_name(m)] for m in ingestion_config().markets}
    fresh = freshness_checks(assets, list(ingestion_config().markets))
    return Definitions(
        assets=assets,
        asset_checks=fresh,
        jobs=jobs,
        sensors=[market_state_sensor(daily, MarketState.POST_CLOSE, "post_close_daily"),
                 market_state_sensor(qc, MarketState.PRE_OPEN, "pre_open_qc",
                                     previous_session=True),
                 global_after_regional_sensor(list(ingestion_config().markets),
                                              by_name[daily_job_name(GLOBAL)]),
                 slo_sensor(list(ingestion_config().markets)),
                 freshness_sensor(fresh),
                 run_failure_alerts()],
        resources={**build_resources(), **resource_overrides},
        # the Celery executor if PROMETHEUS_CELERY_CONFIG is set (deploy/celery/), else the default
        executor=deployment_executor(),
    )


defs = build_definitions()
