"""Paper execution step: every strategy's target portfolio traded in PAPER mode over a range of
sessions, the book carried in memory from one session to the next.

Session D: the book at the close of the previous session (``positions_snapshots``) and the
orders still open then resume; D's splits and dividends apply; the orders decided on the
previous session fill on D's bars (the same fill model as backtests); the book is marked at
D's closes; D's target (``target_portfolios``) becomes the orders that execute on the next
session. Rows are PAPER with a null ``backtest_id``, so they never mix with backtests. A
portfolio's first session starts from ``paper_initial_capital`` in cash; a gap in the stored
book is refused (the sessions in between were never traded). See ``docs/engines/execution.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.query import between
from prometheus_dagster.engines.execution import ExecutionConfig, orders_frame
from prometheus_dagster.engines.execution.errors import ExecutionError
from prometheus_dagster.engines.execution.frames import fills_frame, snapshots_frame
from prometheus_dagster.engines.execution.paper import (
    BAR_COLUMNS,
    PaperBook,
    open_orders_at,
    run_paper_session,
)
from prometheus_dagster.engines.strategy import portfolio_id
from prometheus_dagster.steps.common import chunked
from prometheus_dagster.steps.portfolio import sessions_in_days

MODE = "PAPER"
MARKET_INPUTS = Inputs(Read("prices_daily"), Read("corporate_actions"),
                       Read("target_portfolios"))
BOOK_TABLES = ("orders", "fills", "positions_snapshots")
# an order's identity: a stored row with these equal is the same order, whatever its status
ORDER_IDENTITY = ["order_id", "side", "quantity", "order_type", "limit_price", "stop_price"]


def paper_inputs(cfg: ExecutionConfig) -> Inputs:
    """What paper sessions D read: D's bars, corporate actions and targets, and the stored
    book they resume from (the asset's own earlier partitions)."""
    back = sessions_in_days(cfg.paper_resume_lookback_days)
    return MARKET_INPUTS + Inputs(
        Read("orders", sessions=back, note="orders still open before the first session, and "
                                           "the range's stored orders (later statuses kept)"),
        Read("fills", sessions=back, note="fills of the orders still open"),
        Read("positions_snapshots", history=True,
             note="the book at the close before the first session (the look-back window; "
                  "an older latest book is a gap)"))


def _production(frame: pd.DataFrame, pid: str) -> pd.DataFrame:
    return frame[(frame["portfolio_id"] == pid) & frame["backtest_id"].isna()
                 & (frame["mode"] == MODE)]


def _gap(pid: str, market_id: str, last: pd.Timestamp, first: pd.Timestamp) -> None:
    missing = trading_calendar(market_id).sessions(last + pd.Timedelta(days=1),
                                                   first - pd.Timedelta(days=1))
    raise ExecutionError(
        f"paper book of {pid}: the latest stored book is at the close of {last.date()}, but "
        f"{len(missing)} session(s) {missing[0].date()}..{missing[-1].date()} before "
        f"{first.date()} were not traded; materialize {market_id}/paper_execution from "
        f"{missing[0].date()} (one backfill covers the range)")


@dataclass
class StoredBooks:
    """The stored paper rows a range resumes from (all portfolios): the books, orders and
    fills of the look-back window before the first session, and the range's stored orders."""

    snapshots: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    range_orders: pd.DataFrame

    @classmethod
    def read(cls, window: InputWindow, lookback_days: int) -> StoredBooks:
        first = window.first
        lo, hi = first - pd.Timedelta(days=lookback_days), first - pd.Timedelta(days=1)
        orders = window.frame("orders")
        decided = pd.to_datetime(orders["decided_on"])
        fills = window.frame("fills", end=hi)
        return cls(
            snapshots=window.frame("positions_snapshots", end=hi, date=between(lo, hi)),
            orders=orders[(decided >= lo) & (decided <= hi)],
            fills=fills[pd.to_datetime(fills["date"]) >= lo],
            range_orders=orders[decided.isin(window.dates)])

    def resume(self, window: InputWindow, pid: str, initial_capital: float
               ) -> tuple[PaperBook, pd.DataFrame, pd.DataFrame]:
        """(the book of ``pid`` at the close of the session before the first, its stored
        orders and fills of the look-back window). No stored book: a new one in cash.
        Raises if the latest stored book is older than the previous session."""
        first, market_id = window.first, window.market_id
        hi = first - pd.Timedelta(days=1)
        snaps = _production(self.snapshots, pid)
        orders, fills = _production(self.orders, pid), _production(self.fills, pid)
        if snaps.empty:
            older = _production(window.frame("positions_snapshots", end=hi, columns=[
                "portfolio_id", "mode", "backtest_id", "date"]), pid)
            if len(older):
                _gap(pid, market_id, pd.Timestamp(older["date"].max()), first)
            return PaperBook.new(initial_capital), orders, fills
        last = pd.Timestamp(snaps["date"].max())
        if len(trading_calendar(market_id).sessions(last + pd.Timedelta(days=1), hi)):
            _gap(pid, market_id, last, first)
        return PaperBook.from_rows(snaps[snaps["date"] == last]), orders, fills


def _keep_later_status(computed: pd.DataFrame, stored: pd.DataFrame,
                       last: pd.Timestamp) -> pd.DataFrame:
    """Rows of ``computed`` replaced by their stored row when that row is the same order
    with a status set after ``last`` (a later session's knowledge, which re-running an
    earlier session must not roll back)."""
    if computed.empty or stored.empty:
        return computed
    later = stored[pd.to_datetime(stored["updated_on"]) > last]
    if later.empty:
        return computed
    key = computed[ORDER_IDENTITY].astype(str).agg("|".join, axis=1)
    later_key = later[ORDER_IDENTITY].astype(str).agg("|".join, axis=1)
    same = later[later_key.isin(set(key))]
    return pd.concat([computed[~computed["order_id"].isin(set(same["order_id"]))], same],
                     ignore_index=True)


@dataclass
class PaperRows:
    """What a run writes for one paper portfolio: its ``orders`` rows (the partitions
    ``order_dates``: the run's sessions and the earlier ones whose open orders it carried),
    its ``fills`` and ``positions_snapshots`` rows (the run's sessions)."""

    orders: pd.DataFrame
    order_dates: list[pd.Timestamp]
    fills: pd.DataFrame
    snapshots: pd.DataFrame


def _order_value(orders: Any, closes: dict[str, float], side: str) -> float:
    return round(sum(o.quantity * closes.get(o.instrument_id, 0.0) for o in orders
                     if o.side == side), 2)


def _decision(pid: str, d: pd.Timestamp, config_id: str, refs: dict, target: Any,
              decision_id: str, done: Any, closes: dict[str, float]) -> dict:
    return {
        "context_id": f"{pid}:{d.date()}", "as_of_date": d, "config_id": config_id,
        "model_id": None,
        "input_refs": {**refs, "target_decision": decision_id if target is not None else None},
        "proposed_action": {
            "status": "ORDERS" if target is not None else "HOLD",
            "orders": len(done.new_orders),
            "buy_value": _order_value(done.new_orders, closes, "BUY"),
            "sell_value": _order_value(done.new_orders, closes, "SELL"),
            "fills": len(done.fills), "filled_value": round(sum(f.value for f in done.fills), 2),
            "costs": round(sum(f.commission + f.slippage_cost for f in done.fills), 2),
            "dividends": round(sum(done.dividends.values()), 2),
            "cash": round(done.snapshot.cash, 2), "equity": round(done.snapshot.equity, 2)}}


def compute_paper(log: Any, reader: Any, market_id: str, dates: list[pd.Timestamp],
                  strategy_ids: list[str], cfg: ExecutionConfig, config_id: str
                  ) -> tuple[dict[str, PaperRows], list[dict]]:
    """(the rows to write per portfolio id, one decision record per portfolio and session).
    Each declared input is read once for the range; sessions are walked in order, the book
    carried between them in memory (progress and ETA in ``log`` on a long range)."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    inputs = paper_inputs(cfg)
    window = InputWindow(reader, inputs, market_id, dates)
    bars = window.frame("prices_daily", columns=["date", *BAR_COLUMNS])
    actions = window.frame("corporate_actions",
                           columns=["instrument_id", "date", "action_type", "value"])
    targets = window.frame("target_portfolios", columns=["portfolio_id", "as_of_date",
                                                         "instrument_id", "weight"])
    stored = StoredBooks.read(window, cfg.paper_resume_lookback_days)
    bars_by_day = dict(tuple(bars.groupby("date")))
    actions_by_day = dict(tuple(actions.groupby("date")))
    targets_by = {(pid, pd.Timestamp(d)): dict(zip(g["instrument_id"],
                                                   g["weight"].astype(float), strict=True))
                  for (pid, d), g in targets.groupby(["portfolio_id", "as_of_date"])}
    refs = inputs.refs(market_id)
    written: dict[str, PaperRows] = {}
    decisions: list[dict] = []
    for sid in sorted(strategy_ids):
        pid = portfolio_id(sid, market_id)
        book, stored_orders, stored_fills = stored.resume(window, pid, cfg.paper_initial_capital)
        open_orders = open_orders_at(stored_orders, stored_fills, dates[0])
        by_id, fills, snaps = {}, [], []
        for chunk in chunked(dates, log, f"{pid} paper sessions"):
            for d in chunk:
                target = targets_by.get((pid, d))
                decision_id = f"portfolio:{pid}:{d.date()}"
                day_bars = bars_by_day.get(d, bars.iloc[:0])
                done = run_paper_session(
                    cfg, portfolio_id=pid, market_id=market_id, config_id=config_id,
                    session=d, book=book, open_orders=open_orders,
                    actions=actions_by_day.get(d, actions.iloc[:0]), bars=day_bars,
                    target_weights=target, decision_id=decision_id)
                closes = dict(zip(day_bars["instrument_id"], day_bars["close"].astype(float),
                                  strict=True))
                by_id.update({o.order_id: o for o in done.orders})
                fills += done.fills
                snaps.append(done.snapshot)
                book, open_orders = done.book, done.open_orders()
                decisions.append(_decision(pid, d, config_id, refs, target, decision_id, done,
                                           closes))
                if target is None:
                    log.warning(f"{pid} {d.date()}: no target portfolio; holdings kept, "
                                "no orders")
        written[pid] = _rows(market_id, config_id, dates, by_id, fills, snaps, stored_orders,
                             _production(stored.range_orders, pid))
    return written, decisions


def _rows(market_id: str, config_id: str, dates: list[pd.Timestamp], by_id: dict, fills: list,
          snaps: list, stored_orders: pd.DataFrame, stored_run: pd.DataFrame) -> PaperRows:
    kw = {"market_id": market_id, "config_id": config_id}
    orders = orders_frame(by_id.values(), **kw)
    # earlier partitions whose open orders this run carried: rewritten whole
    carried = set(orders["decided_on"]) - set(dates)
    keep = stored_orders[stored_orders["decided_on"].isin(carried)
                         & ~stored_orders["order_id"].isin(set(orders["order_id"]))]
    orders = _keep_later_status(orders, stored_run, dates[-1])
    return PaperRows(orders=pd.concat([keep, orders], ignore_index=True)[orders.columns],
                     order_dates=sorted({*dates, *(pd.Timestamp(c) for c in carried)}),
                     fills=fills_frame(fills, **kw), snapshots=snapshots_frame(snaps, **kw))


def stale_after(reader: Any, market_id: str, pid: str, last: pd.Timestamp,
                snapshot: pd.DataFrame) -> bool:
    """Whether stored books after ``last`` were built from a different book at ``last``.
    A consistency check for a warning after the run, not an input: it looks at the asset's
    own later partitions, which no declared window of the run's dates reaches."""
    later = _production(reader.read_partitions(
        "positions_snapshots", market_id=market_id, start=last + pd.Timedelta(days=1),
        columns=["portfolio_id", "mode", "backtest_id", "date"]), pid)
    if later.empty:
        return False
    before = _production(reader.read_partitions("positions_snapshots", market_id=market_id,
                                                dates=[last]), pid)
    ours = snapshot[snapshot["date"] == last]
    if before.empty or len(before) != len(ours):
        return True
    return not before.set_index("instrument_id")["shares"].sort_index().round(9).equals(
        ours.set_index("instrument_id")["shares"].sort_index().round(9))
