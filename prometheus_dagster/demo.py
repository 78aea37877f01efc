"""``make demo``: run the main job on the embedded market and say where to look.

Stages (independent jobs of a stage run side by side in worker processes, one per core up to
four, ``$PROMETHEUS_DEMO_WORKERS`` to change; see ``demo_pool``):
1. **History**: ingestion and features for the ~20 months before the demo window (the
   warm-up the engines' windows need), and text embeddings up to the encoders' training
   cut-off (their training data), as single-run backfills per market on in-memory Dagster
   instances: only its data persists (the UI shows the demo window's runs, not the warm-up).
2. **Model training**: each market's encoders for the demo year, its assessment model and
   each region's regime prototypes for the demo window's refit period (trained on the history
   before it, registered in MLflow); the window's macro series meanwhile. The fragility tail
   model is not trained: it learns from years of stability and fragility history, which the
   demo does not compute.
3. **Daily chain**: reference data, then each market's daily job over the demo window (the
   last month of the embedded market) as one single-run backfill, the regional markets side by
   side (they share no inputs but the macro series), then GLOBAL; on the Dagster instance under
   $DAGSTER_HOME, so every run shows in the UI. That is the research instance (PostgreSQL,
   batched events, ~2 ms of bookkeeping per asset-partition instead of ~80 ms on SQLite) unless
   ``PROMETHEUS_INSTANCE=sqlite``; the summary lists any partitions whose run failed.
4. The pre-open checks of each market and a strict backtest of the long-only core strategy,
   then the daily brief of the window's last day.
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
from prometheus_dagster.demo_pool import QUIET, JobRunner, JobTask, default_workers

TRAINING_SUFFIX = "_training"
BACKTEST_SUFFIX = "_backtest"
SUMMARY_TABLES = (
    "prices_daily", "corporate_actions", "fundamentals", "news_articles", "macro_time_series",
    "ingestion_runs", "returns_daily", "text_embeddings", "numeric_window_embeddings",
    "joint_embeddings", "profiles", "regimes", "stability_vectors", "scenario_sets",
    "scenario_paths", "fragility_measures", "soft_target_classes", "fragility_alpha",
    "risk_specific", "instrument_scores", "universes", "target_portfolios",
    "portfolio_risk_reports", "orders", "fills", "positions_snapshots", "engine_decisions",
    "models", "truth.regime_path")
DEMO_BACKTEST_MARKET, DEMO_BACKTEST_STRATEGY = "US_EQ", "core_equity_long_only"
FRAGILITY_TRAINING = "_fragility_training"
BRIEF = AssetKey([GLOBAL, "daily_brief"])
MACRO = AssetKey([GLOBAL, "macro_time_series"])
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
PREOPEN_SUFFIX = "_preopen_qc"
# the regional daily jobs that take longest go to the workers first
HEAVY_FIRST = ("US_EQ", "EU_EQ", "FX_GLOB")

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


def _range_tags(market_id: str, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, str] | None:
    if market_id == GLOBAL:
        days = pd.bdate_range(start, end)
    else:
        days = trading_calendar(market_id).sessions(start, end)
    if len(days) == 0:
        return None
    return {RANGE_START: days[0].strftime("%Y-%m-%d"), RANGE_END: days[-1].strftime("%Y-%m-%d")}


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


def _heavy_first(market: str) -> int:
    return HEAVY_FIRST.index(market) if market in HEAVY_FIRST else len(HEAVY_FIRST)


def text_ranges(history: pd.Timestamp, start: pd.Timestamp,
                encoder_cutoff: pd.Timestamp | None) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The history the text embeddings are read over: the encoders' training data (before
    their cut-off) and the profiles' news look-back before the window."""
    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.profiles.config import ProfilesConfig

    lookback = load_engine_config("profiles").typed(ProfilesConfig).news_lookback_days
    last = start - pd.Timedelta(days=1)
    ranges = [(max(history, start - pd.Timedelta(days=lookback)), last)]
    if encoder_cutoff is not None and encoder_cutoff > history:
        ranges.insert(0, (history, min(encoder_cutoff - pd.Timedelta(days=1), last)))
    merged: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1] + pd.Timedelta(days=1):
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        elif a <= b:
            merged.append((a, b))
    return merged


def history_tasks(defs, start: pd.Timestamp, end: pd.Timestamp,
                  texts: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[JobTask]:
    """Per data market, one task on ephemeral instances: ingestion and features over
    [start, end], then the text embeddings over ``texts``."""
    from prometheus_dagster.assets.features import GROUP as FEATURES
    from prometheus_dagster.assets.ingestion import GROUP as INGESTION
    from prometheus_dagster.jobs.daily import daily_job_name

    graph = defs.resolve_asset_graph()
    tasks = []
    for market in sorted([*ingestion_config().markets, GLOBAL], key=_heavy_first):
        name = daily_job_name(market)
        keys = defs.resolve_job_def(name).asset_layer.executable_asset_keys
        data = tuple(k.to_user_string() for k in keys
                     if graph.get(k).group_name in (INGESTION, FEATURES))
        text = tuple(k.to_user_string() for k in keys if k.path[-1] == "text_embeddings")
        tags = _range_tags(market, start, end)
        if not data or tags is None:
            continue
        then = []
        for a, b in texts if text else []:
            text_tags = _range_tags(market, a, b)
            if text_tags is not None:
                then.append(JobTask(
                    f"text embeddings {text_tags[RANGE_START]}...{text_tags[RANGE_END]}",
                    name, tags=text_tags, ephemeral=True, selection=text))
        tasks.append(JobTask(f"history {market} {tags[RANGE_START]}...{tags[RANGE_END]}"
                             + (" + " + ", ".join(t.label for t in then) if then else ""),
                             name, tags=tags, ephemeral=True, selection=data,
                             then=tuple(then)))
    return tasks


def _partition_for(job, day: pd.Timestamp) -> str:
    return job.partitions_def.get_partition_key_for_timestamp(
        day.tz_localize("UTC").timestamp())


def training_tasks(defs, start: pd.Timestamp) -> tuple[list[JobTask], pd.Timestamp | None]:
    """The refits the demo window uses (the fragility tail model excepted), and the earliest
    training cut-off among the encoder refits (their text embeddings must exist before it)."""
    from prometheus_dagster.jobs.daily import training_job_name

    tasks, encoder_cutoffs = [], []
    for job in sorted((j for j in defs.jobs if j.name.endswith(TRAINING_SUFFIX)
                       and not j.name.endswith(FRAGILITY_TRAINING)), key=lambda j: j.name):
        resolved = defs.resolve_job_def(job.name)
        key = _partition_for(resolved, start)
        if any(job.name == training_job_name(m) for m in ingestion_config().markets):
            encoder_cutoffs.append(pd.Timestamp(key))
        tasks.append(JobTask(f"{job.name} {key} (trained on data before {key})", job.name,
                             partition_key=key))
    # the encoders are the slowest refits: they go to the workers first
    tasks.sort(key=lambda t: not any(t.job == training_job_name(m)
                                     for m in ingestion_config().markets))
    return tasks, min(encoder_cutoffs) if encoder_cutoffs else None


def daily_tasks(defs, start: pd.Timestamp, end: pd.Timestamp) -> tuple[list[JobTask],
                                                                          JobTask | None]:
    """(the regional daily jobs over the window, heaviest first; GLOBAL's), the brief and
    the macro series (run before) left out."""
    from prometheus_dagster.jobs.daily import MARKET_TAG, REFERENCE_JOB

    regional, global_task = [], None
    for job in defs.jobs:
        if (job.name == REFERENCE_JOB or job.name.endswith(TRAINING_SUFFIX)
                or job.name.endswith(BACKTEST_SUFFIX) or job.name.endswith(PREOPEN_SUFFIX)):
            continue
        resolved = defs.resolve_job_def(job.name)
        market = resolved.tags.get(MARKET_TAG)
        tags = _range_tags(market, start, end) if market else None
        if tags is None:
            continue
        keys = tuple(k.to_user_string() for k in resolved.asset_layer.executable_asset_keys
                     if k not in (BRIEF, MACRO))
        task = JobTask(f"{job.name} {tags[RANGE_START]}...{tags[RANGE_END]}", job.name,
                       tags=tags, selection=keys)
        if market == GLOBAL:
            global_task = task
        else:
            regional.append((market, task))
    regional.sort(key=lambda mt: _heavy_first(mt[0]))
    return [t for _, t in regional], global_task


def closing_tasks(defs, start: pd.Timestamp, end: pd.Timestamp) -> list[JobTask]:
    """The demo backtest and the pre-open checks of every session of the window."""
    from prometheus_dagster.jobs.daily import MARKET_TAG, backtest_job_name

    tasks = []
    name = backtest_job_name(DEMO_BACKTEST_MARKET)
    if name in {j.name for j in defs.jobs}:
        cfg = {"strategy_id": DEMO_BACKTEST_STRATEGY, "start": str(start.date()),
               "end": str(end.date()), "strict": True, "rebalance_every": 5}
        tasks.append(JobTask(f"{name}: {DEMO_BACKTEST_STRATEGY} {cfg['start']}...{cfg['end']} "
                             "(strict)", name,
                             run_config={**QUIET, "ops": {
                                 f"{DEMO_BACKTEST_MARKET}__backtest_runs": {"config": cfg}}}))
    for job in sorted((j for j in defs.jobs if j.name.endswith(PREOPEN_SUFFIX)),
                      key=lambda j: j.name):
        market = defs.resolve_job_def(job.name).tags.get(MARKET_TAG)
        tags = _range_tags(market, start, end) if market else None
        if tags is not None:
            tasks.append(JobTask(f"{job.name} {tags[RANGE_START]}...{tags[RANGE_END]}",
                                 job.name, tags=tags))
    return tasks


def brief_day_of(start: pd.Timestamp, end: pd.Timestamp) -> str:
    return pd.bdate_range(start, end)[-1].strftime("%Y-%m-%d")


def demo_stages(defs, history: pd.Timestamp, start: pd.Timestamp,
                end: pd.Timestamp) -> list[tuple[str, list[JobTask]]]:
    """The demo's plan: (stage, tasks that may run side by side) in dependency order: history,
    refits, reference data, the regional daily chains, GLOBAL, pre-open checks and a backtest,
    the brief."""
    from prometheus_dagster.jobs.daily import REFERENCE_JOB, daily_job_name

    training, text_until = training_tasks(defs, start)
    stages: list[tuple[str, list[JobTask]]] = []
    if history < start:
        stages.append(("history", [JobTask("reference data (history instance)", REFERENCE_JOB,
                                           ephemeral=True)]))
        stages.append(("history", history_tasks(defs, history, start - pd.Timedelta(days=1),
                                                text_ranges(history, start, text_until))))
    # the regional regimes of a day read that day's macro series, which GLOBAL_daily ingests
    # after the regions: the demo ingests the window's macro first
    tags = _range_tags(GLOBAL, start, end)
    if tags is None:
        raise ValueError(f"no business day from {start:%Y-%m-%d} to {end:%Y-%m-%d} to ingest "
                         "the macro series for")
    macro = JobTask(f"macro series {tags[RANGE_START]}...{tags[RANGE_END]}",
                    daily_job_name(GLOBAL), tags=tags, selection=(MACRO.to_user_string(),))
    stages.append(("training", [*training, macro]))
    regional, global_task = daily_tasks(defs, start, end)
    stages.append(("reference_data", [JobTask("reference_data", REFERENCE_JOB)]))
    stages.append(("daily chains", regional))
    if global_task is not None:
        stages.append(("GLOBAL_daily", [global_task]))
    stages.append(("pre-open checks and backtest", closing_tasks(defs, start, end)))
    day = brief_day_of(start, end)
    stages.append(("daily_brief", [JobTask(f"daily brief {day}", daily_job_name(GLOBAL),
                                           partition_key=day,
                                           selection=(BRIEF.to_user_string(),))]))
    return stages


def run_demo(quick: bool = False) -> int:
    from prometheus_dagster.assets.brief import brief_directory
    from prometheus_dagster.definitions import build_definitions
    from prometheus_dagster.resources.warehouse import Warehouse

    t0 = time.perf_counter()
    history, start, end = _windows(quick)
    workers = default_workers()
    print(f"==> Prometheus demo: embedded market; history {history.date()} .. "
          f"{(start - pd.Timedelta(days=1)).date()}, daily chain {start.date()} .. {end.date()}"
          f"; {workers} worker process(es)", flush=True)
    defs = build_definitions()
    _create_stores()
    stages: list[tuple[str, float, bool]] = []

    def stage(name: str, runner: JobRunner, tasks: list[JobTask]) -> None:
        t = time.perf_counter()
        outcomes = runner.run(tasks)
        stages.append((name, time.perf_counter() - t, all(o.ok for o in outcomes)))
        print(f"    -- {name}: {stages[-1][1]:.1f}s", flush=True)

    print("==> fragility training: skipped (the tail model learns from years of stability "
          "and fragility history; the demo's fragility alpha has components, scores and "
          "classes without a tail probability; see the README)", flush=True)
    with JobRunner(workers) as runner:
        for name, tasks in demo_stages(defs, history, start, end):
            stage(name, runner, tasks)
    _merge_repeated(stages)
    brief_day = brief_day_of(start, end)
    wh = Warehouse.default()
    _print_summary(wh)
    _print_failed_partitions()
    total = time.perf_counter() - t0
    print(f"\n==> Done in {total:.1f}s: " + ", ".join(f"{n} {t:.1f}s" for n, t, _ in stages))
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
    return 0 if all(ok for _, _, ok in stages) else 1


def _create_stores() -> None:
    """Create the Dagster instance's and MLflow's SQLite databases here, before worker
    processes start: two workers creating the same database at once would collide."""
    from dagster import DagsterInstance

    from prometheus_dagster.resources import build_resources

    instance = DagsterInstance.get()
    instance.get_runs(limit=1)
    instance.get_asset_keys()
    build_resources()["mlflow"].client().search_experiments(max_results=1)


def _print_failed_partitions() -> None:
    """Partitions whose latest run failed (the UI shows them failed too), as ranges."""
    from dagster import DagsterInstance

    from prometheus_dagster.sensors.failed_ranges import failed_ranges, format_failed_ranges

    with DagsterInstance.get() as instance:
        ranges = failed_ranges(instance)
    if ranges:
        print("\n==> Failed partitions (re-run these ranges)\n" + format_failed_ranges(ranges))


def _merge_repeated(stages: list[tuple[str, float, bool]]) -> None:
    """Fold consecutive entries of the same stage into one."""
    merged: list[tuple[str, float, bool]] = []
    for name, t, ok in stages:
        if merged and merged[-1][0] == name:
            merged[-1] = (name, merged[-1][1] + t, merged[-1][2] and ok)
        else:
            merged.append((name, t, ok))
    stages[:] = merged


def _print_summary(wh) -> None:
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
