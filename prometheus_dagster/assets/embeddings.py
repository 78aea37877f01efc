"""Encoder assets per market: text embeddings of the day's news, yearly encoder training
(registered in MLflow with the last date of its data), and numeric-window and joint embeddings
made with the version trained strictly before each date."""

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)

from prometheus_dagster.assets.common import register_config, require_quality_passed, run_dates
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import (
    market_partitions_def,
    model_for_date_mapping,
    yearly_refit_partitions_def,
)
from prometheus_dagster.core.schemas import vector_to_array
from prometheus_dagster.engines.encoders import (
    EncoderBundle,
    EncodersConfig,
    article_text,
    embed_joint_numeric,
    embed_numeric,
    embed_text,
    embed_with_cache,
    text_hash,
    train_encoder_bundle,
    window_summaries,
)
from prometheus_dagster.engines.features import FeaturePanel, FeaturesConfig
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse, between

GROUP = "encoders"
TIER = {"prometheus/tier": "1"}
BUNDLE_ARTIFACT = "encoder_bundle"
_HASH_CHUNK = 1000


def encoders_config() -> tuple[EncodersConfig, str, FeaturesConfig]:
    loaded = load_engine_config("encoders")
    return loaded.config, loaded.config_id, load_engine_config("features").config  # type: ignore[return-value]


def registered_name(market_id: str, model_id: str) -> str:
    """Model Registry name of a market's encoder, e.g. ``US_EQ.joint-news-window-v1``."""
    return f"{market_id}.{model_id}"


def model_row_id(name: str, version: int) -> str:
    """The ``model_id`` written on vector rows: registered name and version."""
    return f"{name}/{version}"


# --- reading ----------------------------------------------------------------------------------
def load_feature_panel(wh: Warehouse, market_id: str, start: pd.Timestamp,
                       end: pd.Timestamp) -> FeaturePanel:
    """Feature tables, prices and reference data of a market dated in [start, end]
    (statements: reported on or before ``end``)."""
    def part(table: str) -> pd.DataFrame:
        return wh.read_partitions(table, market_id=market_id, start=start, end=end)

    return FeaturePanel(
        returns=part("returns_daily"), volatility=part("volatility_daily"),
        liquidity=part("liquidity_daily"), prices=part("prices_daily"),
        instruments=wh.read("instruments", where={"market_id": market_id}),
        issuers=wh.read("issuers", where={"market_id": market_id}),
        fundamentals=wh.read_partitions("fundamentals", market_id=market_id, end=end))


def read_text_vectors(wh: Warehouse, market_id: str, start: pd.Timestamp | None,
                      end: pd.Timestamp, model_id: str) -> pd.DataFrame:
    """article_id (source_id), date and vector (float32 array) of stored text embeddings."""
    where = {"market_id": market_id, "model_id": model_id, "date": between(start, end)}
    rows = wh.read("text_embeddings", where=where,
                   columns=["source_id", "date", "vector"], order_by=["date", "source_id"])
    return pd.DataFrame({"article_id": rows["source_id"].astype(str),
                         "date": pd.to_datetime(rows["date"]),
                         "vector": [vector_to_array(b) for b in rows["vector"]]})


def _cached_vectors(wh: Warehouse, model_id: str, hashes: list[str]) -> dict[str, np.ndarray]:
    cache: dict[str, np.ndarray] = {}
    unique = sorted(set(hashes))
    for i in range(0, len(unique), _HASH_CHUNK):
        rows = wh.read("text_embeddings", where={"model_id": model_id,
                                                 "text_hash": unique[i:i + _HASH_CHUNK]},
                       columns=["text_hash", "vector"], order_by=["text_hash"])
        for h, b in zip(rows["text_hash"], rows["vector"], strict=True):
            cache.setdefault(h, vector_to_array(b))
    return cache


# --- text embeddings --------------------------------------------------------------------------
def text_embeddings_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "text_embeddings"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, "news_articles"]), AssetKey([market_id, "news_links"])],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "text_embeddings"},
        tags=TIER,
        description=f"384-d MiniLM embeddings of {market_id} news (NEWS: linked to an issuer; "
                    "MACRO: market wraps), cached by text hash.",
    )
    def _text_embeddings(context: AssetExecutionContext, warehouse: WarehouseResource,
                         mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, ["news_articles", "news_links"])
        loaded = load_engine_config("encoders")
        cfg: EncodersConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        model_id = cfg.text.model_id
        arts = wh.read_partitions("news_articles", market_id=market_id, dates=dates)
        links = wh.read_partitions("news_links", market_id=market_id, dates=dates)
        linked = set(links.dropna(subset=["issuer_id"])["article_id"].astype(str))
        texts = [article_text(h, b, cfg.text.max_chars)
                 for h, b in zip(arts["headline"], arts["body"], strict=True)]
        started = time.perf_counter()
        cache = _cached_vectors(wh, model_id, [text_hash(model_id, t) for t in texts])
        cached = len(cache)

        def progress(done: int, total: int) -> None:
            if done == total or done % (20 * cfg.text.batch_size) < cfg.text.batch_size:
                context.log.info(f"{market_id} text embeddings: {done}/{total} new texts")

        vectors, hashes, computed = embed_with_cache(texts, model_id, cache, cfg.text, progress)
        seconds = time.perf_counter() - started
        out = pd.DataFrame({
            "market_id": market_id, "date": pd.to_datetime(arts["date"]),
            "source_type": ["NEWS" if a in linked else "MACRO"
                            for a in arts["article_id"].astype(str)],
            "source_id": arts["article_id"].astype(str), "model_id": model_id,
            "text_hash": hashes, "vector": list(vectors), "config_id": config_id})
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                              params={"text_model_id": model_id}) as run:
            run.log_metrics({"texts": len(texts), "computed": computed,
                             "reused_from_cache": len(texts) - computed,
                             "seconds": seconds})
            lineage = run.metadata()
        context.log.info(f"{market_id}: {len(texts)} texts over {len(dates)} date(s), "
                         f"{computed} embedded, {len(texts) - computed} from the cache "
                         f"({cached} cached hashes found) in {seconds:.1f} s")
        context.add_output_metadata({**lineage, "texts": len(texts), "computed": computed,
                                     "model_id": model_id, "config_id": config_id})
        return out

    return _text_embeddings


# --- yearly training --------------------------------------------------------------------------
def training_span(market_id: str, year_start: pd.Timestamp, cfg: EncodersConfig,
                  ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first date, trained_through) of the data behind the model for the year."""
    cut = trading_calendar(market_id).previous_trading_day(year_start)
    first = (pd.Timestamp(year_start) - pd.DateOffset(years=cfg.refit.max_history_years)
             if cfg.refit.max_history_years else pd.Timestamp("1900-01-01"))
    return first, cut


def encoder_training_asset(market_id: str, first_year: int) -> AssetsDefinition:
    inputs = ("returns_daily", "volatility_daily", "liquidity_daily", "text_embeddings",
              "news_links", "fundamentals")

    @asset(
        key=AssetKey([market_id, "encoder_models"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in inputs],
        partitions_def=yearly_refit_partitions_def(first_year),
        metadata={"table": "models", "partition_extra": {
            "model_type": ["numeric_window_encoder", "joint_encoder"]}},
        tags={"prometheus/tier": "2"},
        description=f"Numeric window encoder and joint text <-> window encoder for "
                    f"{market_id}: partition Y is trained on data before 1 January Y and "
                    "registered in MLflow with that last date.",
    )
    def _encoder_models(context: AssetExecutionContext, warehouse: WarehouseResource,
                        mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        cfg, _, fcfg = encoders_config()
        config_id = register_config(wh, load_engine_config("encoders"))
        rows = []
        for key in context.partition_keys:
            year_start = pd.Timestamp(key)
            first, cut = training_span(market_id, year_start, cfg)
            rows.extend(_train_one(context, wh, mlflow, market_id, year_start, first, cut, cfg,
                                   fcfg, config_id))
        return pd.DataFrame(rows)

    return _encoder_models


def _train_one(context, wh: Warehouse, mlflow: MlflowTracking, market_id: str,
               year_start: pd.Timestamp, first: pd.Timestamp, cut: pd.Timestamp,
               cfg: EncodersConfig, fcfg: FeaturesConfig, config_id: str) -> list[dict]:
    panel = load_feature_panel(wh, market_id, first, cut)
    sessions = pd.DatetimeIndex(sorted(pd.to_datetime(panel.returns["date"]).unique()))
    texts = read_text_vectors(wh, market_id, first, cut, cfg.text.model_id)
    links = wh.read_partitions("news_links", market_id=market_id, start=first, end=cut)
    context.log.info(f"{market_id} encoders for {year_start.year}: {len(sessions)} sessions "
                     f"through {cut.date()}, {len(texts)} embedded texts")
    started = time.perf_counter()
    bundle, metrics = train_encoder_bundle(panel, sessions, texts, links, cut, cfg, fcfg,
                                           log=context.log.info)
    metrics = {**metrics, "training_seconds": time.perf_counter() - started}
    bundle.meta.update({"market_id": market_id, "valid_from": str(year_start.date()),
                        "config_id": config_id})
    names = [registered_name(market_id, cfg.numeric.model_id),
             registered_name(market_id, cfg.joint.model_id)]
    with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                          params={"trained_through": str(cut.date()),
                                  "valid_from": str(year_start.date()),
                                  "window": cfg.numeric.window,
                                  "first_session": str(sessions[0].date())},
                          extra_tags={"model_year": year_start.year}) as run:
        run.log_metrics(metrics)
        run.log_figure(_loss_figure(bundle.meta), "training_loss.png")
        with tempfile.TemporaryDirectory() as tmp:
            bundle.save(Path(tmp) / BUNDLE_ARTIFACT)
            run.log_artifact(Path(tmp) / BUNDLE_ARTIFACT)
        source = run.artifact_uri(BUNDLE_ARTIFACT)
        versions = {n: mlflow.register_model_version(
            n, source, run.run_id, cut, tags={"valid_from": str(year_start.date()),
                                              "config_id": config_id}) for n in names}
        run.set_tags({f"registered:{n}": v for n, v in versions.items()})
        lineage = run.metadata()
    k = cfg.joint.recall_k
    context.log.info(
        f"{market_id} {year_start.year}: held-out recall@{k} "
        f"{metrics[f'heldout_recall_at_{k}']:.3f} vs random "
        f"{metrics[f'random_recall_at_{k}']:.3f} ({metrics[f'recall_at_{k}_vs_random']:.2f}x); "
        + ", ".join(f"{n} v{v}" for n, v in versions.items()))
    context.add_output_metadata({
        **lineage, **{n: MetadataValue.int(v) for n, v in versions.items()},
        f"heldout_recall_at_{k}": metrics[f"heldout_recall_at_{k}"],
        f"recall_at_{k}_vs_random": metrics[f"recall_at_{k}_vs_random"]})
    model_type = {names[0]: "numeric_window_encoder", names[1]: "joint_encoder"}
    return [{
        "model_id": model_row_id(n, v), "model_name": n, "version": v, "market_id": market_id,
        "model_type": model_type[n], "valid_from": year_start, "trained_through": cut,
        "artifact_uri": source, "training_spec": {**bundle.meta, "metrics": metrics},
        "metrics": metrics, "mlflow_run_id": run.run_id,
        "dagster_run_id": context.run.run_id, "config_id": config_id,
    } for n, v in versions.items()]


def _loss_figure(meta: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for a, key, title in ((ax[0], "numeric_loss_per_epoch", "numeric encoder"),
                          (ax[1], "joint_loss_per_epoch", "joint encoder")):
        a.plot(range(1, len(meta[key]) + 1), meta[key], marker="o")
        a.set_title(f"{title}: InfoNCE loss")
        a.set_xlabel("epoch")
    fig.suptitle(f"trained through {meta['trained_through']}")
    fig.tight_layout()
    return fig


# --- inference --------------------------------------------------------------------------------
class BundleCache:
    """Encoder bundles by registered version, downloaded once per run."""

    def __init__(self, mlflow: MlflowTracking):
        self.mlflow = mlflow
        self._loaded: dict[str, EncoderBundle] = {}

    def get(self, version: dict) -> EncoderBundle:
        source = str(version["source"])
        if source not in self._loaded:
            self._loaded[source] = EncoderBundle.load(self.mlflow.download(source))
        return self._loaded[source]


def versions_by_date(mlflow: MlflowTracking, market_id: str, model_id: str,
                     dates: list[pd.Timestamp]) -> dict[pd.Timestamp, dict | None]:
    return mlflow.resolve_model_versions(registered_name(market_id, model_id), dates)


def _vector_rows(index: pd.DataFrame, vectors: np.ndarray, **columns) -> pd.DataFrame:
    return pd.DataFrame({
        "market_id": index["market_id"].to_numpy(),
        "entity_type": index["entity_type"].to_numpy(),
        "entity_id": index["entity_id"].astype(str).to_numpy(),
        "as_of_date": pd.to_datetime(index["as_of_date"]).to_numpy(),
        **columns, "vector": list(vectors)})


def window_embedding_asset(market_id: str, first_year: int) -> AssetsDefinition:
    tables = ("numeric_window_embeddings", "joint_embeddings")
    model_key = AssetKey([market_id, "encoder_models"])
    outs = {f"{market_id}__{t}": AssetOut(
        key=AssetKey([market_id, t]), group_name=GROUP, metadata={"table": t},
        is_required=False, tags=TIER) for t in tables}
    deps = [AssetDep(model_key, partition_mapping=model_for_date_mapping()),
            *(AssetKey([market_id, t]) for t in ("returns_daily", "volatility_daily",
                                                 "liquidity_daily", "text_embeddings"))]

    @multi_asset(
        name=f"{market_id}_window_embeddings",
        outs=outs,
        deps=deps,
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
        cfg, _, fcfg = encoders_config()
        config_id = register_config(wh, load_engine_config("encoders"))
        frames, missing = embed_windows(wh, mlflow, market_id, dates, cfg, fcfg, config_id,
                                        log=context.log.info)
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
        for t in tables:
            if f"{market_id}__{t}" in context.selected_output_names:
                yield Output(frames[t], output_name=f"{market_id}__{t}",
                             metadata={**lineage, "rows": len(frames[t]),
                                       "models": ", ".join(models) or "none",
                                       "dates_without_model": len(missing),
                                       "config_id": config_id})

    return _window_embeddings


def embed_windows(wh: Warehouse, mlflow: MlflowTracking, market_id: str,
                  dates: list[pd.Timestamp], cfg: EncodersConfig, fcfg: FeaturesConfig,
                  config_id: str, log=None,
                  ) -> tuple[dict[str, pd.DataFrame], list[pd.Timestamp]]:
    """numeric_window_embeddings and joint_embeddings frames for ``dates``, and the dates left
    out because no encoder was trained strictly before them."""
    ncfg = cfg.numeric
    num_v = versions_by_date(mlflow, market_id, ncfg.model_id, dates)
    joint_v = versions_by_date(mlflow, market_id, cfg.joint.model_id, dates)
    missing = [d for d in dates if num_v[d] is None or joint_v[d] is None]
    dates = [d for d in dates if d not in set(missing)]
    frames = {"numeric_window_embeddings": [], "joint_embeddings": []}
    if not dates:
        return _frames(frames), missing
    start = trading_calendar(market_id).previous_trading_day(dates[0], ncfg.window + 5)
    panel = load_feature_panel(wh, market_id, start, dates[-1])
    texts = read_text_vectors(wh, market_id, dates[0], dates[-1], cfg.text.model_id)
    cache = BundleCache(mlflow)
    numeric_rows, joint_rows = frames["numeric_window_embeddings"], frames["joint_embeddings"]
    groups: dict[tuple[int, int], list[pd.Timestamp]] = {}
    for d in dates:
        groups.setdefault((num_v[d]["version"], joint_v[d]["version"]), []).append(d)
    for (nv, jv), group_dates in sorted(groups.items()):
        bundle = cache.get(joint_v[group_dates[0]])
        num_id = model_row_id(registered_name(market_id, ncfg.model_id), nv)
        joint_id = model_row_id(registered_name(market_id, cfg.joint.model_id), jv)
        for et in ncfg.entity_types:
            summaries, index = window_summaries(panel, et, group_dates, ncfg.window, fcfg)
            if not len(index):
                continue
            index = index.assign(market_id=market_id)
            numeric_rows.append(_vector_rows(
                index, embed_numeric(bundle, summaries), window_spec=f"{ncfg.window}s",
                model_id=num_id, config_id=config_id))
            joint_rows.append(_vector_rows(
                index, embed_joint_numeric(bundle, summaries), joint_type="NUMERIC_WINDOW",
                model_id=joint_id, config_id=config_id))
        day_texts = texts[texts["date"].isin(group_dates)]
        if len(day_texts):
            idx = pd.DataFrame({"market_id": market_id, "entity_type": "ARTICLE",
                                "entity_id": day_texts["article_id"].to_numpy(),
                                "as_of_date": day_texts["date"].to_numpy()})
            joint_rows.append(_vector_rows(
                idx, embed_text(bundle, np.stack(day_texts["vector"].to_numpy())),
                joint_type="NEWS_TEXT", model_id=joint_id, config_id=config_id))
        if log:
            log(f"{market_id}: {len(group_dates)} date(s) with {num_id} and {joint_id}")
    return _frames(frames), missing


def _frames(parts: dict[str, list[pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    from prometheus_dagster.core.schemas import empty_frame

    return {t: pd.concat(p, ignore_index=True) if p else empty_frame(t) for t, p in parts.items()}


def encoder_assets(market_ids: list[str], text_markets: list[str]) -> list[AssetsDefinition]:
    """Text embeddings for every market in ``text_markets``; trained encoders and window
    embeddings for ``market_ids`` (markets with issuer-linked news)."""
    cfg, _, _ = encoders_config()
    first_year = cfg.refit.first_year
    out: list[AssetsDefinition] = [text_embeddings_asset(m) for m in text_markets]
    for m in market_ids:
        out += [encoder_training_asset(m, first_year), window_embedding_asset(m, first_year)]
    return out

