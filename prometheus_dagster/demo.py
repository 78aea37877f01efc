"""``make demo``: the research command (``research``) over the last month of the embedded
market, every market, then where to look.

The plan is ``research_plan``'s (see there): reference data; a warm-up history of ~20 months
(ingestion, features, the encoders' text embeddings) on in-memory Dagster instances (only its
data persists: the UI shows the demo window's runs, not the warm-up); the refits serving the
window with its macro series; the regional daily chains side by side, then GLOBAL's; the
pre-open checks and a strict backtest of the long-only core strategy on US_EQ; the brief of
the window's last day. Runs go to the Dagster instance under $DAGSTER_HOME (the research
instance, PostgreSQL, unless ``PROMETHEUS_INSTANCE=sqlite``), tagged tier 3, so every one shows
in the UI; a second ``make demo`` skips the window's runs the first one finished (the warm-up
runs again: its runs are not recorded). The fragility tail model
is not trained: it learns from years of stability and fragility history, which the demo does
not compute.
"""

from __future__ import annotations

import os

import pandas as pd

from prometheus_dagster.core.paths import mlflow_tracking_uri, prometheus_home, warehouse_path
from prometheus_dagster.research_plan import (
    BRIEF,
    DEMO_BACKTEST_MARKET,
    DEMO_BACKTEST_STRATEGY,
    MACRO,
    brief_day_of,
    closing_tasks,
    daily_tasks,
    demo_stages,
    history_tasks,
    text_ranges,
    training_tasks,
)

__all__ = ["BRIEF", "DEMO_BACKTEST_MARKET", "DEMO_BACKTEST_STRATEGY", "MACRO", "brief_day_of",
           "closing_tasks", "daily_tasks", "demo_stages", "history_tasks", "run_demo",
           "text_ranges", "training_tasks"]
SUMMARY_TABLES = (
    "prices_daily", "corporate_actions", "fundamentals", "news_articles", "macro_time_series",
    "ingestion_runs", "returns_daily", "text_embeddings", "numeric_window_embeddings",
    "joint_embeddings", "profiles", "regimes", "stability_vectors", "scenario_sets",
    "scenario_paths", "fragility_measures", "soft_target_classes", "fragility_alpha",
    "risk_specific", "instrument_scores", "universes", "target_portfolios",
    "portfolio_risk_reports", "orders", "fills", "positions_snapshots", "engine_decisions",
    "models", "truth.regime_path")
WINDOW_DAYS = 31  # the daily chain runs over the last month
QUICK_WINDOW_DAYS = 10
HISTORY_DAYS = 600  # ~410 sessions of warm-up before it: longer than any engine window


def _windows(quick: bool) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """(history start, demo window start, end) inside the embedded market's range."""
    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig

    cfg = load_engine_config("synthetic_market").typed(SyntheticMarketConfig)
    first, end = pd.Timestamp(cfg.start_date), pd.Timestamp(cfg.end_date)
    start = max(first, end - pd.Timedelta(days=QUICK_WINDOW_DAYS if quick else WINDOW_DAYS))
    history = max(first, start - pd.Timedelta(days=HISTORY_DAYS))
    return history, start, end


def _print_encoders(wh) -> None:
    import json

    models = wh.read("models", where={"model_type": "joint_encoder"})
    if len(models):
        print("\n==> Joint encoders (held-out retrieval, MLflow Model Registry)")
    for row in models.itertuples():
        m = json.loads(row.metrics) if isinstance(row.metrics, str) else (row.metrics or {})
        print(f"    {row.model_id:<32} trained through {pd.Timestamp(row.trained_through).date()}"
              f"  recall@10 {m.get('heldout_recall_at_10', float('nan')):.3f}"
              f" = {m.get('recall_at_10_vs_random', float('nan')):.1f}x random")


def _print_regimes(wh) -> None:
    reg = wh.read("regimes", columns=["market_id", "as_of_date", "regime_label", "confidence",
                                      "alert_level", "model_id"])
    if reg.empty:
        return
    print("\n==> Latest regime per region")
    for r in reg.sort_values("as_of_date").groupby("market_id").tail(1).itertuples():
        print(f"    {r.market_id:<8} {pd.Timestamp(r.as_of_date).date()}  {r.regime_label:<18}"
              f" confidence {r.confidence:.2f}  alert {r.alert_level:<6} ({r.model_id})")


def _print_fragility(wh) -> None:
    soft = wh.read("soft_target_classes", columns=["market_id", "entity_type", "entity_id",
                                                   "as_of_date", "soft_target_class"])
    if soft.empty:
        return
    print("\n==> Soft-target classes on each market's last session")
    for m, g in soft.groupby("market_id"):
        g = g[g["as_of_date"] == g["as_of_date"].max()]
        counts = g["soft_target_class"].value_counts()
        flagged = g.loc[g["soft_target_class"] == "SOFT_TARGET", "entity_id"].tolist()
        print(f"    {m:<8} {pd.Timestamp(g['as_of_date'].iloc[0]).date()}  "
              + ", ".join(f"{k} {v}" for k, v in counts.items())
              + (f"  soft targets: {', '.join(flagged[:5])}" if flagged else ""))


def _print_portfolios(wh) -> None:
    import json

    targets = wh.read("target_portfolios", columns=[
        "portfolio_id", "as_of_date", "instrument_id", "weight", "portfolio_volatility",
        "portfolio_expected_return", "turnover", "binding_constraints"])
    reports = wh.read("portfolio_risk_reports", columns=[
        "portfolio_id", "as_of_date", "scenario_es", "parametric_var"]) \
        if wh.table_exists("portfolio_risk_reports") else None
    if targets.empty:
        return
    print("\n==> Target portfolios on their last date (weights, model vol, 95% scenario ES)")
    for pid, g in targets.groupby("portfolio_id"):
        last = g[g["as_of_date"] == g["as_of_date"].max()]
        held = last[last["weight"] != 0].sort_values("weight", ascending=False)
        es = float("nan")
        if reports is not None:
            r = reports[(reports["portfolio_id"] == pid)
                        & (reports["as_of_date"] == last["as_of_date"].iloc[0])]
            value = r["scenario_es"].iloc[0] if len(r) else None
            value = json.loads(value) if isinstance(value, str) else value
            if isinstance(value, dict):
                es = value.get("95%", es)
        top = ", ".join(f"{i} {w:+.1%}" for i, w in
                        zip(held["instrument_id"].head(3), held["weight"].head(3), strict=True))
        print(f"    {pid:<36} {pd.Timestamp(last['as_of_date'].iloc[0]).date()}  "
              f"{len(held)} names, gross {held['weight'].abs().sum():.2f}, vol "
              f"{last['portfolio_volatility'].iloc[0]:.1%}, ES {es:.1%}  top: {top}")


def _print_paper(wh) -> None:
    books = wh.query(f"select portfolio_id, date, equity from "
                     f"{wh.sql_name('positions_snapshots')} where mode = 'PAPER' and "
                     "instrument_id = 'CASH' order by portfolio_id, date")
    if books.empty:
        return
    fills = wh.query(f"select portfolio_id, count(*) as n, sum(commission + slippage_cost) "
                     f"as costs from {wh.sql_name('fills')} where mode = 'PAPER' "
                     "group by portfolio_id")
    fills = fills.set_index("portfolio_id")
    print("\n==> Paper books (positions_snapshots, mode PAPER)")
    for pid, g in books.groupby("portfolio_id"):
        first, last = g.iloc[0], g.iloc[-1]
        n = int(fills["n"].get(pid, 0))
        print(f"    {pid:<36} {pd.Timestamp(first['date']).date()} .. "
              f"{pd.Timestamp(last['date']).date()}: equity {first['equity']:,.0f} -> "
              f"{last['equity']:,.0f} ({last['equity'] / first['equity'] - 1:+.2%}), "
              f"{n} fills, costs {float(fills['costs'].get(pid, 0.0)):,.0f}")


def _print_backtests(wh) -> None:
    import json

    runs = wh.read("backtest_runs")
    if runs.empty:
        return
    print("\n==> Backtests (tear sheets in MLflow, experiment prometheus/backtest)")
    for r in runs.itertuples():
        m = json.loads(r.metrics) if isinstance(r.metrics, str) else r.metrics
        print(f"    {r.backtest_id}: return {m.get('total_return', float('nan')):+.2%}, "
              f"Sharpe {m.get('sharpe', float('nan')):.2f}, max drawdown "
              f"{m.get('max_drawdown', float('nan')):.2%} (MLflow run {r.mlflow_run_id[:8]})")


def run_demo(quick: bool = False) -> int:
    from prometheus_dagster.assets.brief import brief_directory
    from prometheus_dagster.research import ResearchRequest, run_research
    from prometheus_dagster.resources.warehouse import Warehouse

    history, start, end = _windows(quick)
    print(f"==> Prometheus demo: embedded market; history {history.date()} .. "
          f"{(start - pd.Timedelta(days=1)).date()}, daily chain {start.date()} .. {end.date()}"
          "\n==> fragility training: skipped (the tail model learns from years of stability "
          "and fragility history; the demo's fragility alpha has components, scores and "
          "classes without a tail probability; see the README)", flush=True)
    code = run_research(ResearchRequest(
        start=start, end=end, source="embedded", history=history, ephemeral_history=True,
        backtests=((DEMO_BACKTEST_MARKET, DEMO_BACKTEST_STRATEGY),)))
    brief_day = brief_day_of(start, end)
    wh = Warehouse.default()
    print(f"""
Where to look:
  warehouse   {warehouse_path() if not wh.backend == 'postgres' else wh.url}
              python -m prometheus_dagster.cli sql "select * from prices_daily limit 5"
  MLflow      {mlflow_tracking_uri()}  (artifacts in {prometheus_home() / 'mlartifacts'})
  Dagster     runs recorded in {os.environ.get("DAGSTER_HOME", "$DAGSTER_HOME")} (tag
              prometheus/research_plan), failed partitions: python -m prometheus_dagster.cli failed
  UIs         make ui  ->  Dagster http://127.0.0.1:3000 , MLflow http://127.0.0.1:5000
  brief       {brief_directory() / brief_day / 'brief.html'}  (and brief.png beside it)
              any date: python -m prometheus_dagster.cli brief --date {brief_day}
  longer      python -m prometheus_dagster.cli research --start 2020-01-02 --end 2024-12-31 --plan
""")
    return code


def create_stores() -> None:
    """Create the Dagster instance's and MLflow's SQLite databases here, before worker
    processes start: two workers creating the same database at once would collide."""
    from dagster import DagsterInstance

    from prometheus_dagster.resources import build_resources

    instance = DagsterInstance.get()
    instance.get_runs(limit=1)
    instance.get_asset_keys()
    build_resources()["mlflow"].client().search_experiments(max_results=1)


def print_failed_partitions() -> None:
    """Partitions whose latest run failed (the UI shows them failed too), as ranges."""
    from dagster import DagsterInstance

    from prometheus_dagster.sensors.failed_ranges import failed_ranges, format_failed_ranges

    with DagsterInstance.get() as instance:
        ranges = failed_ranges(instance)
    if ranges:
        print("\n==> Failed partitions (re-run these ranges)\n" + format_failed_ranges(ranges))


def print_warehouse(wh) -> None:
    print("\n==> Rows in the warehouse")
    for table in SUMMARY_TABLES:
        if wh.table_exists(table):
            n = wh.query(f"select count(*) as n from {table}")["n"].iloc[0]
            print(f"    {table:<26} {n:>10,}")
    if wh.table_exists("models"):
        _print_encoders(wh)
    if wh.table_exists("regimes"):
        _print_regimes(wh)
    if wh.table_exists("soft_target_classes"):
        _print_fragility(wh)
    if wh.table_exists("target_portfolios"):
        _print_portfolios(wh)
    if wh.table_exists("positions_snapshots"):
        _print_paper(wh)
    if wh.table_exists("backtest_runs"):
        _print_backtests(wh)
