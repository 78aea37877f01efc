"""Encoders: text embeddings (MiniLM, offline), the numeric window encoder and the joint text
<-> numeric-window encoder (PyTorch, symmetric InfoNCE), trained point in time.

Importing the package declares the embedding tables and registers the ``encoders`` config.
"""

from prometheus_dagster.engines.encoders.bundle import EncoderBundle
from prometheus_dagster.engines.encoders.config import EncodersConfig
from prometheus_dagster.engines.encoders.contrastive import info_nce, recall_at_k
from prometheus_dagster.engines.encoders.schemas import EMBEDDING_DIM, EMBEDDING_TABLES
from prometheus_dagster.engines.encoders.summary import SUMMARY_DIM, summarise_windows
from prometheus_dagster.engines.encoders.text import (
    article_text,
    embed_texts,
    embed_with_cache,
    text_hash,
)
from prometheus_dagster.engines.encoders.training import (
    embed_joint_numeric,
    embed_numeric,
    embed_text,
    joint_pairs,
    train_encoder_bundle,
    window_summaries,
)

__all__ = [
    "EMBEDDING_DIM",
    "EMBEDDING_TABLES",
    "SUMMARY_DIM",
    "EncoderBundle",
    "EncodersConfig",
    "article_text",
    "embed_joint_numeric",
    "embed_numeric",
    "embed_text",
    "embed_texts",
    "embed_with_cache",
    "info_nce",
    "joint_pairs",
    "recall_at_k",
    "summarise_windows",
    "text_hash",
    "train_encoder_bundle",
    "window_summaries",
]
