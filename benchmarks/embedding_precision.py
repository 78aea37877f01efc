"""Retrieval quality of the stored embedding formats: recall@10 of nearest-neighbour search by
cosine similarity over vectors stored as float16 or int8 (per-row scale), against the float32
vectors of a warehouse.

    .venv/bin/python -m benchmarks.embedding_precision [--warehouse PATH] [--corpus 20000]
        [--queries 500]

Per embedding table (text, numeric-window, joint) of the DuckDB warehouse at PATH (default: the
one under PROMETHEUS_HOME; it must hold float32 vectors, e.g. a home prepared by
``benchmarks.storage`` before the tables became compact, or ``make demo`` with
``vector_format: float32``): a random corpus of up to ``--corpus`` vectors and ``--queries`` of
them as queries; each query's 10 nearest other vectors of the corpus, found in the float32
vectors and in each format's round trip. A neighbour counts when its float32 similarity reaches
the float32 tenth best (ties count). Results: ``benchmarks/results/embedding_precision.json``
and ``.md``; a format with recall@10 below 0.99 keeps a table at float32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, write_results
from prometheus_dagster.core.vector_storage import (
    VECTOR_FORMATS,
    decode_vectors,
    round_trip,
    stored_length,
)

RESULTS = REPO / "benchmarks" / "results"
TABLES = ("text_embeddings", "numeric_window_embeddings", "joint_embeddings")
DIM = 384
K = 10
RECALL_FLOOR = 0.99


def load_vectors(path: Path, table: str) -> np.ndarray:
    """Every vector of ``table`` as float32 rows (none when the table is missing); stops when
    some are stored compactly (the originals are needed)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        blobs = [r[0] for r in con.execute(f'select "vector" from "{table}"').fetchall()]
    except duckdb.CatalogException:
        return np.empty((0, DIM), dtype="<f4")
    finally:
        con.close()
    compact = sum(1 for b in blobs if b is not None and len(b) != 4 * DIM)
    if compact:
        raise SystemExit(f"{table}: {compact} vectors are not stored as float32; the originals "
                         "are needed")
    decoded = [b for b in decode_vectors([bytes(b) for b in blobs if b is not None], DIM)
               if b is not None]
    return np.frombuffer(b"".join(decoded), dtype="<f4").reshape(len(decoded), DIM)


def _unit(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def recall_at_k(original: np.ndarray, stored: np.ndarray, queries: np.ndarray,
                k: int = K) -> float:
    """Mean share of each query's k nearest neighbours (cosine, itself left out) found in
    ``stored`` whose similarity in ``original`` reaches the original k-th best."""
    exact, approx = _unit(original.astype(np.float64)), _unit(stored.astype(np.float64))
    hits = []
    for q in queries:
        truth = exact @ exact[q]
        truth[q] = -np.inf
        kth = np.partition(truth, -k)[-k]
        sims = approx @ approx[q]
        sims[q] = -np.inf
        found = np.argpartition(sims, -k)[-k:]
        hits.append(float(np.mean(truth[found] >= kth - 1e-12)))
    return float(np.mean(hits))


def measure(vectors: np.ndarray, corpus: int, queries: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    if len(vectors) > corpus:
        vectors = vectors[np.sort(rng.choice(len(vectors), corpus, replace=False))]
    picked = rng.choice(len(vectors), min(queries, len(vectors)), replace=False)
    out: dict = {"vectors": int(len(vectors)), "queries": int(len(picked)), "formats": {}}
    for fmt in VECTOR_FORMATS:
        stored = round_trip(vectors, fmt)
        cos = np.sum(_unit(stored.astype(np.float64)) * _unit(vectors.astype(np.float64)), axis=1)
        out["formats"][fmt] = {
            "bytes_per_vector": stored_length(fmt, DIM),
            "recall_at_10": round(recall_at_k(vectors, stored, picked), 4),
            "max_cosine_error": float(np.max(1.0 - cos)),
        }
    return out


def format_table(result: dict) -> str:
    lines = [f"### Recall@{K} of cosine nearest neighbours, stored format vs float32 "
             f"({result['warehouse']})", "",
             "| table | vectors (queries) | format | bytes / vector | recall@10 | "
             "max 1 - cos(stored, float32) |", "|---|---|---|---|---|---|"]
    for table, r in result["tables"].items():
        for fmt, f in r["formats"].items():
            lines.append(f"| {table} | {r['vectors']:,} ({r['queries']}) | {fmt} | "
                         f"{f['bytes_per_vector']} | {f['recall_at_10']:.4f} | "
                         f"{f['max_cosine_error']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from prometheus_dagster.core.paths import warehouse_path

    parser = argparse.ArgumentParser(prog="benchmarks.embedding_precision")
    parser.add_argument("--warehouse", default=None)
    parser.add_argument("--corpus", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--out", default=str(RESULTS / "embedding_precision.json"))
    args = parser.parse_args(argv)
    path = Path(args.warehouse) if args.warehouse else warehouse_path()
    result: dict = {"warehouse": str(path), "tables": {}}
    for table in TABLES:
        vectors = load_vectors(path, table)
        if len(vectors) > K:
            result["tables"][table] = measure(vectors, args.corpus, args.queries)
    table = format_table(result)
    print(table)
    if args.out:
        write_results(args.out, result, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
