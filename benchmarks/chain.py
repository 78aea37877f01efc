"""The whole daily chain of one market: fixed cost per run and marginal cost per session, per
asset (step), on the research instance.

    .venv/bin/python -m benchmarks.chain [--names 120,500] [--sessions 5,21,63,252]
        [--per-partition 3] [--market US_EQ] [--quick] [--before /work/main]

For each ``--names`` value, in its own PROMETHEUS_HOME (embedded market of that size, DuckDB
warehouse, the research Dagster instance):

1. prepare, as the demo does (its ``history_tasks``, ``training_tasks``, ``daily_tasks``): the
   reference data, ingestion, features and text embeddings of the ~600 days before the longest
   window, the market's refits for every period of that window, the macro series over it,
   and an untimed run of the daily job on the session before that window;
2. run the market's daily job (every asset of ``<MARKET>_daily``, the GLOBAL brief and macro
   series excepted) as ONE single-run backfill over the last S sessions, for each S, longest
   first;
3. run it as one run per partition for the last ``--per-partition`` sessions (the baseline).

Each run happens in its own subprocess: seconds per step from Dagster's step stats, events
written and seconds inside Dagster's storage (``_StorageClock``), peak RSS of the process.
A least-squares line over the S values splits each step's seconds into a fixed cost per run
and a cost per session; the chain's line projects a 5,040-session (20-year) backfill.
With ``--before DIR`` (a checkout of an earlier version), every single run of step 2 is also
made with DIR's code on the same home right before it (the same warehouse, the same sessions),
and the table gains the earlier version's line and the ratio of the two.
Results: ``benchmarks/results/chain.json`` and ``chain.md``. The runs of a home share its
warehouse: every window's first session reads the previous session's books and portfolios
left by the warm-up or by the longer run before it, as a daily chain re-run over a range does
(see the README for a window that failed without them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import REPO
from benchmarks.dagster_overhead import _embedded_resources, _prepare_instance, _StorageClock

PROJECTED_SESSIONS = 5040
MARKET_END = "2024-12-31"  # the embedded market's last day: every window ends on its last session
QUICK = {"names": "30", "sessions": "3,8", "per_partition": 2}
RESULTS = REPO / "benchmarks" / "results"


# -- pure parts: the fixed / per-session split and the table ---------------------------------


def fit_line(sessions: list[int], seconds: list[float]) -> tuple[float, float]:
    """Least-squares ``seconds = fixed + per_session * sessions``: (fixed, per_session)."""
    if len(sessions) != len(seconds) or len(set(sessions)) < 2:
        raise ValueError("a line needs seconds for at least two different session counts")
    n = len(sessions)
    mx, my = sum(sessions) / n, sum(seconds) / n
    sxx = sum((x - mx) ** 2 for x in sessions)
    slope = sum((x - mx) * (y - my) for x, y in zip(sessions, seconds, strict=True)) / sxx
    return my - slope * mx, slope


def fit_costs(runs: list[dict]) -> dict[str, dict[str, float | None]]:
    """Per step, and for the chain's wall time, Dagster's storage and the time outside the
    steps: the fixed and per-session seconds of the single runs (``sessions``, ``wall_s``,
    ``storage_s``, ``success``, ``steps``: step -> seconds of the steps that succeeded).
    A step is fitted over the runs it succeeded in, the totals over the runs that succeeded
    (all runs when fewer than two sizes did); without two sizes the costs are None."""
    ok = [r for r in runs if r.get("success", True)]
    whole = ok if len({r["sessions"] for r in ok}) >= 2 else runs
    series: dict[str, list[tuple[int, float]]] = {
        name: [(r["sessions"], r["steps"][name]) for r in runs if name in r["steps"]]
        for name in sorted({s for r in runs for s in r["steps"]})}
    series["chain (wall)"] = [(r["sessions"], r["wall_s"]) for r in whole]
    series["Dagster storage"] = [(r["sessions"], r["storage_s"]) for r in whole]
    series["outside the steps"] = [(r["sessions"], r["wall_s"] - sum(r["steps"].values()))
                                   for r in whole]
    out: dict[str, dict[str, float | None]] = {}
    for name, points in series.items():
        if len({x for x, _ in points}) < 2:
            out[name] = {"fixed_s": None, "per_session_s": None}
            continue
        fixed, per_session = fit_line([x for x, _ in points], [y for _, y in points])
        out[name] = {"fixed_s": fixed, "per_session_s": per_session}
    return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"


def format_table(result: dict) -> str:
    """Markdown: one row per step sorted by per-session cost (highest first), then the chain,
    Dagster's storage and the time outside the steps; the bookkeeping and memory of each run;
    a final projection line."""
    runs = sorted(result["runs"], key=lambda r: r["sessions"])
    fit = result["fit"]
    partition_runs = result.get("per_partition", [])
    sizes = [r["sessions"] for r in runs]
    head = (["step", "fixed s / run", "s / session"] + [f"S={s} s" for s in sizes]
            + ["one run per partition: s / run", f"share of {PROJECTED_SESSIONS:,} sessions"])
    lines = [f"### {result['market']} daily chain, {result['names']} names",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = ("chain (wall)", "Dagster storage", "outside the steps")
    chain_projection = projection(fit["chain (wall)"])

    def row(name: str, per_run: list[float | None], per_partition: float | None) -> str:
        f = fit[name]
        share = projection(f) / chain_projection \
            if f["fixed_s"] is not None and chain_projection > 0 else None
        cells = [name, _fmt(f["fixed_s"]), _fmt(f["per_session_s"]), *map(_fmt, per_run),
                 _fmt(per_partition), "-" if share is None else f"{share:.0%}"]
        return "| " + " | ".join(cells) + " |"

    def partition_mean(get) -> float | None:
        values = [v for v in map(get, partition_runs) if v is not None]
        return sum(values) / len(values) if values else None

    steps = sorted((s for s in fit if s not in totals),
                   key=lambda s: (fit[s]["per_session_s"] is None, -(fit[s]["per_session_s"] or 0)))
    for s in steps:
        lines.append(row(s, [r["steps"].get(s) for r in runs],
                         partition_mean(lambda r, s=s: r["steps"].get(s))))
    lines.append(row("chain (wall)", [r["wall_s"] for r in runs],
                     partition_mean(lambda r: r["wall_s"])))
    lines.append(row("Dagster storage", [r["storage_s"] for r in runs],
                     partition_mean(lambda r: r["storage_s"])))
    lines.append(row("outside the steps", [r["wall_s"] - sum(r["steps"].values()) for r in runs],
                     partition_mean(lambda r: r["wall_s"] - sum(r["steps"].values()))))
    lines.append("")
    for r in runs:
        lines.append(f"- S={r['sessions']}: {r['events']} events written, peak RSS "
                     f"{r['peak_rss_mb']:.0f} MB (before the run {r['rss_before_mb']:.0f} MB)"
                     + ("" if r["success"] else f"; FAILED: {_failures(r)}"))
    if partition_runs:
        events = partition_mean(lambda r: r["events"])
        rss = max(r["peak_rss_mb"] for r in partition_runs)
        lines.append(f"- one run per partition ({len(partition_runs)} sessions): {events:.0f} "
                     f"events per run, peak RSS {rss:.0f} MB")
    grouped = {k: v for r in runs for k, v in r.get("step_assets", {}).items() if len(v) > 1}
    if grouped:
        lines.append("- steps of several assets: " + "; ".join(
            f"{k} = {', '.join(v)}" for k, v in sorted(grouped.items())))
    if result.get("prepare"):
        lines.append("- preparation: " + ", ".join(
            f"{k} {v:.0f} s" for k, v in result["prepare"].items()))
    if result.get("before"):
        lines.append(compare_line(result["before"]["runs"], runs))
    per_run = partition_mean(lambda r: r["wall_s"])
    baseline = (f"; one run per partition: {PROJECTED_SESSIONS:,} x {per_run:.1f} s = "
                f"{_duration(PROJECTED_SESSIONS * per_run)}" if per_run is not None else "")
    chain = fit["chain (wall)"]
    lines.extend(["", f"**projection**: {PROJECTED_SESSIONS:,} sessions as one run = "
                  f"{chain['fixed_s']:.1f} s + {PROJECTED_SESSIONS:,} x "
                  f"{chain['per_session_s']:.3f} s = {_duration(chain_projection)}{baseline}"])
    return "\n".join(lines)


def compare_line(before: list[dict], after: list[dict]) -> str:
    """The earlier code's chain against this one, run by run (wall seconds, peak RSS) and as
    fitted lines."""
    by_size = {r["sessions"]: r for r in before}
    cells = []
    for r in sorted(after, key=lambda r: r["sessions"]):
        b = by_size.get(r["sessions"])
        if b is not None:
            cells.append(f"S={r['sessions']}: {b['wall_s']:.1f} s -> {r['wall_s']:.1f} s "
                         f"({b['wall_s'] / r['wall_s']:.2f}x), peak RSS "
                         f"{b['peak_rss_mb']:.0f} -> {r['peak_rss_mb']:.0f} MB")
    line = "- before -> after, the same sessions on the same home: " + "; ".join(cells)
    fits = [fit_costs(runs)["chain (wall)"] for runs in (before, after)]
    if all(f["fixed_s"] is not None for f in fits):
        line += (f"; chain line {fits[0]['fixed_s']:.1f} s + {fits[0]['per_session_s']:.3f} s"
                 f" / session -> {fits[1]['fixed_s']:.1f} s + {fits[1]['per_session_s']:.3f}"
                 " s / session")
    return line


def _failures(run: dict) -> str:
    """Each failed step with the last line of its error chain (the product's own error)."""
    return "; ".join(f"{f.split(':')[0]}: {f.strip().splitlines()[-1].strip()}"
                     for f in run["failures"])


def projection(fit: dict, sessions: int = PROJECTED_SESSIONS) -> float:
    return fit["fixed_s"] + sessions * fit["per_session_s"]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 3600:.1f} h)" if seconds >= 3600 else f"{seconds:.0f} s"


# -- child processes: prepare a home, or run the chain once ------------------------------------


def _windows(market: str, longest: int):
    """(market config start, history start, longest window's first session, last session)."""
    import pandas as pd

    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.demo import HISTORY_DAYS

    sessions = trading_calendar(market).sessions("2015-01-01", MARKET_END)
    start, end = sessions[-longest], sessions[-1]
    history = start - pd.Timedelta(days=HISTORY_DAYS)
    return pd.Timestamp(f"{history.year}-01-01"), history, start, end


def _setup(home: Path) -> tuple[dict, Any]:
    """The home's settings and the product's definitions on its embedded market."""
    from prometheus_dagster.definitions import build_definitions

    setup = json.loads((home / "chain_setup.json").read_text())
    resources = _embedded_resources(home, setup["names"], setup["market_start"], MARKET_END)
    return setup, build_definitions(**resources)


def _execute(defs, instance, task) -> tuple[bool, Any, list[str]]:
    """Run a demo ``JobTask`` (and its ``then`` tasks) with these definitions."""
    from dagster import AssetKey, DagsterInstance

    from prometheus_dagster.demo_pool import error_chain

    job = defs.resolve_job_def(task.job)
    target = DagsterInstance.ephemeral() if task.ephemeral else instance
    selection = [AssetKey.from_user_string(s) for s in task.selection] \
        if task.selection is not None else None
    result = job.execute_in_process(instance=target, tags=task.tags,
                                    partition_key=task.partition_key, asset_selection=selection,
                                    run_config=task.run_config, raise_on_error=False)
    failures = [f"{e.step_key}: {error_chain(e.event_specific_data.error)[:400]}"
                for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    ok = result.success
    for nxt in task.then if ok else ():
        ok, _, more = _execute(defs, instance, nxt)
        failures += more
        if not ok:
            break
    return ok, result, failures


def _refit_range(defs, task, start, end):
    """A demo refit task (the partition of ``start``) widened to every refit period up to
    ``end``: a window longer than a period uses one model per period."""
    from prometheus_dagster.research_plan import RANGE_END, RANGE_START, _partition_for

    job = defs.resolve_job_def(task.job)
    first, last = _partition_for(job, start), _partition_for(job, end)
    if first == last:
        return task
    return replace(task, label=f"{task.job} {first}...{last}", partition_key=None,
                   tags={RANGE_START: first, RANGE_END: last})


def _chain_task(defs, market: str, start, end):
    """The demo's task for the market's daily job (its assets but the brief and the macro
    series) over [start, end]."""
    from prometheus_dagster.demo import daily_tasks
    from prometheus_dagster.jobs.daily import daily_job_name

    regional, _ = daily_tasks(defs, start, end)
    return next(t for t in regional if t.job == daily_job_name(market))


def _session_before(market: str, day) -> str:
    import pandas as pd

    from prometheus_dagster.core.calendars import trading_calendar

    sessions = trading_calendar(market).sessions(day - pd.Timedelta(days=10), day)
    return sessions[sessions < day][-1].strftime("%Y-%m-%d")


def _prepare(names: int, home: Path, market: str, longest: int) -> dict:
    import pandas as pd

    from prometheus_dagster.core.calendars import GLOBAL
    from prometheus_dagster.demo_pool import JobTask
    from prometheus_dagster.jobs.daily import REFERENCE_JOB, daily_job_name
    from prometheus_dagster.research_plan import (
        MACRO,
        _range,
        history_tasks,
        text_ranges,
        training_tasks,
    )

    market_start, history, start, end = _windows(market, longest)
    (home / "chain_setup.json").write_text(json.dumps({
        "names": names, "market": market, "market_start": str(market_start.date()),
        "history": str(history.date()), "window_start": str(start.date()),
        "end": str(end.date())}))
    instance = _prepare_instance("research", home)
    _, defs = _setup(home)
    training, text_until = training_tasks(defs, start)
    training = [_refit_range(defs, t, start, end) for t in training
                if t.job.startswith(f"{market}_")]
    wanted = {daily_job_name(market), daily_job_name(GLOBAL)}
    history_runs = [t for t in history_tasks(defs, history, start - pd.Timedelta(days=1),
                                             text_ranges(history, start, text_until))
                    if t.job in wanted]
    tags, _ = _range(GLOBAL, start, end)
    macro = JobTask(f"macro series {tags}", daily_job_name(GLOBAL), tags=tags,
                    selection=(MACRO.to_user_string(),))
    # the session before the window, untimed: tables exist and compile caches are warm before
    # the first measured run, and the window's first session has a previous day to read
    warm_up = replace(_chain_task(defs, market, start, end), tags=None,
                      partition_key=_session_before(market, start))
    stages = {"reference data": [JobTask("reference data", REFERENCE_JOB)],
              "history": history_runs, "training": training, "macro series": [macro],
              "warm-up run": [warm_up]}
    seconds = {}
    for stage, tasks in stages.items():
        t = time.perf_counter()
        for task in tasks:
            print(f"    {stage}: {task.label}", file=sys.stderr, flush=True)
            ok, _, failures = _execute(defs, instance, task)
            if not ok:
                raise SystemExit(f"{task.label} failed:\n" + "\n".join(failures))
        seconds[stage] = round(time.perf_counter() - t, 1)
    instance.dispose()
    return {"prepare": seconds}


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(home: Path, sessions: int, day: str | None) -> dict:
    """The market's daily job as one run: over the last ``sessions`` sessions, or ``day``."""
    import pandas as pd
    from dagster import DagsterInstance

    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.research_plan import RANGE_END, RANGE_START

    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    setup, defs = _setup(home)
    market = setup["market"]
    task = _chain_task(defs, market, pd.Timestamp(setup["window_start"]),
                       pd.Timestamp(setup["end"]))
    if day is not None:
        task = replace(task, tags=None, partition_key=day)
    else:
        days = trading_calendar(market).sessions(setup["window_start"], setup["end"])
        task = replace(task, tags={RANGE_START: days[-sessions].strftime("%Y-%m-%d"),
                                   RANGE_END: days[-1].strftime("%Y-%m-%d")})
    instance = DagsterInstance.get()
    before = _rss_mb()
    clock = _StorageClock(instance)
    t = time.perf_counter()
    ok, result, failures = _execute(defs, instance, task)
    wall = time.perf_counter() - t
    steps = {s.step_key: round(s.end_time - s.start_time, 3)
             for s in instance.get_run_step_stats(result.run_id)
             if s.status is not None and s.status.value == "SUCCESS"
             and s.start_time is not None and s.end_time is not None}
    step_assets: dict[str, set[str]] = {}
    for e in result.all_events:
        if e.event_type_value == "ASSET_MATERIALIZATION":
            step_assets.setdefault(e.step_key, set()).add(e.asset_key.path[-1])
    out = {"sessions": sessions, "day": day, "success": ok, "failures": failures,
           "wall_s": round(wall, 2), "storage_s": round(clock.seconds, 2),
           "events": sum(clock.events.values()), "steps": steps,
           "step_assets": {k: sorted(v) for k, v in step_assets.items()},
           "rss_before_mb": round(before, 1), "peak_rss_mb": round(_rss_mb(), 1)}
    instance.dispose()
    return out


def _child(args: list[str]) -> None:
    mode, home = args[0], Path(args[1])
    os.environ["PROMETHEUS_HOME"] = str(home)
    if mode == "prepare":
        names, market, longest = int(args[2]), args[3], int(args[4])
        out = _prepare(names, home, market, longest)
    else:
        sessions = int(args[2])
        out = _run(home, sessions, args[3] if len(args) > 3 else None)
        # also kept in the home, readable while the later runs of a long benchmark go on
        name = f"run-{out['day']}.json" if out["day"] else f"run-{sessions}-sessions.json"
        (home / name).write_text(json.dumps(out))
    print("RESULT " + json.dumps(out))


# -- parent: one home per names value, one subprocess per run ----------------------------------


def _subprocess(args: list[str], root: Path = REPO) -> dict:
    """A child of this benchmark with the code of the checkout at ``root``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROMETHEUS_DAGSTER_PG_URL", "DAGSTER_HOME", "PROMETHEUS_WAREHOUSE_URL",
                        "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.chain", "--child", *args],
                          cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{' '.join(args)} failed (its error is printed above)")


def bench_names(names: int, sizes: list[int], per_partition: int, market: str,
                tmp: Path, before: Path | None = None) -> dict:
    """Prepare a fresh home of ``names`` names, then every run; the fitted costs."""
    home = Path(tempfile.mkdtemp(prefix=f"chain-{names}-", dir=tmp))
    print(f"==> {market}, {names} names: preparing {home}", flush=True)
    t = time.perf_counter()
    result: dict[str, Any] = {"market": market, "names": names,
                              **_subprocess(["prepare", str(home), str(names), market,
                                             str(max(sizes))])}
    print(f"    prepared in {time.perf_counter() - t:.0f} s: {result['prepare']}", flush=True)
    setup = json.loads((home / "chain_setup.json").read_text())
    result["window"] = f"{setup['window_start']}...{setup['end']}"
    result["runs"] = []
    if before is not None:
        result["before"] = {"code": str(before), "runs": []}
    for s in sorted(sizes, reverse=True):
        if before is not None:
            earlier = _subprocess(["run", str(home), str(s)], root=before)
            result["before"]["runs"].append(earlier)
            print(f"    before: one run over {s} sessions: {earlier['wall_s']} s, peak RSS "
                  f"{earlier['peak_rss_mb']:.0f} MB", flush=True)
        run = _subprocess(["run", str(home), str(s)])
        result["runs"].append(run)
        print(f"    one run over {s} sessions: {run['wall_s']} s (storage {run['storage_s']} s, "
              f"{run['events']} events, peak RSS {run['peak_rss_mb']:.0f} MB)"
              + ("" if run["success"] else f" FAILED {run['failures']}"), flush=True)
    days = _last_sessions(market, per_partition)
    result["per_partition"] = []
    for day in days:
        run = _subprocess(["run", str(home), "1", day])
        result["per_partition"].append(run)
        print(f"    one run for {day}: {run['wall_s']} s"
              + ("" if run["success"] else f" FAILED {run['failures']}"), flush=True)
    result["fit"] = fit_costs(result["runs"])
    result["projection_s"] = projection(result["fit"]["chain (wall)"])
    return result


def _last_sessions(market: str, n: int) -> list[str]:
    from prometheus_dagster.core.calendars import trading_calendar

    if n <= 0:
        return []
    days = trading_calendar(market).sessions("2024-01-01", MARKET_END)[-n:]
    return [d.strftime("%Y-%m-%d") for d in days]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.chain")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--names", default="120,500")
    parser.add_argument("--sessions", default="5,21,63,252")
    parser.add_argument("--per-partition", type=int, default=3)
    parser.add_argument("--market", default="US_EQ")
    parser.add_argument("--quick", action="store_true",
                        help="30 names, sessions 3,8, 2 runs per partition: a few minutes")
    parser.add_argument("--before", default="",
                        help="a checkout of an earlier version: each single run also with its "
                             "code, on the same home, right before this code's run")
    parser.add_argument("--out", default=str(RESULTS / "chain.json"),
                        help="JSON results (the table goes beside it as .md; '': nowhere)")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    if args.quick:
        args.names, args.sessions = QUICK["names"], QUICK["sessions"]
        args.per_partition = QUICK["per_partition"]
    sizes = sorted({int(s) for s in args.sessions.split(",") if s})
    if len(sizes) < 2:
        parser.error("--sessions needs at least two different values")
    results, tables = [], []
    with tempfile.TemporaryDirectory(prefix="chain-bench-") as tmp:
        for names in (int(n) for n in args.names.split(",") if n):
            results.append(bench_names(names, sizes, args.per_partition, args.market,
                                       Path(tmp), Path(args.before) if args.before else None))
            tables.append(format_table(results[-1]))
            print("\n" + tables[-1] + "\n", flush=True)
            if args.out:  # after each size: a long run keeps what it has measured
                out = Path(args.out)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=2))
                out.with_suffix(".md").write_text("\n\n".join(tables) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
