"""Text embedding assets per market: MiniLM vectors of the day's news (``steps/
text_embeddings.py``), cached by text hash, with their MLflow run and metadata."""

import time

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import register_config, require_quality_passed, run_dates
from prometheus_dagster.assets.lineage import asset_deps, declare, step_name
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.engines.encoders import EncodersConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.steps.text_embeddings import TEXT_INPUTS, compute_text_embeddings

GROUP = "encoders"


def text_embeddings_asset(market_id: str) -> AssetsDefinition:
    name = step_name(market_id, "text_embeddings")

    @asset(
        key=AssetKey([market_id, "text_embeddings"]),
        group_name=GROUP,
        deps=asset_deps(TEXT_INPUTS, market_id),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "text_embeddings", **declare(name, TEXT_INPUTS, market_id)},
        tags={"prometheus/tier": "1"},
        description=f"384-d MiniLM embeddings of {market_id} news (NEWS: linked to an issuer; "
                    "MACRO: market wraps), cached by text hash.",
    )
    def _text_embeddings(context: AssetExecutionContext, warehouse: WarehouseResource,
                         mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, ["news_articles", "news_links"])
        loaded = load_engine_config("encoders")
        cfg = loaded.typed(EncodersConfig)
        config_id = register_config(wh, loaded)
        model_id = cfg.text.model_id

        def progress(done: int, total: int) -> None:
            if done == total or done % (20 * cfg.text.batch_size) < cfg.text.batch_size:
                context.log.info(f"{market_id} text embeddings: {done}/{total} new texts")

        started = time.perf_counter()
        result = compute_text_embeddings(wh, market_id, dates, cfg, config_id, progress)
        seconds = time.perf_counter() - started
        texts, computed = result.texts, result.computed
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                              params={"text_model_id": model_id}) as run:
            run.log_metrics({"texts": texts, "computed": computed,
                             "reused_from_cache": texts - computed, "seconds": seconds})
            lineage = run.metadata()
        context.log.info(f"{market_id}: {texts} texts over {len(dates)} date(s), "
                         f"{computed} embedded, {texts - computed} from the cache "
                         f"({result.cached_hashes} cached hashes found) in {seconds:.1f} s")
        context.add_output_metadata({**lineage, "texts": texts, "computed": computed,
                                     "model_id": model_id, "config_id": config_id})
        return result.frame

    return _text_embeddings
