"""Run Dagster jobs side by side: the demo's independent jobs (each market's history, the
model refits, the regional daily chains, the pre-open checks) go to a pool of worker
processes, each executing its job in process against the shared Dagster instance and
warehouse (the DuckDB file lock serialises their reads and writes).

Workers are spawned, not forked (a forked child of a process that has used PyTorch's thread
pool can hang), and each gets an equal share of the cores for its numeric libraries, so two
workers on two cores do not fight over four threads. With one worker the jobs run in this
process, one after the other.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

# The console shows the demo's own progress lines; Dagster's per-event debug lines stay in the
# event log (visible in the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WORKERS_ENV = "PROMETHEUS_DEMO_WORKERS"


@dataclass(frozen=True)
class JobTask:
    """One job execution: a partition, a partition range (``tags``) or neither, optionally a
    subset of the job's assets (``selection``, asset keys as ``A/B`` strings). ``ephemeral``
    runs it on an in-memory instance (bulk history: only its data is kept). ``then``: tasks
    run after it in the same worker, if it succeeded. ``kind`` (``daily``, ``history``,
    ``regime_training``...) and ``partitions`` (how many it covers) serve the time estimates."""

    label: str
    job: str
    tags: dict[str, str] | None = None
    partition_key: str | None = None
    selection: tuple[str, ...] | None = None
    run_config: dict[str, Any] = field(default_factory=lambda: QUIET)
    ephemeral: bool = False
    then: tuple[JobTask, ...] = ()
    kind: str = ""
    partitions: int = 1


@dataclass(frozen=True)
class JobOutcome:
    label: str
    seconds: float
    ok: bool
    run_id: str
    failures: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return "ok" if self.ok else "FAILED"


def error_chain(error: Any) -> str:
    """A Dagster error with its causes, as one text."""
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return "\n      ".join(parts)


@functools.cache
def _definitions() -> Any:
    from prometheus_dagster.definitions import build_definitions

    return build_definitions()


def _warm() -> None:
    _definitions()


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the process that started it dies (even by
    SIGKILL), so an interrupted run leaves no worker writing on behind the next one."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _execute_one(task: JobTask) -> JobOutcome:
    from dagster import AssetKey, DagsterInstance

    job = _definitions().resolve_job_def(task.job)
    instance = DagsterInstance.ephemeral() if task.ephemeral else DagsterInstance.get()
    selection = [AssetKey.from_user_string(s) for s in task.selection] \
        if task.selection is not None else None
    t = time.perf_counter()
    result = job.execute_in_process(instance=instance, tags=task.tags,
                                    partition_key=task.partition_key,
                                    asset_selection=selection, run_config=task.run_config,
                                    raise_on_error=False)
    failures = tuple(
        f"{e.step_key}: {error_chain(e.event_specific_data.error)[:600]}"
        for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return JobOutcome(task.label, time.perf_counter() - t, result.success, result.run_id,
                      failures)


def execute(task: JobTask) -> JobOutcome:
    """Run ``task`` and, if it succeeds, its ``then`` tasks, in this process."""
    outcome = _execute_one(task)
    for nxt in task.then:
        if not outcome.ok:
            break
        more = _execute_one(nxt)
        outcome = JobOutcome(task.label, outcome.seconds + more.seconds, more.ok,
                             outcome.run_id, outcome.failures + more.failures)
    return outcome


def default_workers() -> int:
    """``$PROMETHEUS_DEMO_WORKERS``, else one per core up to four."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={value!r} is not a whole number") from None
        if workers < 1:
            raise ValueError(f"{WORKERS_ENV}={value!r}: at least one worker is needed")
        return workers
    return max(1, min(os.cpu_count() or 1, 4))


class JobRunner:
    """Runs batches of independent ``JobTask``s, printing a line as each starts and ends."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            # spawned workers read these when they load their numeric libraries (this
            # process has loaded its own already)
            threads = str(max(1, (os.cpu_count() or 1) // workers))
            os.environ.update(dict.fromkeys(THREAD_VARIABLES, threads))
            self._pool = ProcessPoolExecutor(workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_die_with_parent)
            for _ in range(workers):  # load the definitions in every worker meanwhile
                self._pool.submit(_warm)

    def run(self, tasks: Sequence[JobTask],
            on_done: Callable[[JobOutcome], None] | None = None) -> list[JobOutcome]:
        """Execute ``tasks`` (independent of each other), in the given order of submission;
        outcomes in the same order. ``on_done`` is called with each outcome as it comes."""
        def report(outcome: JobOutcome) -> JobOutcome:
            self._report(outcome)
            if on_done is not None:
                on_done(outcome)
            return outcome

        if self._pool is None:
            outcomes = []
            for task in tasks:
                print(f"==> {task.label}", flush=True)
                outcomes.append(report(execute(task)))
            return outcomes
        futures: dict[Future, int] = {}
        for i, task in enumerate(tasks):
            print(f"==> {task.label}", flush=True)
            futures[self._pool.submit(execute, task)] = i
        done: dict[int, JobOutcome] = {}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                done[futures[f]] = report(f.result())
        return [done[i] for i in range(len(tasks))]

    @staticmethod
    def _report(outcome: JobOutcome) -> JobOutcome:
        print(f"    {outcome.status:<6} {outcome.label} in {outcome.seconds:.1f}s "
              f"(run {outcome.run_id[:8]})", flush=True)
        for line in outcome.failures:
            print(f"    {line}", flush=True)
        return outcome

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
