"""Assessment assets per market: the instrument scores of each strategy trading the market,
made with the model version trained strictly before each date (``steps/assessment.py``), with
their MLflow run, decision records and metadata; the model refits are in
``assessment_models.py``."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    asset,
)

from prometheus_dagster.assets.assessment_models import assessment_training_asset
from prometheus_dagster.assets.common import register_config, run_dates, write_decisions
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.assessment import AssessmentConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.assessment import (  # noqa: F401  (re-exported for other modules)
    compute_scores,
    read_assessment_inputs,
    registered_name,
    score_decisions,
    score_inputs,
)
from prometheus_dagster.steps.common import chunked
from prometheus_dagster.steps.universe import register_strategies

GROUP = "assessment"
TABLE = "instrument_scores"


def assessment_config() -> LoadedConfig:
    return load_engine_config("assessment")


def instrument_scores_asset(market_id: str, cfg: AssessmentConfig) -> AssetsDefinition:
    inputs = score_inputs(cfg)

    @asset(
        key=AssetKey([market_id, TABLE]),
        group_name=GROUP,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": TABLE, **declare(step_name(market_id, TABLE), inputs, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"Instrument scores of each strategy trading {market_id}, per horizon: "
                    "expected excess return (fragility penalty on the long side), score, "
                    "confidence, signal label and per-family contributions.",
    )
    def _scores(context: AssetExecutionContext, warehouse: WarehouseResource,
                mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = assessment_config()
        typed = loaded.typed(AssessmentConfig)
        config_id = register_config(wh, loaded)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return empty_frame(TABLE)
        parts, no_model = [], []
        for chunk in chunked(dates, context.log, f"{market_id} instrument scores"):
            part, missing = compute_scores(wh, mlflow, market_id, chunk, typed, config_id,
                                           strategies)
            parts.append(part)
            no_model += missing
        out = pd.concat([p for p in parts if len(p)] or [empty_frame(TABLE)], ignore_index=True)
        if no_model:
            context.log.warning(
                f"{market_id}: no assessment model trained before {no_model[0].date()} "
                f"({len(no_model)} date(s)): no scores; materialize "
                f"{market_id}/assessment_models for the period")
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            for (sid, h), g in out.groupby(["strategy_id", "horizon_days"]):
                run.log_metric_series(f"{sid}_h{h}_mean_confidence",
                                      g.groupby("as_of_date")["confidence"].mean())
            run.log_metrics({"rows": len(out), "dates_without_model": len(no_model)})
            lineage = run.metadata()
            run_id = run.run_id
        if len(out):
            write_decisions(wh, context, "assessment", market_id, dates,
                            score_decisions(out, inputs.refs(market_id)),
                            mlflow_run_id=run_id)
        latest = out[out["as_of_date"] == out["as_of_date"].max()] if len(out) else out
        top = latest.sort_values("score", ascending=False).drop_duplicates("instrument_id")
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "models": ", ".join(sorted(set(out["model_id"]))) if len(out) else "none",
            "dates_without_model": len(no_model),
            "top_scores": MetadataValue.md("\n".join(
                f"- {r.instrument_id} ({r.strategy_id}, h{r.horizon_days}): {r.score:.2f} "
                f"{r.signal_label}" for r in top.head(5).itertuples()) or "none")})
        return out

    return _scores


def assessment_assets(markets: list[str]) -> list[AssetsDefinition]:
    cfg = assessment_config().typed(AssessmentConfig)
    return [a for m in markets
            for a in (assessment_training_asset(m, cfg), instrument_scores_asset(m, cfg))]
