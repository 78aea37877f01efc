"""The research plan: which Dagster jobs run, over which partitions, in which order, for any
date range and any set of investment markets (the demo's plan is the one-period case).

Stages run one after the other; the tasks of a stage are independent and may run side by side:

1. **reference data** (markets, issuers, instruments);
2. **history**: ingestion and features before the range (the warm-up the engines' windows
   need) and the text embeddings the first encoder refit trains on;
3. per **period** of the range (a period starts at every refit partition boundary and is cut
   into pieces of at most ``max_sessions`` business days, which bounds a run's memory):
   the refits whose partition starts there (trained on data dated before it, which earlier
   periods computed) with the period's macro series, then the regional daily chains side by
   side, then GLOBAL's (it reads the regions' results);
4. the pre-open checks of every session and one backtest per (strategy, market);
5. the daily brief of the range's last business day.

The markets run are the chosen investment markets, every market below the investment level
(FX, calendar-only markets: what the investment chains read) and GLOBAL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from dagster import AssetKey

from prometheus_dagster.core.calendars import GLOBAL, trading_calendar
from prometheus_dagster.core.ingestion_config import ingestion_config
from prometheus_dagster.demo_pool import QUIET, JobTask

TRAINING_SUFFIX = "_training"
BACKTEST_SUFFIX = "_backtest"
PREOPEN_SUFFIX = "_preopen_qc"
FRAGILITY_TRAINING = "_fragility_training"
DEMO_BACKTEST_MARKET, DEMO_BACKTEST_STRATEGY = "US_EQ", "core_equity_long_only"
BRIEF = AssetKey([GLOBAL, "daily_brief"])
MACRO = AssetKey([GLOBAL, "macro_time_series"])
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# the regional daily jobs that take longest go to the workers first
HEAVY_FIRST = ("US_EQ", "EU_EQ", "FX_GLOB")
BACKTEST_REBALANCE_EVERY = 5

Stages = list[tuple[str, list[JobTask]]]


def _range(market_id: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[dict[str, str], int]:
    """(partition range tags, number of partitions) of ``market_id`` in [start, end]."""
    if market_id == GLOBAL:
        days = pd.bdate_range(start, end)
    else:
        days = trading_calendar(market_id).sessions(start, end)
    if len(days) == 0:
        return {}, 0
    return ({RANGE_START: days[0].strftime("%Y-%m-%d"),
             RANGE_END: days[-1].strftime("%Y-%m-%d")}, len(days))


def _heavy_first(market: str) -> int:
    return HEAVY_FIRST.index(market) if market in HEAVY_FIRST else len(HEAVY_FIRST)


def investment_markets() -> list[str]:
    from prometheus_dagster.core.calendars import markets_running

    return markets_running("investment")


def plan_markets(markets: Sequence[str] | None) -> set[str]:
    """The markets a plan for the investment ``markets`` runs (None: all of them): those, the
    markets below the investment level and GLOBAL. An unknown or non-investment market is an
    error naming the choices."""
    from prometheus_dagster.core.calendars import market_ids

    everything = set(market_ids()) | {GLOBAL}
    investment = investment_markets()
    if markets is None:
        return everything
    wrong = [m for m in markets if m not in investment]
    if wrong:
        raise ValueError(f"--markets: {', '.join(wrong)} is not an investment market "
                         f"(configs/markets.yaml, runs: investment): choose from "
                         f"{', '.join(investment)}")
    return (everything - set(investment)) | set(markets)


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


def history_tasks(defs: Any, start: pd.Timestamp, end: pd.Timestamp,
                  texts: list[tuple[pd.Timestamp, pd.Timestamp]],
                  markets: set[str] | None = None, ephemeral: bool = True) -> list[JobTask]:
    """Per data market, one task: ingestion and features over [start, end], then the text
    embeddings over ``texts``; ``ephemeral``: on in-memory instances (only the data is kept)."""
    from prometheus_dagster.assets.features import GROUP as FEATURES
    from prometheus_dagster.assets.ingestion import GROUP as INGESTION
    from prometheus_dagster.jobs.daily import daily_job_name

    graph = defs.resolve_asset_graph()
    tasks = []
    for market in sorted([*ingestion_config().markets, GLOBAL], key=_heavy_first):
        if markets is not None and market not in markets:
            continue
        name = daily_job_name(market)
        keys = defs.resolve_job_def(name).asset_layer.executable_asset_keys
        data = tuple(k.to_user_string() for k in keys
                     if graph.get(k).group_name in (INGESTION, FEATURES))
        text = tuple(k.to_user_string() for k in keys if k.path[-1] == "text_embeddings")
        tags, n = _range(market, start, end)
        if not data or not n:
            continue
        then = []
        for a, b in texts if text else []:
            text_tags, text_n = _range(market, a, b)
            if text_n:
                then.append(JobTask(
                    f"text embeddings {text_tags[RANGE_START]}...{text_tags[RANGE_END]}",
                    name, tags=text_tags, ephemeral=ephemeral, selection=text,
                    kind="text", partitions=text_n))
        tasks.append(JobTask(f"history {market} {tags[RANGE_START]}...{tags[RANGE_END]}"
                             + (" + " + ", ".join(t.label for t in then) if then else ""),
                             name, tags=tags, ephemeral=ephemeral, selection=data,
                             then=tuple(then), kind="history", partitions=n))
    return tasks


def _partition_for(job: Any, day: pd.Timestamp) -> str | None:
    """The refit partition serving ``day``; None before the job's first partition."""
    pdef = job.partitions_def
    if day < pd.Timestamp(pdef.get_first_partition_key()):
        return None
    return pdef.get_partition_key_for_timestamp(day.tz_localize("UTC").timestamp())


def _training_jobs(defs: Any, markets: set[str] | None, fragility: bool) -> list[Any]:
    from prometheus_dagster.jobs.daily import MARKET_TAG

    jobs = []
    for job in sorted((j for j in defs.jobs if j.name.endswith(TRAINING_SUFFIX)),
                      key=lambda j: j.name):
        if job.name.endswith(FRAGILITY_TRAINING) and not fragility:
            continue
        resolved = defs.resolve_job_def(job.name)
        if markets is None or resolved.tags.get(MARKET_TAG) in markets:
            jobs.append(resolved)
    return jobs


def _is_encoder_job(name: str) -> bool:
    from prometheus_dagster.jobs.daily import training_job_name

    return any(name == training_job_name(m) for m in ingestion_config().markets)


def training_tasks(defs: Any, start: pd.Timestamp, markets: set[str] | None = None,
                   fragility_from: pd.Timestamp | None = None,
                   scheduled: set[tuple[str, str]] | None = None,
                   ) -> tuple[list[JobTask], pd.Timestamp | None]:
    """The refits serving ``start`` (the fragility tail model only for partitions from
    ``fragility_from``: it learns from years of stability and fragility history), those in
    ``scheduled`` left out (and added to it), the slowest (encoders) first; and the earliest
    training cut-off among the encoder refits (their text embeddings must exist before it)."""
    tasks, encoder_cutoffs = [], []
    scheduled = set() if scheduled is None else scheduled
    for job in _training_jobs(defs, markets, fragility_from is not None):
        key = _partition_for(job, start)
        if key is None or (job.name, key) in scheduled:
            continue
        if job.name.endswith(FRAGILITY_TRAINING) and (
                fragility_from is None or pd.Timestamp(key) < fragility_from):
            continue
        scheduled.add((job.name, key))
        if _is_encoder_job(job.name):
            encoder_cutoffs.append(pd.Timestamp(key))
        tasks.append(JobTask(f"{job.name} {key} (trained on data before {key})", job.name,
                             partition_key=key, kind=job.name.removeprefix(
                                 str(job.tags.get("prometheus/market", "")) + "_")))
    tasks.sort(key=lambda t: not _is_encoder_job(t.job))
    return tasks, min(encoder_cutoffs) if encoder_cutoffs else None


def daily_tasks(defs: Any, start: pd.Timestamp, end: pd.Timestamp,
                markets: set[str] | None = None) -> tuple[list[JobTask], JobTask | None]:
    """(the regional daily jobs over [start, end], heaviest first; GLOBAL's), the brief and
    the macro series (run before) left out."""
    from prometheus_dagster.jobs.daily import MARKET_TAG, REFERENCE_JOB

    regional, global_task = [], None
    for job in defs.jobs:
        if (job.name == REFERENCE_JOB or job.name.endswith(TRAINING_SUFFIX)
                or job.name.endswith(BACKTEST_SUFFIX) or job.name.endswith(PREOPEN_SUFFIX)):
            continue
        resolved = defs.resolve_job_def(job.name)
        market = resolved.tags.get(MARKET_TAG)
        if not market or (markets is not None and market not in markets):
            continue
        tags, n = _range(market, start, end)
        if not n:
            continue
        keys = tuple(k.to_user_string() for k in resolved.asset_layer.executable_asset_keys
                     if k not in (BRIEF, MACRO))
        kind = "global" if market == GLOBAL else \
            "daily" if market in ingestion_config().markets else "calendar"
        task = JobTask(f"{job.name} {tags[RANGE_START]}...{tags[RANGE_END]}", job.name,
                       tags=tags, selection=keys, kind=kind, partitions=n)
        if market == GLOBAL:
            global_task = task
        else:
            regional.append((market, task))
    regional.sort(key=lambda mt: _heavy_first(mt[0]))
    return [t for _, t in regional], global_task


def backtest_task(defs: Any, market: str, strategy: str, start: pd.Timestamp,
                  end: pd.Timestamp) -> JobTask | None:
    """A strict backtest of ``strategy`` on ``market`` over [start, end] (None: no such job)."""
    from prometheus_dagster.jobs.daily import backtest_job_name

    name = backtest_job_name(market)
    if name not in {j.name for j in defs.jobs}:
        return None
    cfg = {"strategy_id": strategy, "start": str(start.date()), "end": str(end.date()),
           "strict": True, "rebalance_every": BACKTEST_REBALANCE_EVERY}
    return JobTask(f"{name}: {strategy} {cfg['start']}...{cfg['end']} (strict)", name,
                   run_config={**QUIET, "ops": {f"{market}__backtest_runs": {"config": cfg}}},
                   kind="backtest", partitions=len(pd.bdate_range(start, end)))


def closing_tasks(defs: Any, start: pd.Timestamp, end: pd.Timestamp,
                  backtests: Iterable[tuple[str, str]] = ((DEMO_BACKTEST_MARKET,
                                                           DEMO_BACKTEST_STRATEGY),),
                  markets: set[str] | None = None,
                  pieces: Sequence[tuple[pd.Timestamp, pd.Timestamp]] | None = None,
                  ) -> list[JobTask]:
    """The backtests ((market, strategy) pairs), then the pre-open checks of every session
    of [start, end] (one run per market and piece of the range)."""
    from prometheus_dagster.jobs.daily import MARKET_TAG

    tasks = [t for m, s in backtests if (t := backtest_task(defs, m, s, start, end))]
    for job in sorted((j for j in defs.jobs if j.name.endswith(PREOPEN_SUFFIX)),
                      key=lambda j: j.name):
        market = defs.resolve_job_def(job.name).tags.get(MARKET_TAG)
        if not market or (markets is not None and market not in markets):
            continue
        for a, b in pieces or [(start, end)]:
            tags, n = _range(market, a, b)
            if n:
                tasks.append(JobTask(f"{job.name} {tags[RANGE_START]}...{tags[RANGE_END]}",
                                     job.name, tags=tags, kind="preopen", partitions=n))
    return tasks


def brief_day_of(start: pd.Timestamp, end: pd.Timestamp) -> str:
    return pd.bdate_range(start, end)[-1].strftime("%Y-%m-%d")


def periods(defs: Any, start: pd.Timestamp, end: pd.Timestamp, markets: set[str] | None,
            max_sessions: int | None) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end] cut at every refit partition boundary of the plan's training jobs, each
    piece cut again into runs of at most ``max_sessions`` business days."""
    cuts = {start}
    for job in _training_jobs(defs, markets, fragility=True):
        cuts |= {pd.Timestamp(k) for k in job.partitions_def.get_partition_keys()
                 if start < pd.Timestamp(k) <= end}
    bounds = sorted(cuts) + [end + pd.Timedelta(days=1)]
    out = []
    for a, nxt in zip(bounds, bounds[1:], strict=False):
        last = nxt - pd.Timedelta(days=1)
        days = pd.bdate_range(a, last)
        n = -(-len(days) // max_sessions) if max_sessions and len(days) else 1
        # n pieces of near-equal size, the first from a, the last to the day before nxt
        edges = [days[len(days) * i // n] for i in range(1, n)] if n > 1 else []
        starts, ends = [a, *edges], [*(e - pd.Timedelta(days=1) for e in edges), last]
        out += list(zip(starts, ends, strict=True))
    return out


def _span(a: pd.Timestamp, b: pd.Timestamp) -> str:
    return f"{a:%Y-%m-%d}..{b:%Y-%m-%d}"


def plan_stages(defs: Any, history: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp,
                markets: Sequence[str] | None = None,
                backtests: Iterable[tuple[str, str]] = ((DEMO_BACKTEST_MARKET,
                                                         DEMO_BACKTEST_STRATEGY),),
                ephemeral_history: bool = False, max_sessions: int | None = None,
                fragility_after_years: int | None = None, data_only: bool = False,
                without_data: Sequence[str] = ()) -> Stages:
    """The stages of a research run (see the module docstring); ``history`` < ``start``
    adds the warm-up; the fragility tail model is refitted from ``fragility_after_years``
    after ``start`` (None: never). ``data_only``: reference data, then ingestion and features
    (no text embeddings, no engines) over [start, end], piece by piece. ``without_data``:
    markets the source holds nothing of, left out."""
    from prometheus_dagster.jobs.daily import REFERENCE_JOB, daily_job_name

    if end < start:
        raise ValueError(f"the range ends ({end:%Y-%m-%d}) before it starts ({start:%Y-%m-%d})")
    if len(pd.bdate_range(start, end)) == 0:
        raise ValueError(f"no business day from {start:%Y-%m-%d} to {end:%Y-%m-%d}")
    chosen = plan_markets(markets) - set(without_data)
    fragility_from = None if fragility_after_years is None else \
        start + pd.DateOffset(years=fragility_after_years)
    scheduled: set[tuple[str, str]] = set()
    pieces = periods(defs, start, end, chosen, max_sessions)
    stages: Stages = [("reference data", [JobTask("reference_data", REFERENCE_JOB,
                                                  kind="reference")])]
    if data_only:
        return stages + [(f"data {_span(a, b)}", history_tasks(defs, a, b, [], chosen, False))
                         for a, b in pieces]
    first_refits, text_until = training_tasks(defs, start, chosen, fragility_from, scheduled)
    # a refit of period P learns from the data before P: none when the warm-up (the data)
    # starts at P or later
    untrainable = [t for t in first_refits
                   if history < start and pd.Timestamp(t.partition_key) <= history]
    first_refits = [t for t in first_refits if t not in untrainable]
    if history < start:
        stages.append(("history " + _span(history, start - pd.Timedelta(days=1)),
                       history_tasks(defs, history, start - pd.Timedelta(days=1),
                                     text_ranges(history, start, text_until), chosen,
                                     ephemeral_history)))
    for i, (a, b) in enumerate(pieces):
        refits = first_refits if i == 0 else \
            training_tasks(defs, a, chosen, fragility_from, scheduled)[0]
        # the regional regimes of a day read that day's macro series, which GLOBAL_daily
        # ingests after the regions: each period's macro series is ingested first
        tags, n = _range(GLOBAL, a, b)
        macro = JobTask(f"macro series {tags[RANGE_START]}...{tags[RANGE_END]}",
                        daily_job_name(GLOBAL), tags=tags, selection=(MACRO.to_user_string(),),
                        kind="macro", partitions=n)
        name = f"refits and macro series {_span(a, b)}"
        if i == 0 and untrainable:
            name += (f" (left out, no data before their period: the data starts "
                     f"{history:%Y-%m-%d}: {', '.join(t.job for t in untrainable)})")
        stages.append((name, [*refits, macro]))
        regional, global_task = daily_tasks(defs, a, b, chosen)
        stages.append((f"daily chains {_span(a, b)}", regional))
        if global_task is not None:
            stages.append((f"GLOBAL_daily {_span(a, b)}", [global_task]))
    bts = [(m, s) for m, s in backtests if m in chosen]
    stages.append(("pre-open checks and backtests",
                   closing_tasks(defs, start, end, bts, chosen, pieces)))
    day = brief_day_of(start, end)
    stages.append(("daily brief", [JobTask(f"daily brief {day}", daily_job_name(GLOBAL),
                                           partition_key=day, kind="brief",
                                           selection=(BRIEF.to_user_string(),))]))
    return [(name, tasks) for name, tasks in stages if tasks]


def demo_stages(defs: Any, history: pd.Timestamp, start: pd.Timestamp,
                end: pd.Timestamp) -> Stages:
    """The demo's plan: every market, one period, the history on in-memory instances, the
    long-only core backtest on US_EQ, no fragility tail model."""
    return plan_stages(defs, history, start, end, ephemeral_history=True)
