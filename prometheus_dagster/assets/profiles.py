"""Profile assets per market: issuer profiles with risk flags and a profile embedding, point in
time (statements by report date, news by date, encoders trained strictly before the date)."""

import functools

import numpy as np
import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    asset,
)

from prometheus_dagster.assets.common import register_config, require_quality_passed, run_dates
from prometheus_dagster.assets.embeddings import (
    BundleCache,
    encoders_config,
    load_feature_panel,
    model_row_id,
    read_text_vectors,
    registered_name,
    versions_by_date,
)
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def, model_for_date_mapping
from prometheus_dagster.engines.encoders import embed_joint_numeric, embed_text, window_summaries
from prometheus_dagster.engines.profiles import (
    RISK_FLAGS,
    ProfilesConfig,
    build_profiles,
    combine_embedding,
    recent_news,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "profiles"


@functools.cache
def _anchor_vectors(anchors: tuple[str, ...], text_model_id: str) -> np.ndarray:
    from prometheus_dagster.engines.encoders import embed_texts

    return embed_texts(list(anchors))


def anchor_similarity(texts: pd.DataFrame, config: ProfilesConfig,
                      text_model_id: str) -> pd.Series:
    """article_id -> largest cosine similarity of its text vector to the governance anchors."""
    if texts.empty:
        return pd.Series(dtype=float)
    anchors = _anchor_vectors(tuple(config.governance_anchors), text_model_id)
    sims = np.stack(texts["vector"].to_numpy()).astype(np.float64) @ anchors.T.astype(np.float64)
    return pd.Series(sims.max(axis=1), index=texts["article_id"].to_numpy())


def compute_profiles(wh: Warehouse, mlflow: MlflowTracking, market_id: str,
                     dates: list[pd.Timestamp], config: ProfilesConfig, config_id: str,
                     log=None) -> pd.DataFrame:
    """Profiles of the market's issuers on ``dates``; the embedding is left empty (with a
    note) on dates no encoder was trained before."""
    ecfg, _, fcfg = encoders_config()
    lookback_start = dates[0] - pd.Timedelta(days=config.news_lookback_days)
    issuers = wh.read("issuers", where={"market_id": market_id})
    issuer_ids = sorted(issuers.loc[issuers["issuer_type"].astype(str) == "COMPANY",
                                    "issuer_id"].astype(str))
    fundamentals = wh.read_partitions("fundamentals", market_id=market_id, end=dates[-1])
    links = wh.read_partitions("news_links", market_id=market_id, start=lookback_start,
                               end=dates[-1]).dropna(subset=["issuer_id"])
    texts = read_text_vectors(wh, market_id, lookback_start, dates[-1], ecfg.text.model_id)
    news = links[links["article_id"].astype(str).isin(set(texts["article_id"]))]
    sims = anchor_similarity(texts, config, ecfg.text.model_id)
    out = build_profiles(market_id, issuer_ids, dates, fundamentals,
                         news[["article_id", "issuer_id", "date"]], config, config_id, sims)
    if not issuer_ids:
        return out
    versions = versions_by_date(mlflow, market_id, ecfg.joint.model_id, dates)
    no_model = [d for d in dates if versions[d] is None]
    if no_model:
        mask = out["as_of_date"].isin(no_model)
        out.loc[mask, "notes"] = _append(out.loc[mask, "notes"],
                                         "no encoder trained before this date: no embedding")
        if log:
            log(f"{market_id}: no encoder trained before {no_model[0].date()} "
                f"({len(no_model)} date(s)): profiles without embeddings")
    modelled = [d for d in dates if versions[d] is not None]
    if not modelled:
        return out
    start = trading_calendar(market_id).previous_trading_day(modelled[0],
                                                             ecfg.numeric.window + 5)
    panel = load_feature_panel(wh, market_id, start, modelled[-1])
    recent = recent_news(news, issuer_ids, modelled, config.news_lookback_days)
    traded = _issuers_with_prices(panel, issuer_ids)
    text_vec = dict(zip(texts["article_id"], texts["vector"], strict=True))
    cache = BundleCache(mlflow)
    by_version: dict[int, list[pd.Timestamp]] = {}
    for d in modelled:
        by_version.setdefault(versions[d]["version"], []).append(d)
    row_of = {(i, pd.Timestamp(d)): k for k, (i, d) in
              enumerate(zip(out["issuer_id"], out["as_of_date"], strict=True))}
    embeddings = list(out["profile_embedding"])
    model_ids = list(out["model_id"])
    for version, vdates in sorted(by_version.items()):
        bundle = cache.get(versions[vdates[0]])
        mid = model_row_id(registered_name(market_id, ecfg.joint.model_id), version)
        summaries, index = window_summaries(panel, "ISSUER", vdates, ecfg.numeric.window, fcfg,
                                            entity_ids=traded)
        numeric = embed_joint_numeric(bundle, summaries)
        num_of = {(e, pd.Timestamp(d)): numeric[k] for k, (e, d) in
                  enumerate(zip(index["entity_id"], index["as_of_date"], strict=True))}
        mine = recent[recent["as_of_date"].isin(vdates)]
        arts = sorted(set(mine["article_id"]))
        joint_text = dict(zip(arts, embed_text(bundle, np.stack([text_vec[a] for a in arts]))
                              if arts else [], strict=True))
        texts_of = mine.groupby(["issuer_id", "as_of_date"])["article_id"].apply(list)
        for (issuer, d), k in row_of.items():
            if d not in vdates:
                continue
            arts_here = texts_of.get((issuer, d), [])
            vec = combine_embedding(num_of.get((issuer, d)),
                                    np.stack([joint_text[a] for a in arts_here])
                                    if arts_here else None, config.text_weight)
            if vec is not None:
                embeddings[k], model_ids[k] = vec, mid
    out["profile_embedding"] = embeddings
    out["model_id"] = model_ids
    return out


def _issuers_with_prices(panel, issuer_ids: list[str]) -> list[str]:
    """Issuers with at least one instrument priced in the panel (delisted ones have none)."""
    ins = panel.instruments
    priced = set(panel.returns["instrument_id"].astype(str))
    have = set(ins.loc[ins["instrument_id"].astype(str).isin(priced), "issuer_id"].astype(str))
    return [i for i in issuer_ids if i in have]


def _append(notes: pd.Series, text: str) -> pd.Series:
    return notes.map(lambda n: f"{n}; {text}" if isinstance(n, str) and n else text)


def profiles_asset(market_id: str) -> AssetsDefinition:
    inputs = ("fundamentals", "news_links", "text_embeddings", "returns_daily",
              "volatility_daily", "liquidity_daily", "issuers")

    @asset(
        key=AssetKey([market_id, "profiles"]),
        group_name=GROUP,
        deps=[*(AssetKey([market_id, t]) for t in inputs),
              AssetDep(AssetKey([market_id, "encoder_models"]),
                       partition_mapping=model_for_date_mapping())],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "profiles"},
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
        out = compute_profiles(wh, mlflow, market_id, dates, loaded.config,  # type: ignore[arg-type]
                               config_id, log=context.log.warning)
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
