"""Jobs: reference data (unpartitioned), and one daily job per market and for GLOBAL, each over
that market's partitions."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetsDefinition, AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from prometheus_dagster.core.calendars import GLOBAL
from prometheus_dagster.core.partitions import partitions_def_for

TIER_TAG = "prometheus/tier"
MARKET_TAG = "prometheus/market"
REFERENCE_JOB = "reference_data"

# Follow the sun: Asia closes first, then Europe, then the Americas; GLOBAL runs after them.
FOLLOW_THE_SUN = ("JP_EQ", "ASIA_EQ", "EU_EQ", "FX_GLOB", "US_EQ", "US_FUT", GLOBAL)


def daily_job_name(market_id: str) -> str:
    return f"{market_id}_daily"


def _keys(assets: Sequence[AssetsDefinition]) -> list:
    return [k for a in assets for k in a.keys]


def reference_job(assets: Sequence[AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        REFERENCE_JOB,
        selection=AssetSelection.assets(*_keys(assets)),
        tags={TIER_TAG: "1"},
        description="Markets, issuers, instruments (and the embedded market's ground truth).",
    )


def daily_job(market_id: str, assets: Sequence[AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    """Every asset partitioned by ``market_id``'s calendar, as one job."""
    return define_asset_job(
        daily_job_name(market_id),
        selection=AssetSelection.assets(*_keys(assets)),
        partitions_def=partitions_def_for(market_id),
        tags={TIER_TAG: "1", MARKET_TAG: market_id},
        description=f"The daily chain of {market_id}: ingestion, then every engine.",
    )


def jobs_for(assets: Sequence[AssetsDefinition]) -> list[UnresolvedAssetJobDefinition]:
    """Group assets by partitioning: unpartitioned -> reference job; else by market (the first
    element of the asset key)."""
    unpartitioned = [a for a in assets if a.partitions_def is None]
    by_market: dict[str, list[AssetsDefinition]] = {}
    for a in assets:
        if a.partitions_def is not None:
            by_market.setdefault(next(iter(a.keys)).path[0], []).append(a)
    jobs = [reference_job(unpartitioned)] if unpartitioned else []
    order = {m: i for i, m in enumerate(FOLLOW_THE_SUN)}
    for market in sorted(by_market, key=lambda m: order.get(m, len(order))):
        jobs.append(daily_job(market, by_market[market]))
    return jobs
