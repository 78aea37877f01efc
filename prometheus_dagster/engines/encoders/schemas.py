"""Output tables of the encoders: text, numeric-window and joint embeddings
(``docs/engines/embeddings.md``).

Every vector is 384 float32 values, L2-normalised, with the ``model_id`` that made it on the
same row. Frames and readers carry float32 bytes; the warehouse keeps them as ``VECTOR_FORMAT``
(``core.vector_storage``): ``benchmarks.embedding_precision`` measured its nearest-neighbour
recall@10 against float32 (README, "What is stored, what is regenerated").
"""

from __future__ import annotations

from prometheus_dagster.core.schemas import Column, TableSchema, register_table

EMBEDDING_DIM = 384
VECTOR_FORMAT = "float16"


def _req(name: str, dtype: str, description: str = "") -> Column:
    return Column(name, dtype, False, description)


def _opt(name: str, dtype: str, description: str = "") -> Column:
    return Column(name, dtype, True, description)


def _vector(description: str) -> Column:
    return Column("vector", "vector", False, description, vector_format=VECTOR_FORMAT,
                  vector_dim=EMBEDDING_DIM)


TEXT_EMBEDDINGS = register_table(TableSchema("text_embeddings", (
    _req("market_id", "str"), _req("date", "date", "session date of the text"),
    _req("source_type", "str", "NEWS (articles) or MACRO (market wraps and macro texts)"),
    _req("source_id", "str", "article_id"),
    _req("model_id", "str", "text model, e.g. text-fin-general-v1"),
    _req("text_hash", "str", "sha256 of model_id and the embedded text (the cache key)"),
    _vector(f"384 values, unit norm, stored as {VECTOR_FORMAT}"),
    _req("config_id", "str"),
), primary_key=("source_type", "source_id", "model_id"), partition_column="date",
    market_column="market_id"))

NUMERIC_WINDOW_EMBEDDINGS = register_table(TableSchema("numeric_window_embeddings", (
    _req("market_id", "str"), _req("entity_type", "str", "INSTRUMENT, ISSUER, SECTOR or MARKET"),
    _req("entity_id", "str"), _req("as_of_date", "date"),
    _req("window_spec", "str", "e.g. 21s = the last 21 sessions up to as_of_date"),
    _req("model_id", "str", "registered encoder and version, e.g. US_EQ.num-window-core-v1/2"),
    _vector(f"384 values, unit norm, stored as {VECTOR_FORMAT}"),
    _req("config_id", "str"),
), primary_key=("entity_type", "entity_id", "as_of_date", "window_spec", "model_id"),
    partition_column="as_of_date", market_column="market_id"))

JOINT_EMBEDDINGS = register_table(TableSchema("joint_embeddings", (
    _req("market_id", "str"),
    _req("joint_type", "str", "NUMERIC_WINDOW (an entity's window) or NEWS_TEXT (an article)"),
    _req("entity_type", "str", "INSTRUMENT, ISSUER, SECTOR, MARKET or ARTICLE"),
    _req("entity_id", "str"), _req("as_of_date", "date"),
    _req("model_id", "str", "registered joint encoder and version"),
    _vector(f"384 values, unit norm, in the shared text/numeric space, stored as "
            f"{VECTOR_FORMAT}"),
    _req("config_id", "str"),
), primary_key=("joint_type", "entity_type", "entity_id", "as_of_date", "model_id"),
    partition_column="as_of_date", market_column="market_id"))

EMBEDDING_TABLES = ("text_embeddings", "numeric_window_embeddings", "joint_embeddings")
