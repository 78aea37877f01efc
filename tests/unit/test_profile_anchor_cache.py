"""The governance anchors' text vectors are kept on disk: a later process reads the same
vectors without loading the text model."""

from __future__ import annotations

import numpy as np
import pytest

import prometheus_dagster.engines.encoders as encoders
from prometheus_dagster.steps import profiles

ANCHORS = ("The board dismissed the auditor.", "Regulators opened a fraud probe.")


def test_anchor_vectors_are_read_back_without_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_HOME", str(tmp_path))
    profiles._anchor_vectors.cache_clear()
    try:
        first = profiles._anchor_vectors(ANCHORS, "minilm@test")
        profiles._anchor_vectors.cache_clear()  # a new process

        def no_model(*args, **kwargs):
            raise AssertionError("the text model was used")

        monkeypatch.setattr(encoders, "embed_texts", no_model)
        again = profiles._anchor_vectors(ANCHORS, "minilm@test")
        np.testing.assert_array_equal(again, first)
        assert again.shape == (2, 384)
        with pytest.raises(AssertionError, match="text model"):  # other anchors: computed
            profiles._anchor_vectors(ANCHORS[:1], "minilm@test")
    finally:
        profiles._anchor_vectors.cache_clear()
