"""Single-run backfills of OVERLAPPING date ranges of the same ingestion assets, in separate OS
processes on one warehouse, while other processes read it (the brief CLI, plain database
clients): no run and no read fails on a lock, and the warehouse ends equal to the same ranges
run one after another.

On DuckDB the plain clients are ``duckdb`` connections opened read-only while holding the
warehouse's lock file, as the README says to open the file during runs (``flock
warehouse.duckdb.lock duckdb -readonly ...``). On PostgreSQL they are psycopg2 connections;
a private schema per test, skipped (failed under CI) when the server is absent.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from dagster import materialize
from pandas.testing import assert_frame_equal

from benchmarks.soak import ingested_tables
from prometheus_dagster.assets.ingestion import MARKET_TABLES
from prometheus_dagster.core.paths import REPO_ROOT
from prometheus_dagster.resources.warehouse import URL_ENV, Warehouse
from tests.integration.file_market import span
from tests.integration.test_ingestion_embedded import DAYS, KEYS, MARKET, env, tiny_config
from tests.services import PG_URL, connect_postgres

# three writers, each range overlapping the next
RANGES = [(DAYS[0], DAYS[2]), (DAYS[1], DAYS[4]), (DAYS[3], DAYS[5])]
COUNT_SQL = "select count(*) from prices_daily"


def _backfill(url: str, config: str, mlflow_uri: str, first: str, last: str, barrier,
              results) -> None:
    """Child process: one single-run backfill of the market's ingestion assets."""
    try:
        from prometheus_dagster.assets.ingestion import ingestion_assets
        from prometheus_dagster.resources import build_resources
        from prometheus_dagster.resources.sources import SourceResource

        resources = build_resources(warehouse_url=url, mlflow_uri=mlflow_uri)
        resources["source"] = SourceResource(kind="embedded", synthetic_config=config)
        barrier.wait(timeout=300)
        res = materialize(ingestion_assets([MARKET]), resources=resources, selection=KEYS,
                          tags=span(first, last), raise_on_error=False)
        failures = [str(e.event_specific_data) for e in res.all_events if e.is_step_failure]
        results.put((first, "ok" if res.success else "failed", "\n".join(failures)))
    except BaseException:  # reported to the parent, which fails the test with it
        results.put((first, "error", traceback.format_exc()))


class LoopReader(threading.Thread):
    """Runs ``command`` (a subprocess: its own OS process) again and again until stopped;
    keeps what each call printed, and the errors of the calls that failed."""

    def __init__(self, command: list[str], env: dict[str, str], pause_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.command, self.env, self.pause_s = command, env, pause_s
        self.stop = threading.Event()
        self.answers: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            done = subprocess.run(self.command, env=self.env, capture_output=True, text=True,
                                  timeout=300)
            if done.returncode == 0:
                self.answers.append(done.stdout)
            else:
                self.errors.append(done.stderr[-3000:])
            time.sleep(self.pause_s)


def duckdb_client(path: Path) -> list[str]:
    """A plain duckdb client, read-only, holding the warehouse's lock file (``flock``) only
    while its connection is open, as the README says to open the file during runs."""
    code = textwrap.dedent(f"""
        import fcntl, duckdb
        with open({str(path) + '.lock'!r}, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            con = duckdb.connect({str(path)!r}, read_only=True)
            print(con.execute({COUNT_SQL!r}).fetchone()[0])
            con.close()
    """)
    return [sys.executable, "-c", code]


def postgres_client(url: str, schema: str) -> list[str]:
    """A plain psycopg2 client reading the test's schema."""
    dsn = url.split("?")[0]
    code = (f"import psycopg2; con = psycopg2.connect({dsn!r}); cur = con.cursor(); "
            f"cur.execute('set search_path to \"{schema}\"'); "
            f"cur.execute({COUNT_SQL!r}); print(cur.fetchone()[0]); con.close()")
    return [sys.executable, "-c", code]


def brief_cli(out: Path) -> list[str]:
    return [sys.executable, "-m", "prometheus_dagster.cli", "brief", "--date", RANGES[-1][1],
            "--markets", MARKET, "--out", str(out)]


def run_overlapping_backfills(url: str, config: Path, tmp: Path,
                              ranges: list[tuple[str, str]] = RANGES,
                              timeout_s: float = 600.0) -> None:
    """One process per range, started together; assert every run succeeded."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(ranges)), ctx.Queue()
    procs = [ctx.Process(target=_backfill, daemon=True, args=(
        url, str(config), f"sqlite:///{tmp / f'mlflow-{i}.db'}", a, b, barrier, results))
        for i, (a, b) in enumerate(ranges)]
    for p in procs:
        p.start()
    reports = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=timeout_s))
    except queue.Empty:
        raise AssertionError(f"backfills did not finish in {timeout_s}s: {reports}") from None
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    bad = [r for r in reports if r[1] != "ok"]
    assert not bad, "\n\n".join(f"{r[0]}: {r[1]}\n{r[2]}" for r in bad)


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> tuple[Path, Path, dict[str, pd.DataFrame]]:
    """The reference data loaded once (the generator's cache warmed for the children), a copy
    of that warehouse to start from, and the tables after the ranges run one after another."""
    tmp = tmp_path_factory.mktemp("serial")
    config = tiny_config(tmp)
    wh, resources, assets = env(tmp, "serial", config)
    start = tmp / "start.duckdb"
    shutil.copy(wh.path, start)  # reference data only
    for a, b in RANGES:
        assert materialize(assets, resources=resources, selection=KEYS,
                           tags=span(a, b)).success
    data = ingested_tables(wh)
    assert len(data["prices_daily"]) and data["prices_daily"]["date"].nunique() == 6
    return config, start, data


def _with_readers(url: str, readers: list[LoopReader], write: Callable[[], None]) -> None:
    """``write()`` while every reader loops; each reader answered, none failed."""
    for r in readers:
        r.start()
    try:
        write()
    finally:
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(timeout=300)
    for r in readers:
        assert not r.errors, f"{r.command[:4]}...:\n" + "\n\n".join(r.errors)
        assert r.answers, f"{r.command[:4]}... never answered"


def _counts(reader: LoopReader) -> list[int]:
    return [int(a.strip()) for a in reader.answers]


def test_overlapping_duckdb_backfills_with_readers_equal_a_serial_run(serial, tmp_path) -> None:
    config, start, want = serial
    path = tmp_path / "wh.duckdb"
    shutil.copy(start, path)
    url = f"duckdb:///{path}"
    Warehouse.from_url(url).ensure_table("prices_daily")  # the readers' table exists
    reader_env = {**os.environ, URL_ENV: url, "PYTHONPATH": str(REPO_ROOT)}
    plain = [LoopReader(duckdb_client(path), reader_env)]
    brief = LoopReader(brief_cli(tmp_path / "briefs"), reader_env, pause_s=2.0)
    _with_readers(url, [*plain, brief],
                  lambda: run_overlapping_backfills(url, config, tmp_path))
    final = len(want["prices_daily"])
    for r in plain:
        assert all(0 <= n <= final for n in _counts(r)), _counts(r)
    got = ingested_tables(Warehouse.from_url(url))
    for table in MARKET_TABLES:
        assert_frame_equal(got[table], want[table], obj=table)


def test_overlapping_postgres_backfills_with_readers_equal_a_serial_run(serial,
                                                                        tmp_path) -> None:
    config, start, want = serial
    conn = connect_postgres(PG_URL)
    schema = f"prom_backfills_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}schema={schema}"
    try:
        wh = Warehouse.from_url(url)
        source = Warehouse.from_url(f"duckdb:///{start}")
        for table in ("instruments", "issuers"):  # the reference data the serial run had
            wh.replace_all(table, source.read(table))
        wh.ensure_table("prices_daily")
        reader_env = {**os.environ, URL_ENV: url, "PYTHONPATH": str(REPO_ROOT)}
        plain = [LoopReader(postgres_client(url, schema), reader_env)]
        brief = LoopReader(brief_cli(tmp_path / "briefs"), reader_env, pause_s=2.0)
        _with_readers(url, [*plain, brief],
                      lambda: run_overlapping_backfills(url, config, tmp_path))
        got = ingested_tables(wh)
        for table in MARKET_TABLES:
            assert_frame_equal(got[table], want[table], obj=table, check_dtype=False)
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                        [schema])
            for (name,) in cur.fetchall():
                cur.execute(f'DROP SCHEMA "{name}" CASCADE')
        conn.close()
