"""How ``vector`` columns are kept on disk. Frames always carry a vector as little-endian float32
bytes; a column may declare a compact stored format, applied on write and undone on read:

- ``float32``: the bytes as they are (4 bytes per value, exact);
- ``float16``: IEEE half precision (2 bytes per value; ~3 significant digits);
- ``int8``: a float32 scale (the row's largest absolute value / 127) then one signed byte per
  value (1 byte per value + 4 per row).

A compact column declares its dimension. A stored vector's format is told by its length (4d,
2d or d + 4 bytes), so a warehouse written in another format, or before the column became
compact, reads the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

VECTOR_FORMATS = ("float32", "float16", "int8")
_SCALE_BYTES = 4


def stored_length(fmt: str, dim: int) -> int:
    """Bytes of one stored vector of ``dim`` values in ``fmt``."""
    return {"float32": 4 * dim, "float16": 2 * dim, "int8": dim + _SCALE_BYTES}[fmt]


def check_format(fmt: str, dim: int | None) -> None:
    """Raise ValueError unless ``fmt`` is known and a compact format has a dimension whose
    stored lengths cannot be confused (more than 4 values)."""
    if fmt not in VECTOR_FORMATS:
        raise ValueError(f"unknown vector format {fmt!r} (choose from {', '.join(VECTOR_FORMATS)})")
    if fmt != "float32" and (dim is None or dim <= 4):
        raise ValueError(f"vector format {fmt} needs the column's dimension (more than 4)")


def _matrix(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    bad = next((len(b) for b in blobs if len(b) != 4 * dim), None)
    if bad is not None:
        raise ValueError(f"a vector of {bad // 4} values where {dim} are declared")
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)


def quantize_int8(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-row float32 scales, int8 values) with ``values * scale`` close to ``m``."""
    peak = np.abs(m).max(axis=1) if m.shape[1] else np.zeros(len(m), dtype=np.float32)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype("<f4")
    q = np.clip(np.rint(m / scale[:, None]), -127, 127).astype(np.int8)
    return scale, q


def encode_vectors(blobs: Sequence[bytes | None], fmt: str, dim: int | None
                   ) -> list[bytes | None]:
    """float32 vector bytes (None for missing) in the stored format ``fmt``."""
    if fmt == "float32":
        return list(blobs)
    assert dim is not None
    present = [i for i, b in enumerate(blobs) if b is not None]
    out: list[bytes | None] = [None] * len(blobs)
    if not present:
        return out
    m = _matrix([blobs[i] for i in present], dim)  # type: ignore[misc]
    if fmt == "float16":
        rows = m.astype("<f2")
        stored = [rows[k].tobytes() for k in range(len(present))]
    else:
        scale, q = quantize_int8(m)
        stored = [scale[k].tobytes() + q[k].tobytes() for k in range(len(present))]
    for k, i in enumerate(present):
        out[i] = stored[k]
    return out


def decode_vectors(blobs: Sequence[bytes | None], dim: int | None) -> list[bytes | None]:
    """Stored vectors (any format, told by length) as float32 bytes; without a dimension the
    bytes are float32 already."""
    if dim is None:
        return list(blobs)
    out = list(blobs)
    half = [i for i, b in enumerate(blobs) if b is not None and len(b) == 2 * dim]
    if half:
        m = np.frombuffer(b"".join(blobs[i] for i in half),  # type: ignore[misc]
                          dtype="<f2").reshape(len(half), dim).astype("<f4")
        for k, i in enumerate(half):
            out[i] = m[k].tobytes()
    quarter = [i for i, b in enumerate(blobs) if b is not None and len(b) == dim + _SCALE_BYTES]
    if quarter:
        raw = np.frombuffer(b"".join(blobs[i] for i in quarter),  # type: ignore[misc]
                            dtype=np.uint8).reshape(len(quarter), dim + _SCALE_BYTES)
        scale = raw[:, :_SCALE_BYTES].copy().view("<f4")
        m = raw[:, _SCALE_BYTES:].view(np.int8).astype("<f4") * scale
        for k, i in enumerate(quarter):
            out[i] = m[k].tobytes()
    wrong = next((b for b in out if b is not None and len(b) != 4 * dim), None)
    if wrong is not None:
        raise ValueError(f"a stored vector of {len(wrong)} bytes fits no format of {dim} values")
    return out


def round_trip(m: np.ndarray, fmt: str) -> np.ndarray:
    """``m`` (rows of vectors) as readers get it back after storing it in ``fmt``."""
    m32 = np.ascontiguousarray(m, dtype="<f4")
    if fmt == "float32":
        return m32
    if fmt == "float16":
        return m32.astype("<f2").astype("<f4")
    scale, q = quantize_int8(m32)
    return q.astype("<f4") * scale[:, None]
