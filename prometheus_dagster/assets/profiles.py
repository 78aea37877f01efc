"""Profile assets per market: issuer profiles with risk flags and a profile embedding, point in
time (``steps/profiles.py``), with their MLflow run and metadata."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import register_config, require_quality_passed, run_dates
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.encoders import EncodersConfig
from prometheus_dagster.engines.features import FeaturesConfig
from prometheus_dagster.engines.profiles import RISK_FLAGS, ProfilesConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.profiles import (  # noqa: F401  (anchor_similarity: re-exported)
    anchor_similarity,
    compute_profiles,
    profiles_inputs,
)

GROUP = "profiles"


def profiles_asset(market_id: str) -> AssetsDefinition:
    name = step_name(market_id, "profiles")
    inputs = profiles_inputs(load_engine_config("profiles").typed(ProfilesConfig),
                             load_engine_config("encoders").typed(EncodersConfig))

    @asset(
        key=AssetKey([market_id, "profiles"]),
        group_name=GROUP,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "profiles", **declare(name, inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Issuer profiles of {market_id}: structured fields of the latest reported "
                    "statement, risk flags in [0, 1], profile embedding.",
    )
    def _profiles(context: AssetExecutionContext, warehouse: WarehouseResource,
                  mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, ["fundamentals", "news_links"])
        loaded = load_engine_config("profiles")
        config_id = register_config(wh, loaded)
        out = compute_profiles(wh, mlflow, market_id, dates, loaded.typed(ProfilesConfig),
                               load_engine_config("encoders").typed(EncodersConfig),
                               load_engine_config("features").typed(FeaturesConfig),
                               config_id, log=context.log)
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            daily = out.groupby("as_of_date")
            for flag in (*RISK_FLAGS, "profile_weakness"):
                run.log_metric_series(f"mean_{flag}", daily[flag].mean())
            run.log_metrics({
                "profiles": len(out),
                "without_statement": int(out["report_date"].isna().sum()),
                "without_embedding": int(out["profile_embedding"].isna().sum()),
                "with_recent_news": int((out["recent_articles"] > 0).sum())})
            lineage = run.metadata()
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "models": ", ".join(sorted(set(out["model_id"].dropna()))) or "none",
            "without_embedding": int(out["profile_embedding"].isna().sum())})
        return out

    return _profiles


def profile_assets(market_ids: list[str]) -> list[AssetsDefinition]:
    return [profiles_asset(m) for m in market_ids]
