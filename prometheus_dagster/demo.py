"""``make demo``: run the main job on the embedded market and say where to look.

Three stages:
1. **History**: ingestion, features and text embeddings for the ~20 months before the demo
   window (the warm-up the engines' windows need and the encoders' training data), as one
   single-run backfill per market on an in-memory Dagster instance. Dagster records one event
   per partition and asset; on the SQLite instance that is ~20 ms each, so bulk history goes
   through an ephemeral instance and only its data persists.
2. **Model training**: each market's encoders for the demo year and each region's regime
   prototypes for the demo window's refit period (trained on the history before the period,
   registered in MLflow). The fragility tail model is not trained: it learns from years of
   stability and fragility history, which the demo does not compute.
3. **Daily chain**: reference data, then each market's daily job over the demo window (the last
   quarter of the embedded market) as one single-run backfill, in follow-the-sun order, then
   GLOBAL, on the Dagster instance under $DAGSTER_HOME, so every run shows in the UI.
It prints per-stage timings and a summary.
"""

from __future__ import annotations

import os
import time

import pandas as pd
from dagster import AssetKey

from prometheus_dagster.core.calendars import GLOBAL, trading_calendar
from prometheus_dagster.core.ingestion_config import ingestion_config
from prometheus_dagster.core.paths import mlflow_tracking_uri, prometheus_home, warehouse_path

TRAINING_SUFFIX = "_training"
BACKTEST_SUFFIX = "_backtest"
DEMO_BACKTEST_MARKET, DEMO_BACKTEST_STRATEGY = "US_EQ", "core_equity_long_only"
FRAGILITY_TRAINING = "_fragility_training"
BRIEF = AssetKey([GLOBAL, "daily_brief"])
MACRO = AssetKey([GLOBAL, "macro_time_series"])
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# The console shows the demo's own progress lines; Dagster's per-event debug lines stay in the
# event log (visible in the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


WINDOW_DAYS = 91  # the daily chain runs over the last quarter
HISTORY_DAYS = 600  # ~410 sessions of warm-up before it: longer than any engine window


def _windows(quick: bool) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """(history start, demo window start, end) inside the embedded market's range."""
    from prometheus_dagster.core.config import load_engine_config

    cfg = load_engine_config("synthetic_market").config
    first, end = pd.Timestamp(cfg.start_date), pd.Timestamp(cfg.end_date)  # type: ignore[attr-defined]
    start = max(first, end - pd.Timedelta(days=30 if quick else WINDOW_DAYS))
    history = max(first, start - pd.Timedelta(days=HISTORY_DAYS))
    return history, start, end


def _range_tags(market_id: str, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, str] | None:
    if market_id == GLOBAL:
        days = pd.bdate_range(start, end)
    else:
        days = trading_calendar(market_id).sessions(start, end)
    if len(days) == 0:
        return None
    return {RANGE_START: days[0].strftime("%Y-%m-%d"), RANGE_END: days[-1].strftime("%Y-%m-%d")}


def error_chain(error) -> str:
    """A Dagster error with its causes, as one text."""
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return "\n      ".join(parts)


def _load_history(defs, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Ingestion, features and text embeddings of every data market for [start, end] on an
    ephemeral instance."""
    from dagster import DagsterInstance

    from prometheus_dagster.assets.features import GROUP as FEATURES
    from prometheus_dagster.assets.ingestion import GROUP as INGESTION
    from prometheus_dagster.jobs.daily import REFERENCE_JOB, daily_job_name

    ephemeral = DagsterInstance.ephemeral()
    ok = defs.resolve_job_def(REFERENCE_JOB).execute_in_process(
        instance=ephemeral, raise_on_error=False, run_config=QUIET).success
    graph = defs.resolve_asset_graph()
    for market in [*ingestion_config().markets, GLOBAL]:
        job = defs.resolve_job_def(daily_job_name(market))
        keys = [k for k in job.asset_layer.executable_asset_keys
                if graph.get(k).group_name in (INGESTION, FEATURES)
                or k.path[-1] == "text_embeddings"]
        tags = _range_tags(market, start, end)
        if not keys or tags is None:
            continue
        print(f"==> history {market}: {tags[RANGE_START]}...{tags[RANGE_END]} "
              f"({len(keys)} assets)", flush=True)
        result = job.execute_in_process(instance=ephemeral, asset_selection=keys, tags=tags,
                                        raise_on_error=False, run_config=QUIET)
        ok = ok and result.success
    return ok


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


def _print_regimes(wh, end: pd.Timestamp) -> None:
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


def _run_backtest(defs, instance, start: pd.Timestamp, end: pd.Timestamp, stages: list) -> None:
    """The long-only core strategy on US_EQ over the demo window, strict time machine."""
    from prometheus_dagster.jobs.daily import backtest_job_name

    name = backtest_job_name(DEMO_BACKTEST_MARKET)
    if name not in {j.name for j in defs.jobs}:
        return
    cfg = {"strategy_id": DEMO_BACKTEST_STRATEGY, "start": str(start.date()),
           "end": str(end.date()), "strict": True, "rebalance_every": 5}
    print(f"==> {name}: {DEMO_BACKTEST_STRATEGY} {cfg['start']}...{cfg['end']} (strict)",
          flush=True)
    t = time.perf_counter()
    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={**QUIET, "ops": {f"{DEMO_BACKTEST_MARKET}__backtest_runs": {"config": cfg}}})
    stages.append((name, time.perf_counter() - t, "ok" if result.success else "FAILED"))
    print(f"    {stages[-1][2]} in {stages[-1][1]:.1f}s (run {result.run_id[:8]})", flush=True)
    _print_failures(result)


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


def _print_failures(result) -> None:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            print(f"    {event.step_key}: {error_chain(error)[:600]}")


def run_demo(quick: bool = False) -> int:
    from dagster import DagsterInstance

    from prometheus_dagster.assets.brief import brief_directory
    from prometheus_dagster.definitions import build_definitions
    from prometheus_dagster.jobs.daily import MARKET_TAG, REFERENCE_JOB, daily_job_name
    from prometheus_dagster.resources.warehouse import Warehouse

    t0 = time.perf_counter()
    history, start, end = _windows(quick)
    print(f"==> Prometheus demo: embedded market; history {history.date()} .. "
          f"{(start - pd.Timedelta(days=1)).date()}, daily chain {start.date()} .. {end.date()}",
          flush=True)
    defs = build_definitions()
    instance = DagsterInstance.get()
    stages: list[tuple[str, float, str]] = []
    if history < start:
        t = time.perf_counter()
        ok = _load_history(defs, history, start - pd.Timedelta(days=1))
        stages.append(("history", time.perf_counter() - t, "ok" if ok else "FAILED"))
        print(f"    history {'ok' if ok else 'FAILED'} in {stages[-1][1]:.1f}s", flush=True)
    training = [j.name for j in defs.jobs if j.name.endswith(TRAINING_SUFFIX)]
    for name in training:
        if name.endswith(FRAGILITY_TRAINING):
            print(f"==> {name}: skipped (the tail model learns from years of stability and "
                  "fragility history; the demo's fragility alpha has components, scores and "
                  "classes without a tail probability; see the README)", flush=True)
            continue
        job = defs.resolve_job_def(name)
        key = job.partitions_def.get_partition_key_for_timestamp(
            start.tz_localize("UTC").timestamp())
        print(f"==> {name} {key} (trained on data before {key})", flush=True)
        t = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, partition_key=key, raise_on_error=False, run_config=QUIET)
        stages.append((name, time.perf_counter() - t, "ok" if result.success else "FAILED"))
        print(f"    {stages[-1][2]} in {stages[-1][1]:.1f}s (run {result.run_id[:8]})",
              flush=True)
        _print_failures(result)
    # the regional regimes of a day read that day's macro series, which GLOBAL_daily ingests
    # after the regions: the demo ingests the window's macro first
    tags = _range_tags(GLOBAL, start, end)
    print(f"==> macro series {tags[RANGE_START]}...{tags[RANGE_END]}", flush=True)
    t = time.perf_counter()
    result = defs.resolve_job_def(daily_job_name(GLOBAL)).execute_in_process(
        instance=instance, tags=tags, asset_selection=[MACRO], raise_on_error=False,
        run_config=QUIET)
    stages.append(("macro", time.perf_counter() - t, "ok" if result.success else "FAILED"))
    print(f"    {stages[-1][2]} in {stages[-1][1]:.1f}s (run {result.run_id[:8]})", flush=True)
    jobs = [j.name for j in defs.jobs if j.name not in training
            and not j.name.endswith(BACKTEST_SUFFIX)]
    order = [REFERENCE_JOB] + [j for j in jobs if j != REFERENCE_JOB]
    for i, name in enumerate(order, 1):
        job = defs.resolve_job_def(name)
        market = job.tags.get(MARKET_TAG)
        tags = {} if market is None else _range_tags(market, start, end)
        if tags is None:
            continue
        label = name if not tags else f"{name} {tags[RANGE_START]}...{tags[RANGE_END]}"
        print(f"==> [{i}/{len(order)}] {label}", flush=True)
        t = time.perf_counter()
        keys = [k for k in job.asset_layer.executable_asset_keys if k not in (BRIEF, MACRO)]
        result = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=QUIET,
            asset_selection=keys if name != REFERENCE_JOB else None,
        )
        took = time.perf_counter() - t
        status = "ok" if result.success else "FAILED"
        stages.append((name, took, status))
        print(f"    {status} in {took:.1f}s (run {result.run_id[:8]})", flush=True)
        _print_failures(result)
    _run_backtest(defs, instance, start, end, stages)
    brief_day = pd.bdate_range(start, end)[-1].strftime("%Y-%m-%d")
    print(f"==> daily brief {brief_day}", flush=True)
    t = time.perf_counter()
    result = defs.resolve_job_def(daily_job_name(GLOBAL)).execute_in_process(
        instance=instance, partition_key=brief_day, asset_selection=[BRIEF],
        raise_on_error=False, run_config=QUIET)
    stages.append(("daily_brief", time.perf_counter() - t, "ok" if result.success else "FAILED"))
    print(f"    {stages[-1][2]} in {stages[-1][1]:.1f}s (run {result.run_id[:8]})", flush=True)
    _print_failures(result)
    wh = Warehouse.default()
    print("\n==> Rows in the warehouse")
    for table in ("prices_daily", "corporate_actions", "fundamentals", "news_articles",
                  "macro_time_series", "ingestion_runs", "returns_daily", "text_embeddings",
                  "numeric_window_embeddings", "joint_embeddings", "profiles", "regimes",
                  "stability_vectors", "scenario_sets", "scenario_paths", "fragility_measures",
                  "soft_target_classes", "fragility_alpha", "risk_specific", "instrument_scores",
                  "universes", "target_portfolios", "portfolio_risk_reports",
                  "engine_decisions", "models",
                  "truth.regime_path"):
        if wh.table_exists(table):
            n = wh.query(f"select count(*) as n from {table}")["n"].iloc[0]
            print(f"    {table:<24} {n:>10,}")
    if wh.table_exists("models"):
        _print_encoders(wh)
    if wh.table_exists("regimes"):
        _print_regimes(wh, end)
    if wh.table_exists("soft_target_classes"):
        _print_fragility(wh)
    if wh.table_exists("target_portfolios"):
        _print_portfolios(wh)
    if wh.table_exists("backtest_runs"):
        _print_backtests(wh)
    total = time.perf_counter() - t0
    print(f"\n==> Done in {total:.1f}s " + ", ".join(f"{n} {t:.1f}s" for n, t, _ in stages))
    print(f"""
Where to look:
  warehouse   {warehouse_path() if not wh.backend == 'postgres' else wh.url}
              duckdb {warehouse_path()} "select * from prices_daily limit 5"
  MLflow      {mlflow_tracking_uri()}  (artifacts in {prometheus_home() / 'mlartifacts'})
  Dagster     runs recorded in {os.environ.get("DAGSTER_HOME", "$DAGSTER_HOME")}
  UIs         make ui  ->  Dagster http://127.0.0.1:3000 , MLflow http://127.0.0.1:5000
  brief       {brief_directory() / brief_day / 'brief.html'}  (and brief.png beside it)
              any date: python -m prometheus_dagster.cli brief --date {brief_day}
""")
    return 0 if all(s == "ok" for _, _, s in stages) else 1
