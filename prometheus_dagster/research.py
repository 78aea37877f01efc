"""``cli research``: a backfill over any range and any investment markets, as Dagster runs on
the project's instance (visible in the UI), in the order of ``research_plan``.

Every run is tagged with its tier (3 by default), the plan's id (markets, range, strategies,
source), its unit's id (job, partitions, asset selection, run config) and the fingerprint of the
configuration (the content of every file under configs/ but research.yaml). A re-invocation
skips each unit that a successful run of the same plan already did with the same fingerprint
and runs the others: failed ones, missing ones, and those a killed invocation left started.
``--plan`` prints the stages, runs and estimated times and writes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prometheus_dagster.demo_pool import JobOutcome, JobRunner, JobTask, default_workers
from prometheus_dagster.research_estimate import KIND_TAG, PARTITIONS_TAG, Estimator
from prometheus_dagster.research_plan import Stages, plan_stages

PLAN_TAG = "prometheus/research_plan"
UNIT_TAG = "prometheus/research_unit"
CONFIG_TAG = "prometheus/config_fingerprint"
SOURCES = ("embedded", "files")


@dataclass(frozen=True)
class ResearchRequest:
    """What to run. ``history``: the warm-up's first date (None: ``history_days`` before
    ``start``, never before the data's first date); ``backtests``: (market, strategy) pairs
    (None: every strategy on each chosen market it trades); ``data_only``: reference data,
    ingestion and features only."""

    start: pd.Timestamp
    end: pd.Timestamp
    markets: tuple[str, ...] | None = None
    strategies: tuple[str, ...] | None = None
    source: str | None = None
    files_root: str | None = None
    tier: str = "3"
    history: pd.Timestamp | None = None
    ephemeral_history: bool = False
    backtests: tuple[tuple[str, str], ...] | None = None
    data_only: bool = False

    def plan_id(self) -> str:
        body = json.dumps([self.data_only, self.markets, str(self.start.date()),
                           str(self.end.date()), self.strategies, self.backtests, self.source,
                           self.files_root and str(Path(self.files_root).resolve())])
        return hashlib.sha256(body.encode()).hexdigest()[:12]


def use_source(source: str | None, files_root: str | None) -> None:
    """Point ingestion at ``source`` for this process and its workers (the resource reads
    ``PROMETHEUS_SOURCE`` / ``PROMETHEUS_FILES_ROOT``)."""
    if source is None:
        if files_root:
            raise ValueError("--files-root needs --source files")
        return
    if source not in SOURCES:
        raise ValueError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
    if source == "files":
        if not files_root:
            raise ValueError("--source files needs --files-root DIR")
        if not Path(files_root).is_dir():
            raise ValueError(f"--files-root {files_root}: no such folder")
        os.environ["PROMETHEUS_FILES_ROOT"] = str(Path(files_root).resolve())
    os.environ["PROMETHEUS_SOURCE"] = source


def config_fingerprint() -> str:
    """SHA-256 (12 digits) of the parsed content of every config file but research.yaml (its
    cost model and cutting rules change no result: cutting changes the units themselves)."""
    import yaml  # type: ignore[import-untyped]  # types-PyYAML is not installed

    from prometheus_dagster.core import config as core_config
    from prometheus_dagster.core.research_config import RESEARCH_CONFIG_FILE

    root = Path(core_config.CONFIG_DIR)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.yaml")):
        if path.relative_to(root).as_posix() == RESEARCH_CONFIG_FILE:
            continue
        body = json.dumps(yaml.safe_load(path.read_text()), sort_keys=True, default=str)
        digest.update(f"{path.relative_to(root).as_posix()}\n{body}\n".encode())
    return digest.hexdigest()[:12]


def unit_id(task: JobTask) -> str:
    """What a run does: its job, partitions, asset selection and run config."""
    selection = None if task.selection is None else sorted(task.selection)
    body = json.dumps([task.job, task.partition_key, selection, task.run_config,
                       {k: v for k, v in (task.tags or {}).items()
                        if k.startswith("dagster/asset_partition_range")}],
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _first_data_date(source: str | None) -> pd.Timestamp:
    """The first date data can exist for: the partitions' start; for the embedded market its
    generator's first date; for files, the first priced session in them (a warm-up before it
    would only ingest nothing)."""
    from prometheus_dagster.core.calendars import load_markets
    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.core.ingestion_config import ingestion_config
    from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig

    first = pd.Timestamp(load_markets().partitions_start)
    if (source or ingestion_config().source) == "embedded":
        cfg = load_engine_config("synthetic_market").typed(SyntheticMarketConfig)
        first = max(first, pd.Timestamp(cfg.start_date))
    elif (source or ingestion_config().source) == "files":
        first = max(first, _first_priced_day())
    return first


def _markets_without_files(source: str | None) -> list[str]:
    """The ingested markets the files hold no instrument of (none for the embedded market):
    their chains would only ingest nothing and fail their pre-open checks."""
    from prometheus_dagster.core.ingestion_config import ingestion_config
    from prometheus_dagster.resources import build_resources

    if (source or ingestion_config().source) != "files":
        return []
    present = set(build_resources()["source"].get().market_ids())
    return sorted(m for m in ingestion_config().markets if m not in present)


def _first_priced_day() -> pd.Timestamp:
    """The earliest ``prices_daily`` row of any market in the files (the partitions' start
    when there is none: ingestion then reports the empty deliveries)."""
    from prometheus_dagster.core.calendars import load_markets
    from prometheus_dagster.resources import build_resources

    files = build_resources()["source"].get()  # the files of --files-root or the config
    firsts = [row[0] for m in files.market_ids()
              if (row := files.first_row("prices_daily", m)) is not None]
    return min(firsts) if firsts else pd.Timestamp(load_markets().partitions_start)


def strategy_backtests(strategies: Sequence[str] | None,
                       markets: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """(market, strategy) for each strategy (None: every one in configs/strategies) and each
    chosen investment market it trades."""
    from prometheus_dagster.engines.strategy.config import StrategyConfig
    from prometheus_dagster.engines.strategy.loader import load_strategies

    known = {sid: c.typed(StrategyConfig) for sid, c in load_strategies().items()}
    chosen = list(known) if strategies is None else list(strategies)
    wrong = [s for s in chosen if s not in known]
    if wrong:
        raise ValueError(f"--strategies: unknown {', '.join(wrong)} (configs/strategies: "
                         f"{', '.join(sorted(known))})")
    return tuple((m, s) for s in chosen for m in known[s].markets
                 if markets is None or m in markets)


def build_plan(defs: Any, request: ResearchRequest) -> Stages:
    from prometheus_dagster.core.research_config import research_config

    cfg = research_config()
    first = _first_data_date(request.source)
    if request.start < first:
        raise ValueError(f"--start {request.start:%Y-%m-%d} is before the data's first date "
                         f"{first:%Y-%m-%d} (partitions_start in configs/markets.yaml, and for "
                         "the embedded market its start_date)")
    history = request.history if request.history is not None else \
        max(first, request.start - pd.Timedelta(days=cfg.history_days))
    backtests = request.backtests if request.backtests is not None else \
        strategy_backtests(request.strategies, request.markets)
    without = _markets_without_files(request.source)
    if without:
        print(f"==> left out: {', '.join(without)} (no instrument of theirs in the files)")
    return plan_stages(defs, history, request.start, request.end, request.markets, backtests,
                       without_data=without, ephemeral_history=request.ephemeral_history,
                       max_sessions=cfg.max_sessions_per_run,
                       fragility_after_years=cfg.fragility_refits_after_years,
                       data_only=request.data_only)


def _tagged(task: JobTask, extra: dict[str, str]) -> JobTask:
    tags = {**(task.tags or {}), **extra, UNIT_TAG: unit_id(task), KIND_TAG: task.kind,
            PARTITIONS_TAG: str(task.partitions)}
    return dataclasses.replace(task, tags=tags,
                               then=tuple(_tagged(t, extra) for t in task.then))


def _done(instance: Any, task: JobTask) -> bool:
    from dagster import DagsterRunStatus, RunsFilter

    if task.ephemeral:  # its runs are not recorded: always run
        return False
    tags = {k: task.tags[k] for k in (UNIT_TAG, PLAN_TAG, CONFIG_TAG)} if task.tags else {}
    return bool(instance.get_runs(filters=RunsFilter(
        job_name=task.job, tags=tags, statuses=[DagsterRunStatus.SUCCESS]), limit=1))


def remaining(instance: Any, task: JobTask) -> JobTask | None:
    """``task`` without the units already done (None: all done)."""
    chain = [t for t in (task, *task.then) if not _done(instance, t)]
    if not chain:
        return None
    head = dataclasses.replace(chain[0], then=tuple(chain[1:]))
    return head if head.label == task.label else dataclasses.replace(head, label=task.label)


def run_research(request: ResearchRequest, plan_only: bool = False) -> int:
    """Run (or with ``plan_only`` print) the plan; 0 when every unit succeeded."""
    from prometheus_dagster.core.research_config import research_config
    from prometheus_dagster.definitions import build_definitions
    from prometheus_dagster.jobs.daily import tier_tags
    from prometheus_dagster.research_report import Progress, print_plan, print_summary

    tier = tier_tags(request.tier)
    use_source(request.source, request.files_root)
    workers = default_workers()
    defs = build_definitions()
    stages = build_plan(defs, request)
    if plan_only:
        with _existing_instance() as instance:
            print_plan(stages, Estimator(research_config(), instance), workers, request)
        return 0
    from dagster import DagsterInstance

    from prometheus_dagster.demo import create_stores

    create_stores()
    extra = {**tier, PLAN_TAG: request.plan_id(), CONFIG_TAG: config_fingerprint()}
    outcomes: list[JobOutcome] = []
    with DagsterInstance.get() as instance, JobRunner(workers) as runner:
        estimator = Estimator(research_config(), instance)
        progress = Progress(stages, estimator, workers)
        print(f"==> research plan {extra[PLAN_TAG]}: {len(stages)} stages, "
              f"{sum(len(t) for _, t in stages)} units, tier {request.tier}, "
              f"{workers} worker process(es)", flush=True)
        for i, (_, tasks) in enumerate(stages):
            todo = [r for t in tasks if (r := remaining(instance, _tagged(t, extra)))]
            progress.start(i, todo)
            outcomes += runner.run(todo, on_done=progress.done)
            progress.finish()
    failed = [o for o in outcomes if not o.ok]
    print_summary(failed, progress)
    return 1 if failed else 0


class _existing_instance:
    """The Dagster instance of $DAGSTER_HOME if one was set up (its past runs make the
    estimates), else None; never creates one."""

    def __enter__(self) -> Any:
        from dagster import DagsterInstance

        home = os.environ.get("DAGSTER_HOME")
        self.instance = DagsterInstance.get() \
            if home and (Path(home) / "dagster.yaml").exists() else None
        return self.instance

    def __exit__(self, *exc: object) -> None:
        if self.instance is not None:
            self.instance.dispose()
