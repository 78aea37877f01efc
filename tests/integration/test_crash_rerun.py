"""A single-run backfill killed (SIGKILL) part-way through its steps: the warehouse opens, the
partitions written before the kill are whole, and re-running the range gives exactly what an
uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
from pandas.testing import assert_frame_equal

from prometheus_dagster.assets.ingestion import MARKET_TABLES
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.resources.warehouse import Warehouse

M = "US_EQ"
START, END = "2024-01-02", "2024-02-16"
# columns a re-run writes anew by design (when and by which run), not data
RUN_COLUMNS = {"ingested_at", "created_at", "ingestion_run_id", "dagster_run_id", "run_id",
               "computed_at"}

# The child loads the file-source fixture market over the range as single-run backfills
# (ingestion, then features), printing each materialization as it is reported.
CHILD = textwrap.dedent(f"""
    import sys
    from pathlib import Path
    sys.path.insert(0, {str(os.getcwd())!r})
    from tests.integration.file_market import load_file_market
    load_file_market(Path(sys.argv[1]), {M!r}, [], {START!r}, {END!r})
    print("done", flush=True)
""")


def _run(tmp, kill_after: int | None) -> Warehouse:
    """Load the market into ``tmp``; with ``kill_after``, SIGKILL the process right after its
    ``kill_after``-th materialization event."""
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if "ASSET_MATERIALIZATION" in line:
            seen += 1
            if kill_after is not None and seen >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
    proc.stdout.read()
    proc.wait(timeout=600)
    if kill_after is None:
        assert proc.returncode == 0, f"the uninterrupted run failed ({proc.returncode})"
    else:
        assert proc.returncode == -signal.SIGKILL, "the run finished before it was killed"
    return Warehouse.from_url(f"duckdb:///{tmp / 'wh.duckdb'}", lock_timeout=30)


def _table(wh: Warehouse, table: str) -> pd.DataFrame:
    frame = wh.read(table)
    frame = frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])
    return frame.sort_values(list(frame.columns), ignore_index=True)


def test_backfill_killed_mid_way_then_rerun_equals_an_uninterrupted_run(tmp_path):
    reference = _run(tmp_path / "reference", None)
    tables = [t for t in (*MARKET_TABLES, *FEATURE_TABLES) if reference.table_exists(t)]
    # killed after reference data and a few ingested tables: features not yet written
    killed = _run(tmp_path / "killed", kill_after=4)
    prices = killed.read("prices_daily")
    written = {t for t in tables if killed.table_exists(t) and len(killed.read(t))}
    assert written < set(tables), "nothing was left to do after the kill"
    if len(prices):  # a table written before the kill is whole: every session of the range
        assert_frame_equal(_table(killed, "prices_daily"), _table(reference, "prices_daily"))
    rerun = _run(tmp_path / "killed", None)
    for table in tables:
        assert_frame_equal(_table(rerun, table), _table(reference, table), obj=table)
