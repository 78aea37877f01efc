"""Warehouse footprint of the daily chain: bytes per table, bytes per session per 100 names,
peak RSS, and whether re-running the same range grows the DuckDB file.

    .venv/bin/python -m benchmarks.storage [--names 120] [--sessions 21] [--market US_EQ]
        [--keep DIR]

In a fresh PROMETHEUS_HOME (embedded market of ``--names`` names, DuckDB warehouse), as
``benchmarks.chain`` prepares it (reference data, ~600 days of history, refits, a warm-up
session), the market's daily job runs as ONE single-run backfill over the last S sessions, then
again over the same range. After each stage the warehouse is measured from outside the runs:
file size, and bytes per table from ``pragma_storage_info`` (each segment's share of its blocks).
The chain's growth per session per 100 names projects a 20-year (5,040 sessions) 500-name
warehouse. At the end, what each key index costs: every table's rows with a key copied into a
fresh file, measured without and with the index. Results: ``benchmarks/results/storage.json``
and ``storage.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.chain import RESULTS, _subprocess
from benchmarks.common import write_results

PROJECTED_SESSIONS = 5040
PROJECTED_NAMES = 500
MB = 1024 * 1024


def table_bytes(path: Path) -> dict[str, Any]:
    """File size, used blocks and bytes per table of the DuckDB file at ``path`` (opened
    read-only; no run may hold it). A segment's bytes run to the next segment of its block
    (or the block's end); additional blocks of a segment count whole."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        block = _scalar(con, "select block_size from pragma_database_size()")
        used = _scalar(con, "select used_blocks from pragma_database_size()")
        names = con.execute("select schema_name, table_name from duckdb_tables() "
                            "where not internal and database_name = current_database()"
                            ).fetchall()
        # a table of another namespace keeps its schema in its name (truth.distress_events)
        tables = {(t if schema == "main" else f"{schema}.{t}"): f'"{schema}"."{t}"'
                  for schema, t in names}
        rows = {t: _scalar(con, f"select count(*) from {q}") for t, q in tables.items()}
        segments = []  # (block_id, offset, table, extra blocks)
        for t in tables:
            for block_id, offset, extra in con.execute(
                    f"select block_id, block_offset, additional_block_ids "
                    f"from pragma_storage_info('{t}') where persistent and block_id >= 0"
            ).fetchall():
                segments.append((int(block_id), int(offset), t, len(extra or [])))
    finally:
        con.close()
    per_block: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    for block_id, offset, t, extra in segments:
        per_block[block_id].append((offset, t, extra))
    sizes: dict[str, int] = defaultdict(int)
    for entries in per_block.values():
        entries.sort()
        for i, (offset, t, extra) in enumerate(entries):
            end = entries[i + 1][0] if i + 1 < len(entries) else block
            sizes[t] += (end - offset) + extra * block
    return {"file_bytes": path.stat().st_size, "used_bytes": used * block,
            "tables": {t: {"bytes": sizes.get(t, 0), "rows": rows[t]} for t in tables}}


def _scalar(con: Any, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def key_index_bytes(path: Path, work: Path, min_rows: int = 10_000) -> dict[str, dict[str, Any]]:
    """What each key index of the DuckDB file at ``path`` costs: per table holding a primary
    key or unique constraint and at least ``min_rows`` rows, its rows copied into a fresh file
    in ``work``, the used bytes without an index, then with a unique index on the key columns
    (the structure DuckDB builds for the constraint)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        keys = con.execute(
            "select schema_name, table_name, constraint_column_names from duckdb_constraints() "
            "where constraint_type in ('PRIMARY KEY', 'UNIQUE') "
            "and database_name = current_database()").fetchall()
        counts = {(sch, t): _scalar(con, f'select count(*) from "{sch}"."{t}"')
                  for sch, t, _ in keys}
    finally:
        con.close()
    out = {}
    for sch, t, cols in keys:
        if counts[sch, t] < min_rows:
            continue
        copy = work / f"index-{sch}-{t}.duckdb"
        db = duckdb.connect(str(copy))
        try:
            db.execute(f"attach '{path}' as src (read_only)")
            db.execute(f'create table t as select * from src."{sch}"."{t}"')
            db.execute("detach src")
            db.execute("checkpoint")
            size = "select used_blocks * block_size from pragma_database_size()"
            plain = _scalar(db, size)
            db.execute("create unique index k on t (" + ", ".join(f'"{c}"' for c in cols) + ")")
            db.execute("checkpoint")
            indexed = _scalar(db, size)
        finally:
            db.close()
            copy.unlink(missing_ok=True)
        name = t if sch == "main" else f"{sch}.{t}"
        out[name] = {"rows": counts[sch, t], "key": list(cols), "without_index_bytes": plain,
                     "index_bytes": indexed - plain}
    return out


def growth(before: dict, after: dict) -> dict[str, dict[str, int]]:
    """Per table: bytes and rows added between two measurements (tables that changed)."""
    out = {}
    for t, a in after["tables"].items():
        b = before["tables"].get(t, {"bytes": 0, "rows": 0})
        if a["bytes"] != b["bytes"] or a["rows"] != b["rows"]:
            out[t] = {"bytes": a["bytes"] - b["bytes"], "rows": a["rows"] - b["rows"]}
    return out


def per_session_per_100(added_bytes: int, sessions: int, names: int) -> float:
    """MB per session per 100 names."""
    return added_bytes / MB / sessions / (names / 100)


def format_table(result: dict) -> str:
    names, sessions = result["names"], result["sessions"]
    first, rerun = result["first_run"], result["rerun"]
    added = growth(result["before"], result["after_first"])
    used = result["after_first"]["used_bytes"] - result["before"]["used_bytes"]
    rate = per_session_per_100(used, sessions, names)
    projected = result["before"]["used_bytes"] / MB / names * PROJECTED_NAMES \
        + rate * PROJECTED_SESSIONS * PROJECTED_NAMES / 100
    rerun_growth = {k: result["after_rerun"][k] - result["after_first"][k]
                    for k in ("file_bytes", "used_bytes")}
    lines = [f"### {result['market']} daily chain, {names} names, {sessions} sessions "
             f"({result['window']})", "",
             "| table | rows added | MB added | MB / session / 100 names |", "|---|---|---|---|"]
    for t, g in sorted(added.items(), key=lambda kv: -kv[1]["bytes"]):
        lines.append(f"| {t} | {g['rows']:,} | {g['bytes'] / MB:.2f} | "
                     f"{per_session_per_100(g['bytes'], sessions, names):.3f} |")
    lines += ["", f"- used blocks: {result['before']['used_bytes'] / MB:.1f} MB before, "
              f"{result['after_first']['used_bytes'] / MB:.1f} MB after the run, "
              f"{result['after_rerun']['used_bytes'] / MB:.1f} MB after re-running the range",
              f"- file: {result['before']['file_bytes'] / MB:.1f} MB before, "
              f"{result['after_first']['file_bytes'] / MB:.1f} MB after the run, "
              f"{result['after_rerun']['file_bytes'] / MB:.1f} MB after re-running the range",
              f"- **{rate:.3f} MB per session per 100 names** (used blocks)",
              f"- projection, {PROJECTED_SESSIONS:,} sessions x {PROJECTED_NAMES} names: "
              f"{projected / 1024:.1f} GB (the prepared history scaled to "
              f"{PROJECTED_NAMES} names, plus the per-session rate)",
              f"- re-running the range: file {rerun_growth['file_bytes'] / MB:+.1f} MB, used "
              f"blocks {rerun_growth['used_bytes'] / MB:+.1f} MB",
              f"- peak RSS: {first['peak_rss_mb']:.0f} MB (run), {rerun['peak_rss_mb']:.0f} MB "
              f"(re-run); wall {first['wall_s']:.0f} s / {rerun['wall_s']:.0f} s"
              + ("" if first["success"] and rerun["success"] else
                 f"; FAILED: {first['failures'] or rerun['failures']}")]
    if result.get("key_indexes"):
        lines += ["", "| table (key index) | rows | MB without index | MB of the index |",
                  "|---|---|---|---|"]
        for t, k in sorted(result["key_indexes"].items(), key=lambda kv: -kv[1]["index_bytes"]):
            lines.append(f"| {t} ({', '.join(k['key'])}) | {k['rows']:,} | "
                         f"{k['without_index_bytes'] / MB:.2f} | {k['index_bytes'] / MB:.2f} |")
    return "\n".join(lines)


def bench(names: int, sessions: int, market: str, tmp: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"storage-{names}-", dir=tmp))
    warehouse = home / "warehouse.duckdb"
    print(f"==> {market}, {names} names: preparing {home}", flush=True)
    t = time.perf_counter()
    result: dict[str, Any] = {"market": market, "names": names, "sessions": sessions,
                              **_subprocess(["prepare", str(home), str(names), market,
                                             str(sessions)])}
    print(f"    prepared in {time.perf_counter() - t:.0f} s", flush=True)
    setup = json.loads((home / "chain_setup.json").read_text())
    result["window"] = f"{setup['window_start']}...{setup['end']}"
    result["before"] = table_bytes(warehouse)
    result["first_run"] = _subprocess(["run", str(home), str(sessions)])
    result["after_first"] = table_bytes(warehouse)
    print(f"    run: {result['first_run']['wall_s']} s, peak RSS "
          f"{result['first_run']['peak_rss_mb']:.0f} MB", flush=True)
    result["rerun"] = _subprocess(["run", str(home), str(sessions)])
    result["after_rerun"] = table_bytes(warehouse)
    print(f"    re-run: {result['rerun']['wall_s']} s", flush=True)
    result["key_indexes"] = key_index_bytes(warehouse, home)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.storage")
    parser.add_argument("--names", type=int, default=120)
    parser.add_argument("--sessions", type=int, default=21)
    parser.add_argument("--market", default="US_EQ")
    parser.add_argument("--out", default=str(RESULTS / "storage.json"),
                        help="JSON results (the table goes beside it as .md; '': nowhere)")
    parser.add_argument("--keep", default=None,
                        help="prepare the home in this folder and keep it (default: a "
                        "temporary folder, removed)")
    args = parser.parse_args(argv)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        result = bench(args.names, args.sessions, args.market, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
            result = bench(args.names, args.sessions, args.market, Path(tmp))
    table = format_table(result)
    print("\n" + table + "\n", flush=True)
    if args.out:
        write_results(args.out, result, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
