"""Compact vector formats: what is stored, what readers get back, and what is refused."""

from __future__ import annotations

import numpy as np
import pytest

from prometheus_dagster.core.schemas import Column
from prometheus_dagster.core.vector_storage import (
    decode_vectors,
    encode_vectors,
    round_trip,
    stored_length,
)


def _unit(n: int, dim: int, seed: int = 1) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(n, dim)).astype("<f4")
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.parametrize("fmt,length,atol", [("float32", 1536, 0.0), ("float16", 768, 1e-3),
                                             ("int8", 388, 2e-3)])
def test_each_format_stores_its_length_and_reads_back_close(fmt, length, atol) -> None:
    m = _unit(4, 384)
    stored = encode_vectors([*(r.tobytes() for r in m), None], fmt, 384)
    assert [len(b) for b in stored[:4]] == [length] * 4 == [stored_length(fmt, 384)] * 4
    assert stored[4] is None
    back = decode_vectors(stored, 384)
    assert back[4] is None
    got = np.stack([np.frombuffer(b, "<f4") for b in back[:4]])
    np.testing.assert_allclose(got, m, atol=atol, rtol=0)
    np.testing.assert_array_equal(got, round_trip(m, fmt))
    # stored again from what was read: the same bytes (a cached vector does not drift)
    assert encode_vectors(back, fmt, 384) == stored


def test_int8_keeps_a_zero_vector_and_the_sign_of_the_peak() -> None:
    m = np.zeros((2, 8), dtype="<f4")
    m[1, 3] = -0.5
    got = round_trip(m, "int8")
    np.testing.assert_array_equal(got[0], 0.0)
    assert got[1, 3] == pytest.approx(-0.5) and np.count_nonzero(got[1]) == 1


def test_a_vector_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="a vector of 5 values where 8 are declared"):
        encode_vectors([np.ones(5, "<f4").tobytes()], "float16", 8)
    with pytest.raises(ValueError, match="stored vector of 7 bytes"):
        decode_vectors([b"\0" * 7], 8)


def test_columns_declare_a_known_format_with_a_dimension() -> None:
    Column("v", "vector", vector_format="float16", vector_dim=384)
    with pytest.raises(ValueError, match="unknown vector format 'bf16'"):
        Column("v", "vector", vector_format="bf16", vector_dim=384)
    with pytest.raises(ValueError, match="needs the column's dimension"):
        Column("v", "vector", vector_format="int8")
    with pytest.raises(ValueError, match="only a vector column"):
        Column("x", "float", vector_format="float16", vector_dim=384)
