"""Window embeddings step: numeric-window embeddings of a market's entities and joint-space
embeddings of entities and articles on each date, with the encoder version trained strictly
before the date.

A range is computed in one pass: one read of the look-back window, one registry lookup per
encoder, each version's bundle loaded once (and switched to float64 once), and the forward
passes batched over every (entity, date) of a chunk of dates and of a version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.encoders import EncodersConfig, window_summaries
from prometheus_dagster.engines.encoders.training import (
    inference,
    joint_numeric_vectors,
    numeric_vectors,
    text_vectors,
)
from prometheus_dagster.engines.features import FeaturesConfig
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

WINDOW_TABLES = ("numeric_window_embeddings", "joint_embeddings")
# dates whose windows are summarised together (bounds the raw windows held in memory:
# 500 issuers x 63 dates x 21 sessions x 16 features in float64 is about 85 MB)
SUMMARY_CHUNK_DATES = 63


def window_inputs(cfg: EncodersConfig) -> Inputs:
    """What the embeddings of date D read: the numeric window's sessions before D (with a
    margin of 5), D's text vectors and the encoder version valid for D."""
    return Inputs(*panel_reads(sessions=cfg.numeric.window + 5),
                  Read("text_embeddings", note="the articles of D, embedded in the joint space"),
                  Read("models", model=True, asset="encoder_models"))


def _vector_rows(index: pd.DataFrame, vectors: np.ndarray, **columns: Any) -> pd.DataFrame:
    return pd.DataFrame({
        "market_id": index["market_id"].to_numpy(),
        "entity_type": index["entity_type"].to_numpy(),
        "entity_id": index["entity_id"].astype(str).to_numpy(),
        "as_of_date": pd.to_datetime(index["as_of_date"]).to_numpy(),
        **columns, "vector": list(vectors)})


def embed_windows(reader: Any, models: Any, market_id: str, dates: list[pd.Timestamp],
                  cfg: EncodersConfig, fcfg: FeaturesConfig, config_id: str,
                  log: Any = None) -> tuple[dict[str, pd.DataFrame], list[pd.Timestamp]]:
    """numeric_window_embeddings and joint_embeddings frames for ``dates``, and the dates left
    out because no encoder was trained strictly before them. ``log``: a logger (progress and
    ETA of a long range, the versions used)."""
    ncfg = cfg.numeric
    num_v = versions_by_date(models, market_id, ncfg.model_id, dates)
    joint_v = versions_by_date(models, market_id, cfg.joint.model_id, dates)
    missing = [d for d in dates if num_v[d] is None or joint_v[d] is None]
    modelled = [d for d in dates if num_v[d] is not None and joint_v[d] is not None]
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in WINDOW_TABLES}
    if not modelled:
        return _frames(parts), missing
    window = InputWindow(reader, window_inputs(cfg), market_id, modelled)
    panel = load_feature_panel(window)
    texts = read_text_vectors(window, cfg.text.model_id, start=modelled[0])
    cache = BundleCache(models)
    say: Callable[[str], None] = log.info if log is not None else (lambda _m: None)
    used: dict[tuple[str, str], int] = {}
    for chunk in chunked(modelled, log, f"{market_id} window embeddings"):
        groups: dict[tuple[int, int], list[pd.Timestamp]] = {}
        for d in chunk:
            groups.setdefault((present(num_v[d])["version"], present(joint_v[d])["version"]),
                                []).append(d)
        for (nv, jv), group_dates in sorted(groups.items()):
            num_id = model_row_id(registered_name(market_id, ncfg.model_id), nv)
            joint_id = model_row_id(registered_name(market_id, cfg.joint.model_id), jv)
            used[num_id, joint_id] = used.get((num_id, joint_id), 0) + len(group_dates)
            with inference(cache.get(present(joint_v[group_dates[0]]))) as bundle:
                for et in ncfg.entity_types:
                    summaries, index = window_summaries(panel, et, group_dates, ncfg.window,
                                                        fcfg, chunk_dates=SUMMARY_CHUNK_DATES)
                    if not len(index):
                        continue
                    index = index.assign(market_id=market_id)
                    parts["numeric_window_embeddings"].append(_vector_rows(
                        index, numeric_vectors(bundle, summaries),
                        window_spec=f"{ncfg.window}s", model_id=num_id, config_id=config_id))
                    parts["joint_embeddings"].append(_vector_rows(
                        index, joint_numeric_vectors(bundle, summaries),
                        joint_type="NUMERIC_WINDOW", model_id=joint_id, config_id=config_id))
                day_texts = texts[texts["date"].isin(group_dates)]
                if len(day_texts):
                    idx = pd.DataFrame({"market_id": market_id, "entity_type": "ARTICLE",
                                        "entity_id": day_texts["article_id"].to_numpy(),
                                        "as_of_date": day_texts["date"].to_numpy()})
                    parts["joint_embeddings"].append(_vector_rows(
                        idx, text_vectors(bundle, np.stack(day_texts["vector"].to_numpy())),
                        joint_type="NEWS_TEXT", model_id=joint_id, config_id=config_id))
    for (num_id, joint_id), n in sorted(used.items()):
        say(f"{market_id}: {n} date(s) with {num_id} and {joint_id}")
    return _frames(parts), missing


def _frames(parts: dict[str, list[pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    return {t: pd.concat(p, ignore_index=True) if p else empty_frame(t) for t, p in parts.items()}
