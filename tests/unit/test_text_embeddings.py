"""Text embeddings: 384-d, unit norm, deterministic whatever the batch, produced with
networking disabled, cached by text hash."""

import socket

import numpy as np
import pytest

from prometheus_dagster.engines.encoders import article_text, embed_texts, embed_with_cache
from prometheus_dagster.engines.encoders import text as text_module
from prometheus_dagster.engines.encoders.config import TextEncoderConfig

TEXTS = [
    "Acme Corp beats expectations for Q1 2024. Results came in well ahead of forecasts.",
    "US stocks fall 2.3%. Panic selling gripped markets and liquidity thinned.",
    "Beta Industries hires restructuring advisers",
    "EURUSD rises 0.4% at 1.0912",
    "Gamma Holdings goes ex-dividend",
    "Delta Energy shares start trading after 2-for-1 split",
]


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_embeddings_load_and_run_without_network(no_network):
    text_module._model.cache_clear()  # load the model under the socket ban
    vecs = embed_texts(TEXTS)
    assert vecs.shape == (len(TEXTS), 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_a_texts_vector_does_not_depend_on_its_batch():
    alone = np.stack([embed_texts([t])[0] for t in TEXTS])
    together = embed_texts(TEXTS)
    reordered = embed_texts(TEXTS[::-1] + TEXTS[:2])[: len(TEXTS)][::-1]
    small_batches = embed_texts(TEXTS, TextEncoderConfig(batch_size=2))
    np.testing.assert_array_equal(alone, together)
    np.testing.assert_array_equal(together, reordered)
    np.testing.assert_array_equal(together, small_batches)


def test_related_texts_are_closer_than_unrelated_ones():
    v = embed_texts(["Stocks plunge as panic grips markets", "Shares tumble amid market panic",
                     "Company goes ex-dividend today"])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_cache_reuses_vectors_by_text_hash():
    cache: dict = {}
    first, hashes, computed = embed_with_cache(TEXTS[:3], "text-fin-general-v1", cache)
    assert computed == 3 and len(cache) == 3
    again, hashes2, computed2 = embed_with_cache(TEXTS[:4], "text-fin-general-v1", cache)
    assert computed2 == 1 and hashes2[:3] == hashes
    np.testing.assert_array_equal(first, again[:3])
    _, other, computed3 = embed_with_cache(TEXTS[:1], "text-other-v1", cache)
    assert computed3 == 1 and other[0] != hashes[0]


def test_article_text_joins_headline_and_body():
    assert article_text("Head", "Body text.") == "Head. Body text."
    assert article_text("Head", None) == "Head"
    assert article_text("Head", "x" * 5000, max_chars=50) == ("Head. " + "x" * 44)
