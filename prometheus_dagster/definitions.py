"""The one Dagster code location of Prometheus."""

from __future__ import annotations

from dagster import Definitions

from prometheus_dagster.assets.reference import reference_assets
from prometheus_dagster.core.calendars import market_ids
from prometheus_dagster.resources import build_resources

defs = Definitions(
    assets=[*reference_assets(market_ids())],
    resources=build_resources(),
)
