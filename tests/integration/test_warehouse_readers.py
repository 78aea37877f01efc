"""Researchers query the warehouse while the pipeline writes: through ``prometheus_dagster.sql``
(notebooks) and ``cli sql`` they never make a write fail and always get an answer. A program that
holds the DuckDB file open instead is named in the pipeline's error, by PID, with what to do.

``run_readers_during_writers`` is shared with the PostgreSQL tests.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path

import pandas as pd
import pytest
from dagster import materialize

from prometheus_dagster.core.errors import WarehouseError
from prometheus_dagster.core.paths import REPO_ROOT
from prometheus_dagster.resources.warehouse import URL_ENV, Warehouse
from tests.integration.test_ingestion_embedded import DAYS, KEYS, MARKET, env, tiny_config
from tests.integration.test_warehouse_concurrency import run_concurrent_writers

COUNT_SQL = "select count(*) as n from prices_daily"


def _notebook_reader(url: str, stop, ready, results) -> None:
    """Child process: what a notebook does, in a loop, until told to stop; ``ready`` is set
    once the first query has come back."""
    os.environ[URL_ENV] = url
    import prometheus_dagster

    answers: list[int] = []
    errors: list[str] = []
    slowest = 0.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            answers.append(int(prometheus_dagster.sql(COUNT_SQL)["n"].iloc[0]))
        except Exception:  # reported to the parent, which fails the test with it
            errors.append(traceback.format_exc())
        slowest = max(slowest, time.monotonic() - started)
        ready.set()
        time.sleep(0.02)
    results.put((answers, errors, slowest))


class CliReader(threading.Thread):
    """``cli sql`` in a loop, as a researcher's shell would run it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.env = {**os.environ, URL_ENV: url, "PYTHONPATH": str(REPO_ROOT)}
        self.stop = threading.Event()
        self.answers: list[int] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            done = subprocess.run(
                [sys.executable, "-m", "prometheus_dagster.cli", "sql", COUNT_SQL, "--csv"],
                env=self.env, capture_output=True, text=True, timeout=300,
            )
            if done.returncode == 0:
                self.answers.append(int(done.stdout.splitlines()[1]))
            else:
                self.errors.append(done.stderr)


def run_readers_during(url: str, write) -> dict[str, object]:
    """Run ``write()`` while a notebook reader process and a ``cli sql`` reader query ``url``;
    assert every read answered, without a single error. Returns the readers' figures."""
    Warehouse.from_url(url).ensure_table("prices_daily")  # readers start before the first write
    ctx = mp.get_context("spawn")
    stop, ready, results = ctx.Event(), ctx.Event(), ctx.Queue()
    notebook = ctx.Process(target=_notebook_reader, args=(url, stop, ready, results),
                           daemon=True)
    cli = CliReader(url)
    notebook.start()
    cli.start()
    try:
        # both readers are querying before the first write, so every write overlaps them
        # (a spawned reader otherwise may still be importing when fast writers finish)
        deadline = time.monotonic() + 180
        while not (ready.is_set() and (cli.answers or cli.errors)):
            assert time.monotonic() < deadline, "the readers never answered"
            time.sleep(0.05)
        write()
    finally:
        stop.set()
        cli.stop.set()
        answers, errors, slowest = results.get(timeout=120)
        notebook.join(timeout=30)
        cli.join(timeout=300)
    final = len(Warehouse.from_url(url).read("prices_daily"))
    assert not errors, "\n\n".join(errors)
    assert not cli.errors, "\n\n".join(cli.errors)
    assert len(answers) >= 3 and cli.answers, (answers, cli.answers)
    assert all(0 <= n <= final for n in answers + cli.answers), (answers, cli.answers, final)
    return {"notebook_reads": len(answers), "cli_reads": len(cli.answers),
            "slowest_read_s": round(slowest, 2), "rows": final}


def run_readers_during_writers(url: str) -> dict[str, object]:
    """The four concurrent writer processes of test_warehouse_concurrency, with readers."""
    return run_readers_during(url, lambda: run_concurrent_writers(url))


def test_readers_never_break_four_duckdb_writers(tmp_path: Path) -> None:
    figures = run_readers_during_writers(f"duckdb://{tmp_path / 'shared.duckdb'}")
    print(figures)


@pytest.mark.slow
def test_readers_never_break_a_backfill(tmp_path: Path) -> None:
    """The real ingestion assets of one market, partition after partition (as a backfill of
    per-partition runs launches them), while researchers query the same DuckDB file."""
    wh, resources, assets = env(tmp_path, "backfill", tiny_config(tmp_path))

    days = DAYS[:4]

    def backfill() -> None:
        for day in days:
            res = materialize(assets, resources=resources, selection=KEYS, partition_key=day)
            assert res.success, day

    print(run_readers_during(wh.url, backfill))
    got = wh.read_partitions("prices_daily", market_id=MARKET, dates=days)
    assert sorted(got["date"].dt.strftime("%Y-%m-%d").unique()) == days


def _hold_open(path: Path, read_only: bool) -> subprocess.Popen:
    """A program outside the warehouse (a notebook's own duckdb connection, the duckdb shell)
    holding the file open until killed."""
    holder = textwrap.dedent(f"""
        import time, duckdb
        con = duckdb.connect({str(path)!r}, read_only={read_only})
        print("held", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only holder", "read-write holder"])
def test_a_program_holding_the_file_is_named_in_the_error(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "held.duckdb"
    wh = Warehouse.from_url(f"duckdb://{path}", lock_timeout=2)
    frame = pd.DataFrame({"market_id": "US_EQ", "instrument_id": ["A", "B"],
                          "date": pd.Timestamp("2024-01-02"), "close": [1.0, 2.0],
                          "volume": 1.0, "currency": "USD"})
    wh.write_partitions("prices_daily", frame, market_id="US_EQ")
    proc = _hold_open(path, read_only)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseError) as caught:
            wh.write_partitions("prices_daily", frame.assign(close=3.0), market_id="US_EQ")
        waited = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait(timeout=30)
    message = str(caught.value)
    assert f"PID {proc.pid}" in message and f"kill {proc.pid}" in message, message
    assert "duckdb.connect" in message  # the holder's command line
    assert "prometheus_dagster.cli sql" in message and "prometheus_dagster.sql(" in message
    assert waited < 30  # the lock timeout (2 s) bounds the wait for a foreign holder
    # the holder gone, the write goes through and the earlier rows were never touched
    assert set(wh.read("prices_daily")["close"]) == {1.0, 2.0}
    wh.write_partitions("prices_daily", frame.assign(close=3.0), market_id="US_EQ")
    assert set(wh.read("prices_daily")["close"]) == {3.0}


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_lock_timeout_names_the_process_holding_the_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    holder = textwrap.dedent(f"""
        import time
        from filelock import FileLock
        with FileLock({str(path) + '.lock'!r}):
            print("held", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseError, match=f"timed out after 0.5s.*PID {proc.pid}"):
            Warehouse.from_url(f"duckdb://{path}", lock_timeout=0.5).ensure_table("prices_daily")
    finally:
        proc.kill()
        proc.wait(timeout=30)
