"""Text embeddings step: MiniLM vectors of a market's news of each date, reusing the vectors
already stored for the same text (the cache is keyed by a hash of model id and text)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import vector_to_array
from prometheus_dagster.engines.encoders import EncodersConfig, article_text, embed_with_cache
from prometheus_dagster.engines.encoders.text import text_hash

TEXT_INPUTS = Inputs(Read("news_articles"),
                     Read("news_links", note="NEWS (linked to an issuer) or MACRO"))
HASH_CHUNK = 1000  # text hashes looked up in the cache per query


@dataclass
class TextEmbeddings:
    frame: pd.DataFrame  # text_embeddings rows of the dates
    texts: int
    computed: int  # texts embedded now (the others came from the cache)
    cached_hashes: int


def cached_vectors(reader: Any, model_id: str, hashes: list[str]) -> dict[str, np.ndarray]:
    """Stored vectors of ``hashes`` under ``model_id``, from any market and date.

    This reads the asset's own output table as a cache (a vector depends only on its text),
    not an input: it carries no lineage and is not declared (declaring it would make the asset
    depend on itself)."""
    cache: dict[str, np.ndarray] = {}
    unique = sorted(set(hashes))
    for i in range(0, len(unique), HASH_CHUNK):
        rows = reader.read("text_embeddings", where={"model_id": model_id,
                                                     "text_hash": unique[i:i + HASH_CHUNK]},
                           columns=["text_hash", "vector"], order_by=["text_hash"])
        for h, b in zip(rows["text_hash"], rows["vector"], strict=True):
            cache.setdefault(h, vector_to_array(b))
    return cache


def compute_text_embeddings(reader: Any, market_id: str, dates: list[pd.Timestamp],
                            cfg: EncodersConfig, config_id: str,
                            progress: Callable[[int, int], None] | None = None,
                            ) -> TextEmbeddings:
    """The text_embeddings rows of the market's articles dated on ``dates``: one read of the
    range's articles and links, one cache lookup, new texts embedded in equal-length batches
    (a vector depends only on its text, so a range equals its dates one by one)."""
    window = InputWindow(reader, TEXT_INPUTS, market_id, dates)
    model_id = cfg.text.model_id
    arts = window.frame("news_articles")
    links = window.frame("news_links")
    linked = set(links.dropna(subset=["issuer_id"])["article_id"].astype(str))
    texts = [article_text(h, b, cfg.text.max_chars)
             for h, b in zip(arts["headline"], arts["body"], strict=True)]
    cache = cached_vectors(reader, model_id, [text_hash(model_id, t) for t in texts])
    cached = len(cache)
    vectors, hashes, computed = embed_with_cache(texts, model_id, cache, cfg.text, progress)
    frame = pd.DataFrame({
        "market_id": market_id, "date": pd.to_datetime(arts["date"]),
        "source_type": ["NEWS" if a in linked else "MACRO"
                        for a in arts["article_id"].astype(str)],
        "source_id": arts["article_id"].astype(str), "model_id": model_id,
        "text_hash": hashes, "vector": list(vectors), "config_id": config_id})
    return TextEmbeddings(frame, len(texts), computed, cached)
