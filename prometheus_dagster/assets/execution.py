"""Paper execution per market: every strategy's target portfolio traded in PAPER mode, the
last step of the daily chain.

Session D: the book at the close of the previous session (``positions_snapshots``) and the
orders still open then resume; D's splits and dividends apply; the orders decided on the
previous session fill on D's bars (the same fill model as backtests); the book is marked at
D's closes; D's target (``target_portfolios``) becomes the orders that execute on the next
session. Rows are PAPER with a null ``backtest_id``, so they never mix with backtests. A
portfolio's first session starts from ``paper_initial_capital`` in cash; a gap in the stored
book is refused (the sessions in between were never traded)."""

from dataclasses import dataclass

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    asset,
)

from prometheus_dagster.assets.common import register_config, run_dates, write_decisions
from prometheus_dagster.assets.universe import register_strategies
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
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
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "execution"
MODE = "PAPER"
INPUTS = ("prices_daily", "corporate_actions", "target_portfolios")
TABLES = ("orders", "fills", "positions_snapshots")
# how far back a run's first session looks for the stored book and the orders still open
RESUME_LOOKBACK_DAYS = 30
# an order's identity: a stored row with these equal is the same order, whatever its status
ORDER_IDENTITY = ["order_id", "side", "quantity", "order_type", "limit_price", "stop_price"]


def _production(frame: pd.DataFrame, pid: str) -> pd.DataFrame:
    return frame[(frame["portfolio_id"] == pid) & frame["backtest_id"].isna()
                 & (frame["mode"] == MODE)]


def resume_book(wh: Warehouse, market_id: str, pid: str, first: pd.Timestamp,
                initial_capital: float) -> tuple[PaperBook, pd.DataFrame, pd.DataFrame]:
    """(the book at the close of the session before ``first``, the stored orders and fills
    of the look-back window) of paper portfolio ``pid``. No stored book: a new one in cash.
    Raises if the latest stored book is older than the previous session."""
    lo, hi = first - pd.Timedelta(days=RESUME_LOOKBACK_DAYS), first - pd.Timedelta(days=1)
    snaps = _production(wh.read_partitions("positions_snapshots", market_id=market_id,
                                           start=lo, end=hi), pid)
    orders = _production(wh.read_partitions("orders", market_id=market_id, start=lo, end=hi),
                         pid)
    fills = _production(wh.read_partitions("fills", market_id=market_id, start=lo, end=hi),
                        pid)
    if snaps.empty:
        older = _production(wh.read_partitions("positions_snapshots", market_id=market_id,
                                               end=hi, columns=["portfolio_id", "mode",
                                                                "backtest_id", "date"]), pid)
        if len(older):
            _gap(pid, market_id, pd.Timestamp(older["date"].max()), first)
        return PaperBook.new(initial_capital), orders, fills
    last = pd.Timestamp(snaps["date"].max())
    between = trading_calendar(market_id).sessions(last + pd.Timedelta(days=1), hi)
    if len(between):
        _gap(pid, market_id, last, first)
    return PaperBook.from_rows(snaps[snaps["date"] == last]), orders, fills


def _gap(pid: str, market_id: str, last: pd.Timestamp, first: pd.Timestamp) -> None:
    missing = trading_calendar(market_id).sessions(last + pd.Timedelta(days=1),
                                                   first - pd.Timedelta(days=1))
    raise ExecutionError(
        f"paper book of {pid}: the latest stored book is at the close of {last.date()}, but "
        f"{len(missing)} session(s) {missing[0].date()}..{missing[-1].date()} before "
        f"{first.date()} were not traded; materialize {market_id}/paper_execution from "
        f"{missing[0].date()} (one backfill covers the range)")


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


def _order_value(orders, closes: dict[str, float], side: str) -> float:
    return round(sum(o.quantity * closes.get(o.instrument_id, 0.0) for o in orders
                     if o.side == side), 2)


def compute_paper(log, wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                  strategy_ids: list[str], cfg: ExecutionConfig, config_id: str
                  ) -> tuple[dict[str, PaperRows], list[dict]]:
    """(the rows to write per portfolio id, one decision record per portfolio and session).
    Sessions are walked in order, the book carried between them."""
    bars = wh.read_partitions("prices_daily", market_id=market_id, dates=dates,
                              columns=["date", *BAR_COLUMNS])
    actions = wh.read_partitions("corporate_actions", market_id=market_id, dates=dates,
                                 columns=["instrument_id", "date", "action_type", "value"])
    targets = wh.read_partitions("target_portfolios", market_id=market_id, dates=dates,
                                 columns=["portfolio_id", "as_of_date", "instrument_id",
                                          "weight"])
    bars_by_day = dict(tuple(bars.groupby("date")))
    actions_by_day = dict(tuple(actions.groupby("date")))
    written: dict[str, dict[str, pd.DataFrame]] = {}
    decisions: list[dict] = []
    for sid in sorted(strategy_ids):
        pid = portfolio_id(sid, market_id)
        book, stored_orders, stored_fills = resume_book(wh, market_id, pid, dates[0],
                                                        cfg.paper_initial_capital)
        open_orders = open_orders_at(stored_orders, stored_fills, dates[0])
        mine = targets[targets["portfolio_id"] == pid]
        by_id, fills, snaps = {}, [], []
        for d in dates:
            day = mine[mine["as_of_date"] == d]
            target = dict(zip(day["instrument_id"], day["weight"].astype(float), strict=True)) \
                if len(day) else None
            decision_id = f"portfolio:{pid}:{d.date()}"
            day_bars = bars_by_day.get(d, bars.iloc[:0])
            done = run_paper_session(
                cfg, portfolio_id=pid, market_id=market_id, config_id=config_id, session=d,
                book=book, open_orders=open_orders,
                actions=actions_by_day.get(d, actions.iloc[:0]), bars=day_bars,
                target_weights=target, decision_id=decision_id)
            closes = dict(zip(day_bars["instrument_id"], day_bars["close"].astype(float),
                              strict=True))
            by_id.update({o.order_id: o for o in done.orders})
            fills += done.fills
            snaps.append(done.snapshot)
            book, open_orders = done.book, done.open_orders()
            traded = sum(f.value for f in done.fills)
            decisions.append({
                "context_id": f"{pid}:{d.date()}", "as_of_date": d, "config_id": config_id,
                "model_id": None,
                "input_refs": {"tables": list(INPUTS), "target_decision": decision_id
                               if target is not None else None},
                "proposed_action": {
                    "status": "ORDERS" if target is not None else "HOLD",
                    "orders": len(done.new_orders),
                    "buy_value": _order_value(done.new_orders, closes, "BUY"),
                    "sell_value": _order_value(done.new_orders, closes, "SELL"),
                    "fills": len(done.fills), "filled_value": round(traded, 2),
                    "costs": round(sum(f.commission + f.slippage_cost for f in done.fills), 2),
                    "dividends": round(sum(done.dividends.values()), 2),
                    "cash": round(done.snapshot.cash, 2),
                    "equity": round(done.snapshot.equity, 2)}})
            if target is None:
                log.warning(f"{pid} {d.date()}: no target portfolio; holdings kept, no orders")
        kw = {"market_id": market_id, "config_id": config_id}
        orders = orders_frame(by_id.values(), **kw)
        # earlier partitions whose open orders this run carried: rewritten whole
        carried = set(orders["decided_on"]) - set(dates)
        keep = stored_orders[stored_orders["decided_on"].isin(carried)
                             & ~stored_orders["order_id"].isin(set(orders["order_id"]))]
        stored_run = _production(wh.read_partitions("orders", market_id=market_id,
                                                    dates=dates), pid)
        orders = _keep_later_status(orders, stored_run, dates[-1])
        written[pid] = PaperRows(
            orders=pd.concat([keep, orders], ignore_index=True)[orders.columns],
            order_dates=sorted({*dates, *(pd.Timestamp(c) for c in carried)}),
            fills=fills_frame(fills, **kw), snapshots=snapshots_frame(snaps, **kw))
    return written, decisions


def _stale_after(wh: Warehouse, market_id: str, pid: str, last: pd.Timestamp,
                 snapshot: pd.DataFrame) -> bool:
    """Whether stored books after ``last`` were built from a different book at ``last``."""
    later = _production(wh.read_partitions("positions_snapshots", market_id=market_id,
                                           start=last + pd.Timedelta(days=1),
                                           columns=["portfolio_id", "mode", "backtest_id",
                                                    "date"]), pid)
    if later.empty:
        return False
    before = _production(wh.read_partitions("positions_snapshots", market_id=market_id,
                                            dates=[last]), pid)
    ours = snapshot[snapshot["date"] == last]
    if before.empty or len(before) != len(ours):
        return True
    return not before.set_index("instrument_id")["shares"].sort_index().round(9).equals(
        ours.set_index("instrument_id")["shares"].sort_index().round(9))


def paper_execution_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "paper_execution"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in INPUTS],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"tables": ", ".join(TABLES)},
        tags={"prometheus/tier": "1"},
        description=f"Paper trading of every strategy's {market_id} target portfolio: the "
                    "previous session's orders fill on this session's bars (the backtest fill "
                    "model), the book is marked at the close, and this session's target "
                    "becomes the orders for the next (orders, fills, positions_snapshots in "
                    "PAPER mode).",
    )
    def _paper(context: AssetExecutionContext, warehouse: WarehouseResource,
               mlflow: MlflowTracking) -> MaterializeResult:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return MaterializeResult(metadata={"portfolios": 0})
        loaded = load_engine_config("execution")
        config_id = register_config(wh, loaded)
        cfg: ExecutionConfig = loaded.config  # type: ignore[assignment]
        written, decisions = compute_paper(context.log, wh, market_id, dates,
                                              list(strategies), cfg, config_id)
        meta: dict = {"sessions": len(dates), "config_id": config_id}
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            for pid, rows in written.items():
                sid = pid.split(":")[0]
                snaps = rows.snapshots
                equity = snaps.groupby("date")["equity"].first()
                run.log_metric_series(f"{sid}_paper_equity", equity)
                fills = rows.fills
                run.log_metrics({f"{sid}_fills": len(fills),
                                 f"{sid}_costs": float((fills["commission"]
                                                        + fills["slippage_cost"]).sum())})
                if _stale_after(wh, market_id, pid, dates[-1], snaps):
                    context.log.warning(
                        f"{pid}: the stored paper book after {dates[-1].date()} was traded "
                        "from a different book; re-materialize the later sessions of "
                        f"{market_id}/paper_execution")
                last = snaps[snaps["date"] == snaps["date"].max()]
                meta[f"{pid} equity on {pd.Timestamp(last['date'].iloc[0]).date()}"] = \
                    round(float(last["equity"].iloc[0]), 2)
                meta[f"{pid} orders"] = int(rows.orders["decided_on"].isin(dates).sum())
                meta[f"{pid} fills"] = len(fills)
            lineage = run.metadata()
            run_id = run.run_id
        # The books are committed after their MLflow run (see resources/mlflow_tracking.py).
        for pid, rows in written.items():
            extra = {"portfolio_id": pid, "backtest_id": None}
            wh.write_partitions("orders", rows.orders, market_id=market_id,
                                dates=rows.order_dates, extra=extra)
            wh.write_partitions("fills", rows.fills, market_id=market_id, dates=dates,
                                extra=extra)
            wh.write_partitions("positions_snapshots", rows.snapshots, market_id=market_id,
                                dates=dates, extra=extra)
        write_decisions(wh, context, "execution", market_id, dates, pd.DataFrame(decisions),
                        mlflow_run_id=run_id)
        return MaterializeResult(metadata={**lineage, **meta})

    return _paper


def execution_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [paper_execution_asset(m) for m in markets]
