"""Deterministic random streams that never look past the day being simulated.

Every random number the market uses belongs to a named *stream* (``"global"``, ``"eq:US_EQ"``,
...). A stream hands out a fixed-shape batch of draws per business day. Days are grouped in
blocks of ``BLOCK_DAYS``; each block has its own generator seeded from (seed, stream, block) and
is always drawn in full. So the draws of day *t* depend only on the seed, the stream and *t*,
never on how far the simulation runs: a longer ``end_date`` only appends blocks.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

BLOCK_DAYS = 64
Spec = Mapping[str, tuple[str, tuple[int, ...]]]


def stream_key(name: str) -> int:
    """A stable integer for a stream name (not Python's salted ``hash``)."""
    return zlib.crc32(name.encode("utf-8"))


def generator(seed: int, stream: str, *keys: int) -> np.random.Generator:
    """A generator for (seed, stream, keys...)."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream_key(stream), *keys]))


class DayDraws:
    """Per-day draws of one stream.

    ``spec`` maps a draw name to ``(kind, shape)``: kind is ``"normal"``, ``"uniform"`` or
    ``"t"`` (Student-t standardised to unit variance, ``t_df`` degrees of freedom) and shape the
    per-day shape. ``day(t)`` returns ``{name: array of that shape}``; ``all(n)`` the stacked
    draws of days ``0..n-1``.
    """

    def __init__(self, seed: int, stream: str, spec: Spec, t_df: float = 4.0):
        self.seed, self.stream, self.spec, self.t_df = seed, stream, dict(spec), t_df
        self._t_scale = float(np.sqrt(t_df / (t_df - 2.0)))
        self._block_id = -1
        self._block: dict[str, np.ndarray] = {}

    def block(self, b: int) -> dict[str, np.ndarray]:
        rng = generator(self.seed, self.stream, b)
        out = {}
        for name, (kind, shape) in self.spec.items():
            size = (BLOCK_DAYS, *shape)
            if kind == "normal":
                out[name] = rng.standard_normal(size)
            elif kind == "uniform":
                out[name] = rng.random(size)
            elif kind == "t":
                out[name] = rng.standard_t(self.t_df, size) / self._t_scale
            else:
                raise ValueError(f"unknown draw kind {kind!r}")
        return out

    def day(self, t: int) -> dict[str, np.ndarray]:
        b, i = divmod(t, BLOCK_DAYS)
        if b != self._block_id:
            self._block, self._block_id = self.block(b), b
        return {name: arr[i] for name, arr in self._block.items()}

    def all(self, n_days: int) -> dict[str, np.ndarray]:
        n_blocks = max(1, -(-n_days // BLOCK_DAYS))
        blocks = [self.block(b) for b in range(n_blocks)]
        return {name: np.concatenate([blk[name] for blk in blocks])[:n_days]
                for name in self.spec}
