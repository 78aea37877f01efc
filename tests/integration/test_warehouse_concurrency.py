"""Concurrent writers in separate OS processes never fail on a lock and never lose a write.

``run_concurrent_writers`` is shared with the PostgreSQL tests: four spawned processes start
together (a barrier) on an empty warehouse, each writes its own 25 partitions of ``prices_daily``
(reading each back), after all of them rewrote one shared partition at once (last writer
wins, whole).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import subprocess
import sys
import textwrap
import time
import traceback

import pandas as pd

from prometheus_dagster.resources.warehouse import Warehouse

N_PROCS = 4
N_PARTITIONS = 25
N_INSTRUMENTS = 20
N_SHARED_WRITES = 5
SHARED_DAY = pd.Timestamp("2023-12-29")


def _days() -> list[pd.Timestamp]:
    return list(pd.bdate_range("2024-01-01", periods=N_PROCS * N_PARTITIONS))


def _frame(day: pd.Timestamp, writer: int) -> pd.DataFrame:
    return pd.DataFrame({
        "market_id": "US_EQ",
        "instrument_id": [f"I{i:03d}" for i in range(N_INSTRUMENTS)],
        "date": day,
        "close": [100.0 + writer + i / 100 for i in range(N_INSTRUMENTS)],
        "volume": float(writer),
        "currency": "USD",
    })


def _writer(url: str, writer: int, barrier, results) -> None:
    """Child process: write own partitions, read each back, rewrite the shared one."""
    try:
        wh = Warehouse.from_url(url)
        mine = _days()[writer::N_PROCS]
        barrier.wait(timeout=120)
        for _ in range(N_SHARED_WRITES):  # all processes at once, on the same partition
            wh.write_partitions("prices_daily", _frame(SHARED_DAY, writer), market_id="US_EQ",
                                dates=[SHARED_DAY])
        for day in mine:
            wh.write_partitions("prices_daily", _frame(day, writer), market_id="US_EQ",
                                dates=[day])
            back = wh.read_partitions("prices_daily", market_id="US_EQ", dates=[day])
            assert len(back) == N_INSTRUMENTS and set(back["volume"]) == {float(writer)}, back
        wh.read_partitions("prices_daily", market_id="US_EQ", start=SHARED_DAY)
        results.put((writer, "ok", len(mine)))
    except BaseException:  # reported to the parent, which fails the test with it
        results.put((writer, "error", traceback.format_exc()))


def run_concurrent_writers(url: str, timeout_s: float = 240.0) -> float:
    """Run the four writers against ``url``; assert every write landed. Returns seconds."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N_PROCS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, barrier, results), daemon=True)
             for w in range(N_PROCS)]
    started = time.monotonic()
    for p in procs:
        p.start()
    reports = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=timeout_s))
    except queue.Empty:
        raise AssertionError(f"writers did not finish in {timeout_s}s: {reports}") from None
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    elapsed = time.monotonic() - started
    errors = [r[2] for r in reports if r[1] != "ok"]
    assert not errors, "\n\n".join(errors)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]

    got = Warehouse.from_url(url).read("prices_daily")
    days = _days()
    own = got[got["date"] != SHARED_DAY]
    assert len(own) == len(days) * N_INSTRUMENTS, "rows lost"
    assert sorted(own["date"].unique()) == days
    by_day = own.groupby("date")["volume"].unique()
    for i, day in enumerate(days):
        assert list(by_day[day]) == [float(i % N_PROCS)], f"{day} written by the wrong process"
    shared = got[got["date"] == SHARED_DAY]
    assert len(shared) == N_INSTRUMENTS and shared["volume"].nunique() == 1  # one whole write
    return elapsed


def test_four_processes_write_one_duckdb_file(tmp_path) -> None:
    url = f"duckdb://{tmp_path / 'concurrent.duckdb'}"
    elapsed = run_concurrent_writers(url)
    assert elapsed < 120


def test_duckdb_waits_for_a_process_holding_the_file_without_the_lock(tmp_path) -> None:
    """A program outside the warehouse (a duckdb shell) holding the file briefly: the bounded
    connect retry waits for it instead of failing."""
    path = tmp_path / "held.duckdb"
    holder = textwrap.dedent(f"""
        import sys, time, duckdb
        con = duckdb.connect({str(path)!r})
        con.execute("CREATE TABLE IF NOT EXISTS x (i INTEGER)")
        print("held", flush=True)
        time.sleep(1.5)
        con.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        wh = Warehouse.from_url(f"duckdb://{path}")
        frame = _frame(pd.Timestamp("2024-01-02"), 0)
        assert wh.write_partitions("prices_daily", frame, market_id="US_EQ") == N_INSTRUMENTS
    finally:
        proc.wait(timeout=30)
    assert len(Warehouse.from_url(f"duckdb://{path}").read("prices_daily")) == N_INSTRUMENTS
