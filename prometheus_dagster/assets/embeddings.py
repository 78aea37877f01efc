"""Encoder assets per market: text embeddings of the day's news (``assets/text_embeddings.py``),
yearly encoder refits (``assets/encoder_models.py``), and here the numeric-window and joint
embeddings made with the version trained strictly before each date
(``steps/window_embeddings.py``)."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    BackfillPolicy,
    Output,
    multi_asset,
)

from prometheus_dagster.assets.common import register_config, require_quality_passed, run_dates
from prometheus_dagster.assets.encoder_models import encoder_training_asset
from prometheus_dagster.assets.lineage import asset_deps, declare
from prometheus_dagster.assets.text_embeddings import text_embeddings_asset
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.encoders import EncodersConfig
from prometheus_dagster.engines.features import FeaturesConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.encoder_models import training_span  # noqa: F401  (re-exported)
from prometheus_dagster.steps.encoders import (  # noqa: F401  (re-exported)
    BundleCache,
    model_row_id,
    registered_name,
    versions_by_date,
)
from prometheus_dagster.steps.window_embeddings import WINDOW_TABLES, embed_windows, window_inputs

GROUP = "encoders"


def window_embedding_asset(market_id: str) -> AssetsDefinition:
    name = f"{market_id}_window_embeddings"
    inputs = window_inputs(load_engine_config("encoders").typed(EncodersConfig))
    outs = {f"{market_id}__{t}": AssetOut(
        key=AssetKey([market_id, t]), group_name=GROUP,
        metadata={"table": t, **declare(name, inputs, market_id)},
        is_required=False, tags={"prometheus/tier": "1"}) for t in WINDOW_TABLES}

    @multi_asset(
        name=name,
        outs=outs,
        deps=asset_deps(inputs, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        can_subset=True,
        description=f"Numeric-window embeddings of {market_id} entities and joint-space "
                    "embeddings of entities and articles, with the encoder version trained "
                    "strictly before each date.",
    )
    def _window_embeddings(context: AssetExecutionContext, warehouse: WarehouseResource,
                           mlflow: MlflowTracking):
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, ["prices_daily", "news_articles"])
        loaded = load_engine_config("encoders")
        cfg = loaded.typed(EncodersConfig)
        fcfg = load_engine_config("features").typed(FeaturesConfig)
        config_id = register_config(wh, loaded)
        frames, missing = embed_windows(wh, mlflow, market_id, dates, cfg, fcfg, config_id,
                                        log=context.log)
        if missing:
            context.log.warning(
                f"{market_id}: no encoder trained strictly before {missing[0].date()} "
                f"({len(missing)} of {len(dates)} date(s) left without window embeddings); "
                f"materialize {market_id}/encoder_models for {missing[0].year} "
                f"(job {market_id}_model_training) and re-run these dates")
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            run.log_metrics({**{f"rows_{t}": len(f) for t, f in frames.items()},
                             "dates_without_model": len(missing)})
            lineage = run.metadata()
        models = sorted(set(frames["numeric_window_embeddings"]["model_id"])
                        | set(frames["joint_embeddings"]["model_id"]))
        for t in WINDOW_TABLES:
            if f"{market_id}__{t}" in context.selected_output_names:
                yield Output(frames[t], output_name=f"{market_id}__{t}",
                             metadata={**lineage, "rows": len(frames[t]),
                                       "models": ", ".join(models) or "none",
                                       "dates_without_model": len(missing),
                                       "config_id": config_id})

    return _window_embeddings


def encoder_assets(market_ids: list[str], text_markets: list[str]) -> list[AssetsDefinition]:
    """Text embeddings for every market in ``text_markets``; trained encoders and window
    embeddings for ``market_ids`` (markets with issuer-linked news)."""
    first_year = load_engine_config("encoders").typed(EncodersConfig).refit.first_year
    out: list[AssetsDefinition] = [text_embeddings_asset(m) for m in text_markets]
    for m in market_ids:
        out += [encoder_training_asset(m, first_year), window_embedding_asset(m)]
    return out
