"""The portfolio and paper steps on a stored market: a range computed in one pass equals its
dates computed one by one (each date's result stored before the next, as daily runs do), and
each step reads exactly the tables it declares."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from prometheus_dagster.assets.fragility import read_paths_by_date
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.reader import Recording, RecordingReader
from prometheus_dagster.engines.execution import ExecutionConfig
from prometheus_dagster.steps.execution import compute_paper, paper_inputs
from prometheus_dagster.steps.portfolio import (
    TARGET_STEP_INPUTS,
    compute_targets,
    compute_targets_chunked,
    target_range,
)
from prometheus_dagster.steps.portfolio_report import REPORT_INPUTS, compute_risk_reports
from prometheus_dagster.steps.universe import empty_selections
from tests.unit.portfolio_market import M, build_market, strategies

log = logging.getLogger(__name__)
SIZE = {"names": 30, "sessions": 8}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    wh, dates = build_market(tmp_path_factory.mktemp("portfolio") / "wh.duckdb", **SIZE)
    # the range in one pass, stored as the daily chain stores it
    targets, decisions = compute_targets(log, wh, M, dates, strategies())
    wh.write_partitions("target_portfolios", targets, market_id=M, dates=dates)
    return wh, dates, targets, decisions


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


def _assert_targets_equal_one_by_one(wh, dates: list, targets: pd.DataFrame) -> None:
    """Targets computed on ``wh`` one date at a time (each stored before the next) equal the
    range's: the solver runs the same problems in the same order, so the weights are identical."""
    one_by_one = []
    for d in dates:
        rows, _ = compute_targets(log, wh, M, [d], strategies())
        wh.write_partitions("target_portfolios", rows, market_id=M, dates=[d])
        one_by_one.append(rows)
    keys = ["portfolio_id", "as_of_date", "instrument_id"]
    pd.testing.assert_frame_equal(_sorted(pd.concat(one_by_one), keys), _sorted(targets, keys))


def test_targets_of_a_range_equal_its_dates_one_by_one(market, tmp_path):
    wh, dates, targets, decisions = market
    statuses = {d["proposed_action"]["status"] for d in decisions}
    assert "SKIPPED" in statuses and "optimal" in statuses
    assert targets["portfolio_id"].nunique() == 2
    _assert_targets_equal_one_by_one(build_market(tmp_path / "wh.duckdb", **SIZE)[0], dates,
                                     targets)


def test_targets_in_chunks_carry_the_holdings(market):
    wh, dates, targets, _ = market
    keys = ["portfolio_id", "as_of_date", "instrument_id"]
    whole = [r.frame() for r in compute_targets_chunked(log, wh, M, dates, strategies())]
    pd.testing.assert_frame_equal(_sorted(pd.concat(whole), keys), _sorted(targets, keys))
    # chunks of 3 dates, each starting from the holdings the previous chunk ended with
    parts, holdings = [], None
    for i in range(0, len(dates), 3):
        run = target_range(log, wh, M, dates[i:i + 3], strategies(), holdings=holdings)
        parts.append(run.frame())
        holdings = run.holdings
    pd.testing.assert_frame_equal(_sorted(pd.concat(parts), keys), _sorted(targets, keys))


def test_a_first_date_with_nothing_selected_and_no_book_stays_in_cash(tmp_path):
    # a range whose first date has no stored book before it, and whose universes selected no
    # name on that date (as when the price history before the range has a gap): the range
    # goes on from cash instead of failing, and equals its dates one by one
    def store(path):
        wh, dates = build_market(path, names=20, sessions=6)
        first = wh.read_partitions("universes", market_id=M, dates=dates[:1])
        wh.write_partitions("universes", first.assign(
            tier="EXCLUDED", side_allowed="NONE", reasons=[["history 80 sessions below "
                                                           "min_history_sessions 126"]]
            * len(first)), market_id=M, dates=dates[:1])
        return wh, dates

    wh, dates = store(tmp_path / "range.duckdb")
    lines = empty_selections(wh.read_partitions("universes", market_id=M, dates=dates))
    assert len(lines) == len(strategies())
    assert all(f"on 1 date(s) ({dates[0].date()})" in line and "history 80" in line
               for line in lines)
    targets, decisions = compute_targets(log, wh, M, dates, strategies())
    first = [d for d in decisions if d["as_of_date"] == dates[0]]
    assert {d["proposed_action"]["status"] for d in first} == {"SKIPPED"}
    assert {d["proposed_action"]["reason"] for d in first} == {"no tradable candidate"}
    assert set(pd.to_datetime(targets["as_of_date"])) == {d for d in dates[1:]
                                                          if d != dates[4]}  # no risk model
    _assert_targets_equal_one_by_one(store(tmp_path / "single.duckdb")[0], dates, targets)


def test_risk_reports_of_a_range_equal_its_dates_one_by_one(market):
    wh, dates, targets, _ = market
    whole = compute_risk_reports(wh, M, dates, strategies(), read_paths_by_date)
    assert len(whole) == targets.groupby(["portfolio_id", "as_of_date"]).ngroups
    assert whole["scenario_var"].notna().all()
    single = pd.concat([compute_risk_reports(wh, M, [d], strategies(), read_paths_by_date)
                        for d in dates], ignore_index=True)
    pd.testing.assert_frame_equal(single, whole)


def test_risk_reports_are_the_same_without_stored_step_returns(market, tmp_path):
    """The warehouse keeps step returns of recent dates only: the reports read cumulative
    returns, kept for every date."""
    wh, dates, targets, _ = market
    full = compute_risk_reports(wh, M, dates, strategies(), read_paths_by_date)
    store = build_market(tmp_path / "wh.duckdb", **SIZE)[0]
    store.write_partitions("target_portfolios", targets, market_id=M, dates=dates)
    assert store.clear_values("scenario_paths", ["step_returns"], where={"market_id": M}) > 0
    assert store.read_partitions("scenario_paths", market_id=M)["step_returns"].isna().all()
    pd.testing.assert_frame_equal(
        compute_risk_reports(store, M, dates, strategies(), read_paths_by_date), full)


def test_paper_range_equals_sessions_one_by_one(market, tmp_path):
    wh, dates, _, _ = market
    cfg = load_engine_config("execution").typed(ExecutionConfig)
    whole, decisions = compute_paper(log, wh, M, dates, list(strategies()), cfg, "exec@test")
    assert len(decisions) == len(dates) * len(whole)
    assert all(len(rows.fills) for rows in whole.values())
    store = build_market(tmp_path / "wh.duckdb", **SIZE)[0]
    store.write_partitions("target_portfolios", wh.read_partitions(
        "target_portfolios", market_id=M, dates=dates), market_id=M, dates=dates)
    for d in dates:
        rows, _ = compute_paper(log, store, M, [d], list(strategies()), cfg, "exec@test")
        for pid, r in rows.items():
            extra = {"portfolio_id": pid, "backtest_id": None}
            store.write_partitions("orders", r.orders, market_id=M, dates=r.order_dates,
                                   extra=extra)
            store.write_partitions("fills", r.fills, market_id=M, dates=[d], extra=extra)
            store.write_partitions("positions_snapshots", r.snapshots, market_id=M, dates=[d],
                                   extra=extra)
    for table, keys in (("fills", ["portfolio_id", "fill_id"]),
                        ("positions_snapshots", ["portfolio_id", "date", "instrument_id"]),
                        ("orders", ["portfolio_id", "order_id"])):
        stored = _sorted(store.read_partitions(table, market_id=M, start=dates[0]), keys)
        ours = _sorted(pd.concat([getattr(r, "snapshots" if table == "positions_snapshots"
                                          else table) for r in whole.values()]), keys)
        stored = stored[ours.columns]
        pd.testing.assert_frame_equal(stored, ours, check_dtype=False, obj=table)


def _reads(step, reader, *args) -> set[str]:
    rec = Recording()
    step(RecordingReader(reader, rec, "step"), *args)
    return {t for _, t in rec.tables("step")}


def test_steps_read_exactly_what_they_declare(market):
    wh, dates, _, _ = market
    cfg = load_engine_config("execution").typed(ExecutionConfig)
    declared = {s: {t for _, t in i.pairs(M)} for s, i in (
        ("targets", TARGET_STEP_INPUTS), ("reports", REPORT_INPUTS),
        ("paper", paper_inputs(cfg)))}
    assert _reads(lambda r: compute_targets(log, r, M, dates[2:], strategies()), wh) \
        == declared["targets"]
    assert _reads(lambda r: compute_risk_reports(r, M, dates, strategies(),
                                                 read_paths_by_date), wh) == declared["reports"]
    paper = _reads(lambda r: compute_paper(log, r, M, dates, list(strategies()), cfg, "x"), wh)
    assert paper == declared["paper"]
