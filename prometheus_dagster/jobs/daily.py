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


def training_job_name(market_id: str) -> str:
    return f"{market_id}_model_training"


def training_job(market_id: str,
                 assets: Sequence[AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    """A market's model-training assets (partitioned by refit period, not by day), tier 2."""
    return define_asset_job(
        training_job_name(market_id),
        selection=AssetSelection.assets(*_keys(assets)),
        partitions_def=assets[0].partitions_def,
        tags={TIER_TAG: "2", MARKET_TAG: market_id},
        description=f"Model refits of {market_id} (one partition per refit period).",
    )


def jobs_for(assets: Sequence[AssetsDefinition]) -> list[UnresolvedAssetJobDefinition]:
    """Group assets by partitioning: unpartitioned -> reference job; partitioned by the market's
    trading days -> its daily job (the market is the first element of the asset key); any
    other partitioning (model refits) -> the market's training job."""
    unpartitioned = [a for a in assets if a.partitions_def is None]
    by_market: dict[str, list[AssetsDefinition]] = {}
    training: dict[str, list[AssetsDefinition]] = {}
    for a in assets:
        if a.partitions_def is None:
            continue
        market = next(iter(a.keys)).path[0]
        target = by_market if a.partitions_def == partitions_def_for(market) else training
        target.setdefault(market, []).append(a)
    jobs = [reference_job(unpartitioned)] if unpartitioned else []
    order = {m: i for i, m in enumerate(FOLLOW_THE_SUN)}
    for market in sorted(by_market, key=lambda m: order.get(m, len(order))):
        jobs.append(daily_job(market, by_market[market]))
    for market in sorted(training, key=lambda m: order.get(m, len(order))):
        jobs.append(training_job(market, training[market]))
    return jobs
