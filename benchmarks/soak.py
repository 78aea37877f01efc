"""Soak: concurrent backfill runs and readers on one warehouse for a bounded time.

    .venv/bin/python -m benchmarks.soak [--seconds 60] [--writers 3] [--readers 3]
                                        [--backends duckdb,postgres] [--names 20]

For each backend, in a fresh folder: the embedded market's reference data is loaded, then
``--writers`` processes each run single-run backfills of the US_EQ ingestion assets (Dagster
``materialize``) over random ranges of 2-4 sessions drawn from the same 10 sessions (so runs
overlap), back to back, and ``--readers`` processes query the warehouse in a loop, alternating
``prometheus_dagster.sql`` with a plain client (DuckDB: ``duckdb.connect(read_only=True)`` under
a shared ``flock`` on the warehouse's lock file; PostgreSQL: psycopg2). Nothing starts a new run
or query after ``--seconds``. Reported per backend: runs completed, warehouse writes, lock waits
(DuckDB: the lock file was busy; PostgreSQL: the table's advisory lock was held), the seconds
spent waiting, retries on a program holding the DuckDB file, errors (runs or queries that
failed: must be 0), p50/p95 write and read latency, and whether the tables equal the same
ranges run one after another. PostgreSQL is skipped with a message when the server at
``PROMETHEUS_TEST_POSTGRES_URL`` (default 127.0.0.1:5432) is not reachable. Results:
``benchmarks/results/soak.json`` and ``soak.md``.
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml  # type: ignore[import-untyped]  # types-PyYAML is not installed

from benchmarks.common import write_results

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MARKET = "US_EQ"
SESSIONS = ["2023-02-01", "2023-02-02", "2023-02-03", "2023-02-06", "2023-02-07",
            "2023-02-08", "2023-02-09", "2023-02-10", "2023-02-13", "2023-02-14"]
PG_URL = os.environ.get("PROMETHEUS_TEST_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres")
COUNT_SQL = "select count(*) from prices_daily"
RUN_COLUMNS = {"ingested_at", "created_at", "ingestion_run_id", "dagster_run_id", "run_id",
               "computed_at"}
LOCK_WAIT_S = 0.005  # a lock acquired later than this counts as a wait


def _market_config(tmp: Path, names: int) -> Path:
    path = tmp / "market.yaml"
    path.write_text(yaml.safe_dump({
        "engine": "synthetic_market", "version": "soak", "seed": 11,
        "start_date": "2022-06-01", "end_date": "2023-03-31",
        "markets": {"US_EQ": {"n_instruments": names}, "EU_EQ": {"n_instruments": 8}}}))
    return path


def _resources(url: str, config: Path, mlflow_db: Path) -> dict[str, Any]:
    from prometheus_dagster.resources import build_resources
    from prometheus_dagster.resources.sources import SourceResource

    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{mlflow_db}")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(config))
    return resources


def _span(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last}


def _prepare(url: str, config: Path, tmp: Path) -> None:
    """The reference data the ingestion reads (instruments, issuers)."""
    from dagster import AssetKey, materialize

    from prometheus_dagster.assets.ingestion import ingestion_assets

    res = materialize(ingestion_assets([MARKET]), resources=_resources(url, config,
                                                                       tmp / "mlflow-prep.db"),
                      selection=[AssetKey([MARKET, "instruments"]),
                                 AssetKey([MARKET, "issuers"])])
    assert res.success, "loading the reference data failed"


class _Meter:
    """Counts the warehouse's writes, lock waits and retries inside one process."""

    def __init__(self) -> None:
        self.writes: list[float] = []
        self.lock_waits: list[float] = []
        self.retries = 0

    def install(self) -> None:
        from filelock import FileLock

        from prometheus_dagster.resources import warehouse_duckdb
        from prometheus_dagster.resources.warehouse import Warehouse
        from prometheus_dagster.resources.warehouse_postgres import _PostgresSession

        meter = self

        def timed(fn, into: list[float]):
            def wrapper(*args, **kw):
                started = time.perf_counter()
                try:
                    return fn(*args, **kw)
                finally:
                    into.append(time.perf_counter() - started)
            return wrapper

        Warehouse._write = timed(Warehouse._write, self.writes)  # type: ignore[method-assign]
        FileLock.acquire = timed(FileLock.acquire, self.lock_waits)  # type: ignore[method-assign]
        _PostgresSession.lock_table = timed(  # type: ignore[method-assign]
            _PostgresSession.lock_table, self.lock_waits)
        conflict = warehouse_duckdb.is_lock_conflict

        def counted(exc: BaseException) -> bool:
            found = conflict(exc)
            meter.retries += int(found)
            return found

        warehouse_duckdb.is_lock_conflict = counted

    def figures(self) -> dict[str, Any]:
        waits = [w for w in self.lock_waits if w > LOCK_WAIT_S]
        return {"writes": self.writes, "lock_waits": len(waits),
                "lock_wait_s": round(sum(waits), 3), "retries": self.retries}


def _writer(url: str, config: str, tmp: str, seed: int, deadline: float, results) -> None:
    """Child: back-to-back single-run backfills over random overlapping ranges."""
    out: dict[str, Any] = {"runs": 0, "errors": [], "ranges": []}
    meter = _Meter()
    try:
        from dagster import AssetKey, materialize

        from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets

        meter.install()
        keys = [AssetKey([MARKET, t]) for t in MARKET_TABLES]
        resources = _resources(url, Path(config), Path(tmp) / f"mlflow-{seed}.db")
        assets = ingestion_assets([MARKET])
        rng = random.Random(seed)
        while time.time() < deadline:
            i = rng.randrange(len(SESSIONS) - 1)
            j = min(len(SESSIONS) - 1, i + rng.randint(1, 3))
            res = materialize(assets, resources=resources, selection=keys,
                              tags=_span(SESSIONS[i], SESSIONS[j]), raise_on_error=False)
            if res.success:
                out["runs"] += 1
                out["ranges"].append((i, j))
            else:
                out["errors"].append("; ".join(str(e.event_specific_data)[:500]
                                               for e in res.all_events if e.is_step_failure))
    except BaseException:  # reported to the parent
        out["errors"].append(traceback.format_exc())
    results.put(("writer", {**out, **meter.figures()}))


def _plain_read(url: str, schema: str | None) -> int:
    if url.startswith("duckdb"):
        import duckdb

        path = url.split("duckdb://", 1)[1].lstrip("/")
        path = "/" + path
        with open(path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                con = duckdb.connect(path, read_only=True)
                try:
                    row = con.execute(COUNT_SQL).fetchone()
                finally:
                    con.close()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return int(row[0]) if row else 0
    import psycopg2

    con = psycopg2.connect(url.split("?")[0])
    try:
        with con.cursor() as cur:
            cur.execute(f'set search_path to "{schema}"')
            cur.execute(COUNT_SQL)
            row = cur.fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _reader(url: str, schema: str | None, deadline: float, results) -> None:
    """Child: queries in a loop, alternating the product's reader and a plain client."""
    out: dict[str, Any] = {"reads": [], "plain_reads": [], "errors": []}
    meter = _Meter()
    try:
        os.environ["PROMETHEUS_WAREHOUSE_URL"] = url
        import prometheus_dagster

        meter.install()
        turn = 0
        while time.time() < deadline:
            started = time.perf_counter()
            try:
                if turn % 2:
                    _plain_read(url, schema)
                    out["plain_reads"].append(time.perf_counter() - started)
                else:
                    prometheus_dagster.sql(COUNT_SQL)
                    out["reads"].append(time.perf_counter() - started)
            except Exception:
                out["errors"].append(traceback.format_exc()[-2000:])
            turn += 1
            time.sleep(0.05)
    except BaseException:
        out["errors"].append(traceback.format_exc())
    figures = meter.figures()
    results.put(("reader", {**out, "lock_waits": figures["lock_waits"],
                            "lock_wait_s": figures["lock_wait_s"],
                            "retries": figures["retries"]}))


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def ingested_tables(wh: Any) -> dict[str, pd.DataFrame]:
    """Every ingested table of a warehouse without its run bookkeeping columns, rows sorted:
    what two warehouses that ingested the same data hold alike."""
    from prometheus_dagster.assets.ingestion import MARKET_TABLES

    out = {}
    for table in MARKET_TABLES:
        frame = wh.read(table) if wh.table_exists(table) else pd.DataFrame()
        frame = frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])
        out[table] = frame.sort_values(list(frame.columns), ignore_index=True)
    return out


def _equals_serial(url: str, config: Path, tmp: Path, covered: list[int]) -> bool:
    """The soaked tables equal one run over the sessions the soak's runs covered, in a fresh
    DuckDB warehouse."""
    from dagster import AssetKey, materialize

    from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets

    if not covered:
        return False
    ref = f"duckdb:///{tmp / 'serial.duckdb'}"
    _prepare(ref, config, tmp)
    days = [SESSIONS[i] for i in covered]
    resources = _resources(ref, config, tmp / "mlflow-serial.db")
    for day in days:
        res = materialize(ingestion_assets([MARKET]), resources=resources,
                          selection=[AssetKey([MARKET, t]) for t in MARKET_TABLES],
                          partition_key=day)
        assert res.success, day
    from prometheus_dagster.resources.warehouse import Warehouse

    got, want = (ingested_tables(Warehouse.from_url(u)) for u in (url, ref))
    for table in MARKET_TABLES:
        try:
            pd.testing.assert_frame_equal(got[table], want[table], check_dtype=False)
        except AssertionError as exc:
            print(f"    {table} differs from the serial run: {str(exc)[:300]}", flush=True)
            return False
    return True


def soak(backend: str, seconds: float, writers: int, readers: int, names: int,
         tmp: Path) -> dict[str, Any]:
    schema = None
    if backend == "duckdb":
        url = f"duckdb:///{tmp / 'soak.duckdb'}"
    else:
        schema = f"prom_soak_{uuid.uuid4().hex[:8]}"
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    config = _market_config(tmp, names)
    _prepare(url, config, tmp)
    from prometheus_dagster.resources.warehouse import Warehouse

    Warehouse.from_url(url).ensure_table("prices_daily")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    # the children import for a while before their first run: the window starts when all have
    # been started, plus a margin, so that the measured seconds are concurrent
    deadline = time.time() + 20 + seconds
    procs = [ctx.Process(target=_writer, args=(url, str(config), str(tmp), w, deadline, results))
             for w in range(writers)]
    procs += [ctx.Process(target=_reader, args=(url, schema, deadline, results))
              for _ in range(readers)]
    started = time.monotonic()
    for p in procs:
        p.start()
    reports = [results.get(timeout=seconds + 1800) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = time.monotonic() - started
    w = [r for k, r in reports if k == "writer"]
    r = [r for k, r in reports if k == "reader"]
    writes = [x for rep in w for x in rep["writes"]]
    reads = [x for rep in r for x in rep["reads"]]
    plain = [x for rep in r for x in rep["plain_reads"]]
    errors = [e for rep in w + r for e in rep["errors"]]
    covered = sorted({k for rep in w for i, j in rep["ranges"] for k in range(i, j + 1)})
    result = {
        "backend": backend, "seconds": seconds, "wall_s": round(wall, 1),
        "writers": writers, "readers": readers, "names": names,
        "runs": sum(rep["runs"] for rep in w), "writes": len(writes),
        "reads": len(reads), "plain_reads": len(plain),
        "lock_waits": sum(rep["lock_waits"] for rep in w + r),
        "lock_wait_s": round(sum(rep["lock_wait_s"] for rep in w + r), 1),
        "retries": sum(rep["retries"] for rep in w + r),
        "errors": len(errors), "error_samples": errors[:3],
        "write_p50_ms": _pct(writes, 50), "write_p95_ms": _pct(writes, 95),
        "read_p50_ms": _pct(reads, 50), "read_p95_ms": _pct(reads, 95),
        "plain_read_p50_ms": _pct(plain, 50), "plain_read_p95_ms": _pct(plain, 95),
    }
    result["equals_serial"] = _equals_serial(url, config, tmp, covered)
    if schema is not None:
        _drop_schemas(schema)
    return result


def _drop_schemas(prefix: str) -> None:
    import psycopg2

    con = psycopg2.connect(PG_URL.split("?")[0])
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", [prefix])
        for (name,) in cur.fetchall():
            cur.execute(f'DROP SCHEMA "{name}" CASCADE')
    con.close()


def _postgres_reachable() -> str | None:
    import psycopg2

    try:
        psycopg2.connect(PG_URL.split("?")[0], connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        return str(exc).strip()
    return None


COLUMNS = ["backend", "seconds", "writers", "readers", "runs", "writes", "reads", "plain_reads",
           "lock_waits", "lock_wait_s", "retries", "errors", "write_p50_ms", "write_p95_ms",
           "read_p50_ms", "read_p95_ms", "plain_read_p50_ms", "plain_read_p95_ms",
           "equals_serial"]


def format_table(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c)) for c in COLUMNS) + " |" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.soak")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--names", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS / "soak.json"),
                        help="JSON results (the table goes beside it as .md; '': nowhere)")
    args = parser.parse_args(argv)
    results = []
    for backend in args.backends.split(","):
        if backend == "postgres" and (why := _postgres_reachable()):
            print(f"postgres skipped: not reachable at {PG_URL}: {why}", flush=True)
            continue
        print(f"{backend}: {args.writers} writers, {args.readers} readers, "
              f"{args.seconds:g} s ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"soak-{backend}-") as tmp:
            results.append(soak(backend, args.seconds, args.writers, args.readers,
                                args.names, Path(tmp)))
        for sample in results[-1]["error_samples"]:
            print(f"    error: {sample[-800:]}", flush=True)
    table = format_table(results)
    print("\n" + table + "\n", flush=True)
    if args.out:
        write_results(args.out, results, table)
    return 1 if any(r["errors"] or not r["equals_serial"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
