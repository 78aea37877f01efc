"""The paper book survives a run of ``paper_execution`` killed (SIGKILL) in the middle of
writing it: inside a book table's transaction, between the orders and the fills of a portfolio,
or between two portfolios. Re-running the killed run fills no order twice, and the books equal
those of an uninterrupted run, session after session (cash and holdings carried from each close
to the next)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from dagster import materialize
from pandas.testing import assert_frame_equal

from prometheus_dagster.assets.execution import BOOK_TABLES, paper_execution_asset
from prometheus_dagster.core.paths import REPO_ROOT
from prometheus_dagster.engines.execution.orders import QTY_TOL
from prometheus_dagster.engines.execution.schemas import CASH_ROW
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.warehouse import Warehouse
from prometheus_dagster.steps.portfolio import compute_targets
from tests.integration.file_market import span
from tests.unit.portfolio_market import M, build_market, strategies

NAMES, SESSIONS = 30, 6
RUN_COLUMNS = {"created_at", "computed_at"}

# The child materializes paper_execution over [first, last] (one run). Its warehouse writes are
# wrapped: at the ``nth`` write of ``table`` it prints "killpoint" and waits to be killed, either
# inside the write's transaction (rows deleted and inserted, not committed) or after its commit.
CHILD = textwrap.dedent(f"""
    import sys, time
    sys.path.insert(0, {str(REPO_ROOT)!r})
    from dagster import materialize
    from prometheus_dagster.assets.execution import paper_execution_asset
    from prometheus_dagster.resources import build_resources
    from prometheus_dagster.resources.warehouse import Warehouse, _DuckDBSession
    from tests.integration.file_market import span
    url, mlflow_uri, first, last, table, nth, where = sys.argv[1:8]
    seen = 0

    def wait_for_the_kill():
        print("killpoint", flush=True)
        time.sleep(600)

    if where == "inside":
        insert = _DuckDBSession.insert_frame
        def insert_frame(self, sql_table, schema, frame, **kw):
            global seen
            written = insert(self, sql_table, schema, frame, **kw)
            if schema.name == table:
                seen += 1
                if seen == int(nth):
                    wait_for_the_kill()
            return written
        _DuckDBSession.insert_frame = insert_frame
    else:
        write = Warehouse.write_partitions
        def write_partitions(self, name, df, **kw):
            global seen
            written = write(self, name, df, **kw)
            if name == table:
                seen += 1
                if seen == int(nth):
                    wait_for_the_kill()
            return written
        Warehouse.write_partitions = write_partitions

    resources = build_resources(warehouse_url=url, mlflow_uri=mlflow_uri)
    kw = {{"partition_key": first}} if first == last else {{"tags": span(first, last)}}
    materialize([paper_execution_asset({M!r})], resources=resources, **kw)
    print("finished", flush=True)
""")


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> tuple[Path, list[str]]:
    """A stored market with every strategy's targets: the paper step's inputs."""
    path = tmp_path_factory.mktemp("paper_market") / "wh.duckdb"
    wh, dates = build_market(path, names=NAMES, sessions=SESSIONS)
    targets, _ = compute_targets(logging.getLogger(__name__), wh, M, dates, strategies())
    wh.write_partitions("target_portfolios", targets, market_id=M, dates=dates)
    return path, [d.strftime("%Y-%m-%d") for d in dates]


def _copy(market_path: Path, tmp: Path) -> tuple[str, str]:
    tmp.mkdir(parents=True)
    shutil.copy(market_path, tmp / "wh.duckdb")
    return f"duckdb:///{tmp / 'wh.duckdb'}", f"sqlite:///{tmp / 'mlflow.db'}"


def _materialize(url: str, mlflow_uri: str, first: str, last: str) -> None:
    kw: dict = {"partition_key": first} if first == last else {"tags": span(first, last)}
    res = materialize([paper_execution_asset(M)],
                      resources=build_resources(warehouse_url=url, mlflow_uri=mlflow_uri), **kw)
    assert res.success, (first, last)


def _killed_run(url: str, mlflow_uri: str, first: str, last: str, table: str, nth: int,
                where: str) -> None:
    """Run [first, last] in a child process and SIGKILL it at its kill point."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, mlflow_uri, first, last, table, str(nth), where],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    assert proc.stdout is not None
    output = []
    try:
        for line in proc.stdout:
            output.append(line)
            if line.strip() == "killpoint":
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert output and output[-1].strip() == "killpoint", \
        "the run never reached its kill point:\n" + "".join(output[-40:])


def _book(url: str, table: str) -> pd.DataFrame:
    frame = Warehouse.from_url(url, lock_timeout=30).read(table)
    frame = frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])
    keys = {"orders": ["portfolio_id", "order_id"], "fills": ["portfolio_id", "fill_id"],
            "positions_snapshots": ["portfolio_id", "date", "instrument_id"]}[table]
    return frame.sort_values(keys, ignore_index=True)


def _assert_no_order_filled_twice(url: str) -> None:
    fills, orders = _book(url, "fills"), _book(url, "orders")
    assert not fills.duplicated(["portfolio_id", "fill_id"]).any()
    assert not fills.duplicated(["portfolio_id", "order_id", "date"]).any()
    filled = fills.groupby(["portfolio_id", "order_id"])["quantity"].sum()
    ordered = orders.set_index(["portfolio_id", "order_id"])["quantity"]
    assert filled.index.isin(ordered.index).all(), "a fill of an order that was never placed"
    over = filled - ordered.reindex(filled.index)
    assert (over <= QTY_TOL).all(), f"orders filled beyond their quantity:\n{over[over > QTY_TOL]}"
    recorded = orders.set_index(["portfolio_id", "order_id"])["filled_quantity"]
    assert (recorded.reindex(filled.index) - filled).abs().max() <= 1e-6


def _assert_book_carried(url: str) -> None:
    """Each close's holdings and cash are the previous close's plus that session's fills
    (and its dividends and splits, from the corporate actions)."""
    wh = Warehouse.from_url(url, lock_timeout=30)
    snaps, fills = wh.read("positions_snapshots"), wh.read("fills")
    actions = wh.read("corporate_actions")
    for pid, book in snaps.groupby("portfolio_id"):
        days = sorted(book["date"].unique())
        shares = book.pivot_table(index="date", columns="instrument_id", values="shares",
                                  aggfunc="sum").fillna(0.0)
        mine = fills[fills["portfolio_id"] == pid]
        signed = mine["quantity"].where(mine["side"] == "BUY", -mine["quantity"])
        net = signed.groupby([mine["date"], mine["instrument_id"]]).sum()
        paid = mine["value"].where(mine["side"] == "BUY", -mine["value"]) + mine["commission"]
        spent = paid.groupby(mine["date"]).sum()
        for prev, day in zip(days, days[1:], strict=False):
            held = shares.loc[prev].drop(CASH_ROW)
            today = actions[actions["date"] == day]
            dividends = 0.0
            for a in today.itertuples():
                if a.action_type == "SPLIT":
                    held[a.instrument_id] = held.get(a.instrument_id, 0.0) * a.value
            for a in today.itertuples():
                if a.action_type == "DIVIDEND":
                    dividends += held.get(a.instrument_id, 0.0) * a.value
            moved = net[day] if day in net.index.get_level_values(0) else pd.Series(dtype=float)
            want = held.add(moved, fill_value=0.0)
            got = shares.loc[day].drop(CASH_ROW).reindex(want.index, fill_value=0.0)
            assert (got - want).abs().max() < 1e-6, (pid, day)
            cash = shares.loc[prev, CASH_ROW] - spent.get(day, 0.0) + dividends
            assert abs(shares.loc[day, CASH_ROW] - cash) < 1e-4, (pid, day)


def _assert_same_books(url: str, reference: str) -> None:
    for table in BOOK_TABLES:
        assert_frame_equal(_book(url, table), _book(reference, table), obj=table)


@pytest.fixture(scope="module")
def uninterrupted(market, tmp_path_factory) -> str:
    """The books of the daily runs, one session after another, never interrupted."""
    path, dates = market
    url, mlflow_uri = _copy(path, tmp_path_factory.mktemp("paper_reference") / "run")
    for d in dates:
        _materialize(url, mlflow_uri, d, d)
    _assert_no_order_filled_twice(url)
    _assert_book_carried(url)
    fills = _book(url, "fills")
    assert fills["portfolio_id"].nunique() == 2 and len(fills) > 50
    return url


# (table, nth write of it, where): the paper step writes orders, fills, positions_snapshots
# for one portfolio, then for the next
KILL_POINTS = {
    "inside the fills transaction": ("fills", 1, "inside"),
    "between orders and fills": ("orders", 1, "after"),
    "between two portfolios": ("positions_snapshots", 1, "after"),
}


@pytest.mark.parametrize("kill", list(KILL_POINTS), ids=list(KILL_POINTS))
def test_a_daily_run_killed_mid_write_then_rerun_fills_no_order_twice(
        kill, market, uninterrupted, tmp_path) -> None:
    path, dates = market
    url, mlflow_uri = _copy(path, tmp_path / "run")
    killed_at = 3  # sessions before it filled orders and carry a book
    for d in dates[:killed_at]:
        _materialize(url, mlflow_uri, d, d)
    day = dates[killed_at]
    _killed_run(url, mlflow_uri, day, day, *KILL_POINTS[kill])
    _materialize(url, mlflow_uri, day, day)  # the re-run of the killed session
    for d in dates[killed_at + 1:]:
        _materialize(url, mlflow_uri, d, d)
    _assert_no_order_filled_twice(url)
    _assert_book_carried(url)
    _assert_same_books(url, uninterrupted)


def test_a_backfill_killed_mid_write_then_rerun_equals_the_daily_runs(
        market, uninterrupted, tmp_path) -> None:
    """A single-run backfill of every session killed inside the second portfolio's snapshot
    transaction (the first portfolio's books committed): the re-run of the range gives the
    books the daily runs gave."""
    path, dates = market
    url, mlflow_uri = _copy(path, tmp_path / "run")
    _killed_run(url, mlflow_uri, dates[0], dates[-1], "positions_snapshots", 2, "inside")
    # the first portfolio's books are whole, the second's uncommitted snapshots invisible
    snaps = Warehouse.from_url(url, lock_timeout=30).read("positions_snapshots")
    assert snaps["portfolio_id"].nunique() == 1 and snaps["date"].nunique() == len(dates)
    _materialize(url, mlflow_uri, dates[0], dates[-1])
    _assert_no_order_filled_twice(url)
    _assert_book_carried(url)
    _assert_same_books(url, uninterrupted)
