"""Jobs: reference data (unpartitioned), and one daily job per market and for GLOBAL, each over
that market's partitions."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetsDefinition, AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from prometheus_dagster.core.calendars import follow_the_sun
from prometheus_dagster.core.partitions import partitions_def_for

TIER_TAG = "prometheus/tier"
MARKET_TAG = "prometheus/market"
REFERENCE_JOB = "reference_data"
PRIORITY_TAG = "dagster/priority"  # the queued run coordinator dequeues higher values first
# tier 1 must run (ingestion, QC, the engine chain), 2 is degradable (refits, analytics), 3 is
# best effort (research backfills, big backtests)
TIER_PRIORITY = {"1": 10, "2": 0, "3": -10}
# tier-1 runs are retried from the failed step: 3 times (run_retries in dagster.yaml)
TIER1_RETRIES = {"dagster/max_retries": "3", "dagster/retry_strategy": "FROM_FAILURE"}


def tier_tags(tier: str) -> dict[str, str]:
    """Run tags of a priority tier: the tier (for concurrency limits) and its priority."""
    if tier not in TIER_PRIORITY:
        raise ValueError(f"unknown tier {tier!r}; tiers are {', '.join(TIER_PRIORITY)}")
    tags = {TIER_TAG: tier, PRIORITY_TAG: str(TIER_PRIORITY[tier])}
    return {**tags, **TIER1_RETRIES} if tier == "1" else tags


def research_tags() -> dict[str, str]:
    """Tags for a research backfill: tier 3, lowest priority; the tier-3 concurrency limit keeps
    such runs from taking the slots tier-1 work needs."""
    return tier_tags("3")



def daily_job_name(market_id: str) -> str:
    return f"{market_id}_daily"


def _keys(assets: Sequence[AssetsDefinition]) -> list:
    return [k for a in assets for k in a.keys]


def reference_job(assets: Sequence[AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        REFERENCE_JOB,
        selection=AssetSelection.assets(*_keys(assets)),
        tags=tier_tags("1"),
        description="Markets, issuers, instruments (and the embedded market's ground truth).",
    )


def daily_job(market_id: str, assets: Sequence[AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    """Every asset partitioned by ``market_id``'s calendar, as one job."""
    return define_asset_job(
        daily_job_name(market_id),
        selection=AssetSelection.assets(*_keys(assets)),
        partitions_def=partitions_def_for(market_id),
        tags={**tier_tags("1"), MARKET_TAG: market_id},
        description=f"The daily chain of {market_id}: ingestion, then every engine.",
    )


ENCODERS_GROUP = "encoders"


def training_job_name(market_id: str, group: str = ENCODERS_GROUP) -> str:
    """``<M>_model_training`` for the encoders, ``<M>_<group>_training`` for other refits."""
    return f"{market_id}_model_training" if group == ENCODERS_GROUP \
        else f"{market_id}_{group}_training"


def training_job(market_id: str, assets: Sequence[AssetsDefinition],
                 group: str = ENCODERS_GROUP) -> UnresolvedAssetJobDefinition:
    """A market's model-training assets of one group (partitioned by refit period, not by
    day), tier 2."""
    return define_asset_job(
        training_job_name(market_id, group),
        selection=AssetSelection.assets(*_keys(assets)),
        partitions_def=assets[0].partitions_def,
        tags={**tier_tags("2"), MARKET_TAG: market_id},
        description=f"Model refits of {market_id} (one partition per refit period).",
    )


QC_GROUP = "qc"


def qc_job_name(market_id: str) -> str:
    return f"{market_id}_preopen_qc"


def qc_job(market_id: str, assets: Sequence[AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    """A market's pre-open checks of its previous session (started by the PRE_OPEN sensor)."""
    return define_asset_job(
        qc_job_name(market_id),
        selection=AssetSelection.assets(*_keys(assets)),
        partitions_def=partitions_def_for(market_id),
        tags={**tier_tags("1"), MARKET_TAG: market_id},
        description=f"Pre-open quality checks of {market_id}'s previous session.",
    )


BACKTEST_GROUP = "backtest"


def backtest_job_name(market_id: str) -> str:
    return f"{market_id}_backtest"


def backtest_job(market_id: str, asset: AssetsDefinition) -> UnresolvedAssetJobDefinition:
    """A market's backtest (run config: strategy, range, strict mode), tier 3: research work
    that queues behind tier-1 runs."""
    return define_asset_job(
        backtest_job_name(market_id),
        selection=AssetSelection.assets(*asset.keys),
        tags={**tier_tags("3"), MARKET_TAG: market_id},
        description=f"Backtest one strategy on {market_id} over a date range (run config).",
    )


def jobs_for(assets: Sequence[AssetsDefinition]) -> list[UnresolvedAssetJobDefinition]:
    """Group assets by partitioning: unpartitioned -> reference job (backtests: the market's
    backtest job); partitioned by the market's trading days -> its daily job (the market is
    the first element of the asset key), except pre-open checks (group ``qc``) -> the
    market's QC job; any other partitioning (model refits) -> the market's training job of
    the asset's group."""
    backtests = [a for a in assets if a.partitions_def is None
                 and BACKTEST_GROUP in a.group_names_by_key.values()]
    unpartitioned = [a for a in assets if a.partitions_def is None and a not in backtests]
    by_market: dict[str, list[AssetsDefinition]] = {}
    training: dict[tuple[str, str], list[AssetsDefinition]] = {}
    qc: dict[str, list[AssetsDefinition]] = {}
    for a in assets:
        if a.partitions_def is None:
            continue
        market = next(iter(a.keys)).path[0]
        groups = set(a.group_names_by_key.values())
        if QC_GROUP in groups:
            qc.setdefault(market, []).append(a)
        elif a.partitions_def == partitions_def_for(market):
            by_market.setdefault(market, []).append(a)
        else:
            training.setdefault((market, min(groups)), []).append(a)
    jobs = [reference_job(unpartitioned)] if unpartitioned else []
    # follow the sun: Asia closes first, then Europe, then the Americas; GLOBAL runs after them
    order = {m: i for i, m in enumerate(follow_the_sun())}
    for market in sorted(by_market, key=lambda m: order.get(m, len(order))):
        jobs.append(daily_job(market, by_market[market]))
    for market, group in sorted(training, key=lambda mg: (order.get(mg[0], len(order)), mg[1])):
        jobs.append(training_job(market, training[(market, group)], group))
    for market in sorted(qc, key=lambda m: order.get(m, len(order))):
        jobs.append(qc_job(market, qc[market]))
    jobs += [backtest_job(next(iter(a.keys)).path[0], a) for a in backtests]
    return jobs
