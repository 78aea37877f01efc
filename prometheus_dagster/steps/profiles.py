"""Profiles step: issuer profiles with risk flags and a profile embedding, point in time
(statements by report date, news by date, the encoder trained strictly before the date).

A range is computed in one pass: one read of the look-back window, the recent news of every
(issuer, date) found with binary searches, the joint-space forward passes batched over every
(issuer, date) and article of an encoder version, and the embeddings mixed row-wise with the
same arithmetic as one date at a time."""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.disk_cache import cache_dir, load_pickle, store_pickle
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.encoders import EMBEDDING_DIM, EncodersConfig, window_summaries
from prometheus_dagster.engines.encoders.training import (
    inference,
    joint_numeric_vectors,
    text_vectors,
)
from prometheus_dagster.engines.features import FeaturePanel, FeaturesConfig
from prometheus_dagster.engines.profiles import ProfilesConfig, build_profiles, recent_news
from prometheus_dagster.engines.profiles.compute import combine_embeddings
from prometheus_dagster.steps.common import chunked
from prometheus_dagster.steps.encoders import (
    BundleCache,
    load_feature_panel,
    model_row_id,
    panel_reads,
    present,
    read_text_vectors,
    registered_name,
    versions_by_date,
)
from prometheus_dagster.steps.window_embeddings import SUMMARY_CHUNK_DATES


def news_sessions(days: int) -> int:
    """Sessions before D that surely reach ``days`` calendar days back (a session is at
    least a weekday, five in every seven days)."""
    return 5 * math.ceil(days / 7)


def profiles_inputs(cfg: ProfilesConfig, ecfg: EncodersConfig) -> Inputs:
    """What the profiles of date D read: the issuers, every statement reported by D, the
    linked news and their text vectors of the news look-back, the numeric window's sessions
    (with a margin of 5) and the encoder version valid for D."""
    news = news_sessions(cfg.news_lookback_days)
    return Inputs(*panel_reads(sessions=ecfg.numeric.window + 5),
                  Read("news_links", sessions=news,
                       note=f"linked news of the last {cfg.news_lookback_days} days"),
                  Read("text_embeddings", sessions=news, note="the linked articles' vectors"),
                  Read("models", model=True, asset="encoder_models"))


@functools.cache
def _anchor_vectors(anchors: tuple[str, ...], text_model_id: str) -> np.ndarray:
    """The anchors' text vectors, kept on disk: a run whose articles' vectors all come from the
    text-embedding cache then never loads the text model (seconds per run process)."""
    from prometheus_dagster.engines.encoders import embed_texts

    key = hashlib.sha256("\x00".join((text_model_id, *anchors)).encode()).hexdigest()[:20]
    path = cache_dir("anchor_vectors") / f"{key}.pkl"
    stored = load_pickle(path)
    if isinstance(stored, np.ndarray) and stored.shape[0] == len(anchors):
        return stored
    vectors = embed_texts(list(anchors))
    store_pickle(path, vectors)
    return vectors


def anchor_similarity(texts: pd.DataFrame, config: ProfilesConfig,
                      text_model_id: str) -> pd.Series:
    """article_id -> largest cosine similarity of its text vector to the governance anchors."""
    if texts.empty:
        return pd.Series(dtype=float)
    anchors = _anchor_vectors(tuple(config.governance_anchors), text_model_id)
    sims = np.stack(texts["vector"].to_numpy()).astype(np.float64) @ anchors.T.astype(np.float64)
    return pd.Series(sims.max(axis=1), index=texts["article_id"].to_numpy())


def compute_profiles(reader: Any, models: Any, market_id: str, dates: list[pd.Timestamp],
                     config: ProfilesConfig, ecfg: EncodersConfig, fcfg: FeaturesConfig,
                     config_id: str, log: Any = None) -> pd.DataFrame:
    """Profiles of the market's issuers on ``dates``; the embedding is left empty (with a
    note) on dates no encoder was trained before. ``log``: a logger (dates without an encoder,
    progress and ETA of a long range)."""
    window = InputWindow(reader, profiles_inputs(config, ecfg), market_id, dates)
    start = dates[0] - pd.Timedelta(days=config.news_lookback_days)
    issuers = window.frame("issuers")
    issuer_ids = sorted(issuers.loc[issuers["issuer_type"].astype(str) == "COMPANY",
                                    "issuer_id"].astype(str))
    fundamentals = window.frame("fundamentals")
    links = window.frame("news_links")
    links = links[pd.to_datetime(links["date"]) >= start].dropna(subset=["issuer_id"])
    texts = read_text_vectors(window, ecfg.text.model_id, start=start)
    news = links[links["article_id"].astype(str).isin(set(texts["article_id"]))]
    sims = anchor_similarity(texts, config, ecfg.text.model_id)
    out = build_profiles(market_id, issuer_ids, dates, fundamentals,
                         news[["article_id", "issuer_id", "date"]], config, config_id, sims)
    if not issuer_ids:
        if log is not None:
            log.warning(f"{market_id}: no issuers of type COMPANY (a prices-only market?): "
                        "no profiles; universes and stability go without them")
        return out
    versions = versions_by_date(models, market_id, ecfg.joint.model_id, dates)
    no_model = [d for d in dates if versions[d] is None]
    if no_model:
        mask = out["as_of_date"].isin(no_model)
        out.loc[mask, "notes"] = _append(out.loc[mask, "notes"],
                                         "no encoder trained before this date: no embedding")
        if log is not None:
            log.warning(f"{market_id}: no encoder trained before {no_model[0].date()} "
                f"({len(no_model)} date(s)): profiles without embeddings")
    modelled = [d for d in dates if versions[d] is not None]
    if not modelled:
        return out
    panel = load_feature_panel(window)
    recent = recent_news(news, issuer_ids, modelled, config.news_lookback_days)
    traded = _issuers_with_prices(panel, issuer_ids)
    cache = BundleCache(models)
    embeddings = list(out["profile_embedding"])
    model_ids = list(out["model_id"])
    for chunk in chunked(modelled, log, f"{market_id} profiles"):
        by_version: dict[int, list[pd.Timestamp]] = {}
        for d in chunk:
            by_version.setdefault(present(versions[d])["version"], []).append(d)
        for version, vdates in sorted(by_version.items()):
            mid = model_row_id(registered_name(market_id, ecfg.joint.model_id), version)
            with inference(cache.get(present(versions[vdates[0]]))) as bundle:
                vecs = _version_embeddings(bundle, panel, out, recent, texts, traded, vdates,
                                           config, ecfg, fcfg)
            for k, vec in vecs.items():
                embeddings[k], model_ids[k] = vec, mid
    out["profile_embedding"] = embeddings
    out["model_id"] = model_ids
    return out


def _version_embeddings(bundle: Any, panel: FeaturePanel, out: pd.DataFrame,
                        recent: pd.DataFrame, texts: pd.DataFrame, traded: list[str],
                        vdates: list[pd.Timestamp], config: ProfilesConfig,
                        ecfg: EncodersConfig, fcfg: FeaturesConfig) -> dict[int, np.ndarray]:
    """Profile row -> embedding, for the rows dated on ``vdates`` (one encoder version)."""
    summaries, index = window_summaries(panel, "ISSUER", vdates, ecfg.numeric.window, fcfg,
                                        entity_ids=traded, chunk_dates=SUMMARY_CHUNK_DATES)
    numeric = joint_numeric_vectors(bundle, summaries)
    rows = np.nonzero(out["as_of_date"].isin(vdates).to_numpy())[0]
    keys = pd.MultiIndex.from_arrays([out["issuer_id"].to_numpy()[rows],
                                      pd.DatetimeIndex(out["as_of_date"].to_numpy()[rows])])
    num_at = pd.MultiIndex.from_arrays([index["entity_id"].astype(str).to_numpy(),
                                        pd.DatetimeIndex(index["as_of_date"])]).get_indexer(keys)
    mine = recent[recent["as_of_date"].isin(vdates)]
    arts = sorted(set(mine["article_id"]))
    text_of = dict(zip(texts["article_id"], texts["vector"], strict=True))
    joint_text = (text_vectors(bundle, np.stack([text_of[a] for a in arts])) if arts
                  else np.zeros((0, EMBEDDING_DIM), np.float32))
    # the articles of each row, in the order of ``mine`` (by date, then as linked)
    at_row = _row_of(mine, keys)
    art_pos = pd.Index(arts).get_indexer(mine["article_id"]) if arts else np.zeros(0, int)
    keep = at_row >= 0
    order = np.argsort(at_row[keep], kind="stable")
    at_row, art_pos = at_row[keep][order], art_pos[keep][order]
    bounds = np.searchsorted(at_row, np.arange(len(rows) + 1))
    text_rows = [art_pos[bounds[i]:bounds[i + 1]] for i in range(len(rows))]
    numeric_rows = (numeric[np.maximum(num_at, 0)] if len(numeric)
                    else np.zeros((len(rows), EMBEDDING_DIM), np.float32))
    vecs = combine_embeddings(numeric_rows, num_at >= 0, joint_text, text_rows,
                              config.text_weight)
    return {int(rows[i]): v for i, v in enumerate(vecs) if v is not None}


def _row_of(mine: pd.DataFrame, keys: pd.MultiIndex) -> np.ndarray:
    """Position in ``keys`` of each (issuer_id, as_of_date) of ``mine`` (-1: not a row)."""
    return keys.get_indexer(pd.MultiIndex.from_arrays([
        mine["issuer_id"].astype(str).to_numpy(), pd.DatetimeIndex(mine["as_of_date"])]))


def _issuers_with_prices(panel: FeaturePanel, issuer_ids: list[str]) -> list[str]:
    """Issuers with at least one instrument priced in the panel (delisted ones have none)."""
    ins = panel.instruments
    if ins is None:
        return []
    priced = set(panel.returns["instrument_id"].astype(str))
    have = set(ins.loc[ins["instrument_id"].astype(str).isin(priced), "issuer_id"].astype(str))
    return [i for i in issuer_ids if i in have]


def _append(notes: pd.Series, text: str) -> pd.Series:
    return notes.map(lambda n: f"{n}; {text}" if isinstance(n, str) and n else text)
