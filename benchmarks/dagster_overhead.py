"""Dagster's own bookkeeping per asset-partition, side by side on the instances the product
supports, in one run:

* ``sqlite``: the plain SQLite instance (``PROMETHEUS_INSTANCE=sqlite``), Dagster's defaults;
* ``sqlite+batch+subset``: the same with ``DAGSTER_EVENT_BATCH_SIZE=1000`` and
  ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true``;
* ``postgres``: dagster-postgres storage on the embedded server, Dagster's defaults;
* ``research``: the research instance (``PROMETHEUS_INSTANCE=postgres``, the default): the
  embedded server with batched writes and one planned event per asset.

Workloads, each a single-run backfill in one process (``materialize``):

* ``trivial``: an asset that does nothing, over N partitions, then a range of N/5 that fails
  on purpose (how many partitions the UI then shows materialized / failed / missing);
* ``ingest``: ``US_EQ/prices_daily`` of the embedded market (a few names) over S sessions from
  2005-01-03, where partitions start (4,760 sessions reach 2023-11);
* ``chain``: the data stages of the US_EQ daily chain (ingestion and features, every asset of
  ``US_EQ_daily`` in those groups) over the last 21 and 252 sessions of 2024.

For each: events written, seconds inside Dagster's run and event storage, the rest (engine
code and Dagster's in-process work), and milliseconds of storage per asset-partition; the
ratio of each instance to ``sqlite`` is the result (goal: research <= 3 ms per
asset-partition, >= 25x below sqlite).

    .venv/bin/python -m benchmarks.dagster_overhead [--partitions 500] [--ingest 4760]
        [--chain 21,252] [--instances sqlite,sqlite+batch+subset,postgres,research]

Each (instance, workload) runs in its own subprocess with its own PROMETHEUS_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import REPO, write_market_config

INSTANCES = ("sqlite", "sqlite+batch+subset", "postgres", "research")
BATCH_ENV = {"DAGSTER_EVENT_BATCH_SIZE": "1000",
             "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


# -- child: one instance, one workload ---------------------------------------------------------


class _StorageClock:
    """Time and count what Dagster writes: every event stored and every run-storage write."""

    def __init__(self, instance) -> None:
        self.seconds = 0.0
        self._depth = 0  # SQLite's batch write calls store_event per event: count those once
        self.events: Counter[str] = Counter()
        events, runs = instance.event_log_storage, instance.run_storage
        for obj, name in ((events, "store_event"), (events, "store_event_batch"),
                          (runs, "add_run"), (runs, "handle_run_event"),
                          (runs, "add_run_tags"), (runs, "update_run_tags")):
            if hasattr(obj, name):
                setattr(obj, name, self._timed(getattr(obj, name), name))

    def _timed(self, fn, name):
        def wrapper(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            if name.startswith("store_event"):
                batch = args[0] if name == "store_event_batch" else [args[0]]
                for e in batch:
                    self.events[e.dagster_event_type.value if e.dagster_event_type else "LOG"] += 1
            self._depth += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
                self._depth -= 1
        return wrapper


def _prepare_instance(kind: str, home: Path):
    from dagster import DagsterInstance

    from prometheus_dagster.core.instance import install_instance_config, instance_yaml

    dhome = home / "dagster_home"
    dhome.mkdir(parents=True)
    os.environ["DAGSTER_HOME"] = str(dhome)
    if kind == "research":
        if install_instance_config(dhome, "postgres") != "postgres":
            raise SystemExit("the research instance cannot start here")
    elif kind == "postgres":
        from prometheus_dagster.core.embedded_postgres import EmbeddedPostgres

        url = EmbeddedPostgres().url()
        (dhome / "dagster.yaml").write_text(
            instance_yaml("sqlite") + f"\nstorage:\n  postgres:\n    postgres_url: \"{url}\"\n")
    else:
        install_instance_config(dhome, "sqlite")
        if kind == "sqlite+batch+subset":
            os.environ.update(BATCH_ENV)
    return DagsterInstance.get()


def _status(instance, key, partitions_def, keys: list[str]) -> dict[str, int]:
    from dagster._core.storage.partition_status_cache import (
        get_and_update_asset_status_cache_value,
    )

    value = get_and_update_asset_status_cache_value(instance, key, partitions_def)
    done = set(value.deserialize_materialized_partition_subsets(partitions_def)
               .get_partition_keys())
    failed = set(value.deserialize_failed_partition_subsets(partitions_def).get_partition_keys())
    wanted = set(keys)
    return {"materialized": len(done & wanted), "failed": len(failed & wanted),
            "missing": len(wanted - done - failed)}


def _measure(instance, run, asset_partitions: int) -> dict:
    clock = _StorageClock(instance)
    t = time.perf_counter()
    result = run()
    wall = time.perf_counter() - t
    return {"success": result.success, "wall_s": round(wall, 2),
            "storage_s": round(clock.seconds, 2), "other_s": round(wall - clock.seconds, 2),
            "asset_partitions": asset_partitions,
            "storage_ms_per_asset_partition": round(1000 * clock.seconds / asset_partitions, 2),
            "events": sum(clock.events.values()),
            "planned_events": clock.events.get("ASSET_MATERIALIZATION_PLANNED", 0),
            "materialization_events": clock.events.get("ASSET_MATERIALIZATION", 0)}


def _trivial(instance, n: int) -> dict:
    from dagster import AssetKey, DailyPartitionsDefinition, asset, materialize

    partitions = DailyPartitionsDefinition(start_date="2000-01-01")
    keys = partitions.get_partition_keys()[: n + n // 5]
    broken = {"on": False}

    @asset(partitions_def=partitions, key=AssetKey(["BENCH", "trivial"]))
    def trivial(context) -> None:
        if broken["on"]:
            raise RuntimeError("failed on purpose")

    def run(first: str, last: str):
        return lambda: materialize([trivial], instance=instance, raise_on_error=False,
                                   tags={RANGE_START: first, RANGE_END: last})

    out = _measure(instance, run(keys[0], keys[n - 1]), n)
    broken["on"] = True
    failing = _measure(instance, run(keys[n], keys[-1]), len(keys) - n)
    out["failed_range"] = {k: failing[k] for k in ("success", "wall_s", "storage_s")}
    out["ui"] = _status(instance, trivial.key, partitions, keys)
    return out


def _embedded_resources(home: Path, names: int, start: str, end: str) -> dict:
    """The product's resources on a DuckDB warehouse and an embedded market of ``names``."""
    from prometheus_dagster.resources import build_resources
    from prometheus_dagster.resources.sources import SourceResource

    config = write_market_config(home, names, start, end)
    resources = build_resources(warehouse_url=f"duckdb:///{home}/warehouse.duckdb",
                                mlflow_uri=f"sqlite:///{home}/mlflow.db")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(config))
    return resources


def _ingest(instance, home: Path, sessions: int) -> dict:
    from dagster import AssetKey, materialize

    from prometheus_dagster.assets.ingestion import ingestion_assets
    from prometheus_dagster.core.calendars import trading_calendar

    resources = _embedded_resources(home, 5, "2005-01-03", "2024-12-31")
    assets = ingestion_assets(["US_EQ"])
    assert materialize(assets, resources=resources, instance=instance,
                       selection=[AssetKey(["US_EQ", "instruments"])]).success
    days = [d.strftime("%Y-%m-%d") for d in
            trading_calendar("US_EQ").sessions("2005-01-03", "2024-12-31")[:sessions]]
    prices = AssetKey(["US_EQ", "prices_daily"])
    out = _measure(instance, lambda: materialize(
        assets, resources=resources, instance=instance, selection=[prices],
        tags={RANGE_START: days[0], RANGE_END: days[-1]}), len(days))
    out["range"] = f"{days[0]}...{days[-1]}"
    partitions_def = next(a.partitions_def for a in assets if prices in a.keys)
    out["ui"] = _status(instance, prices, partitions_def, days)
    return out


def _chain(instance, home: Path, sessions: int) -> dict:
    from prometheus_dagster.assets.features import GROUP as FEATURES
    from prometheus_dagster.assets.ingestion import GROUP as INGESTION
    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.definitions import build_definitions
    from prometheus_dagster.jobs.daily import REFERENCE_JOB

    resources = _embedded_resources(home, 50, "2023-01-01", "2024-12-31")
    defs = build_definitions(**resources)
    reference = defs.resolve_job_def(REFERENCE_JOB)
    assert reference.execute_in_process(instance=instance).success
    job = defs.resolve_job_def("US_EQ_daily")
    graph = defs.resolve_asset_graph()
    keys = [k for k in job.asset_layer.executable_asset_keys
            if graph.get(k).group_name in (INGESTION, FEATURES)]
    days = [d.strftime("%Y-%m-%d") for d in
            trading_calendar("US_EQ").sessions("2024-01-01", "2024-12-31")[-sessions:]]
    out = _measure(instance, lambda: job.execute_in_process(
        instance=instance, asset_selection=keys, raise_on_error=False,
        tags={RANGE_START: days[0], RANGE_END: days[-1]}), len(days) * len(keys))
    out["assets"] = len(keys)
    statuses = [_status(instance, k, graph.get(k).partitions_def, days) for k in keys]
    out["ui"] = {s: sum(x[s] for x in statuses) for s in ("materialized", "failed", "missing")}
    return out


def _child(kind: str, workload: str, size: int, home: str) -> None:
    os.environ["PROMETHEUS_HOME"] = home
    instance = _prepare_instance(kind, Path(home))
    if workload == "trivial":
        out = _trivial(instance, size)
    elif workload == "ingest":
        out = _ingest(instance, Path(home), size)
    else:
        out = _chain(instance, Path(home), size)
    instance.dispose()
    print("RESULT " + json.dumps({"instance": kind, "workload": f"{workload} {size}", **out}))


# -- parent: every combination, side by side ---------------------------------------------------


def _run_child(kind: str, workload: str, size: int, tmp: Path) -> dict:
    home = tempfile.mkdtemp(prefix=f"{workload}-", dir=tmp)
    env = {k: v for k, v in os.environ.items() if k not in BATCH_ENV}
    env.pop("PROMETHEUS_DAGSTER_PG_URL", None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.dagster_overhead", "--child", kind,
                           workload, str(size), home], cwd=REPO, env=env, capture_output=True,
                          text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{kind} {workload} {size} failed:\n{proc.stderr[-3000:]}")


def _table(results: list[dict]) -> str:
    head = ("| workload | instance | asset-partitions | events (planned / materialized) | "
            "wall s | storage s | other s | storage ms per asset-partition | x faster than "
            "sqlite | UI: materialized / failed / missing |")
    lines = [head, "|" + "---|" * 10]
    base = {r["workload"]: r for r in results if r["instance"] == "sqlite"}
    for r in results:
        ref = base.get(r["workload"])
        ratio = (f"{ref['storage_s'] / r['storage_s']:.0f}x"
                 if ref and r["storage_s"] > 0 else "-")
        ui = r.get("ui", {})
        failed_range = f" (+ failing range: {r['failed_range']['storage_s']} s)" \
            if "failed_range" in r else ""
        lines.append(
            f"| {r['workload']} | {r['instance']} | {r['asset_partitions']} | {r['events']} "
            f"({r['planned_events']} / {r['materialization_events']}) | {r['wall_s']} | "
            f"{r['storage_s']}{failed_range} | {r['other_s']} | "
            f"{r['storage_ms_per_asset_partition']} | {ratio} | "
            f"{ui.get('materialized')} / {ui.get('failed')} / {ui.get('missing')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.dagster_overhead")
    parser.add_argument("--child", nargs=4, metavar=("INSTANCE", "WORKLOAD", "SIZE", "HOME"))
    parser.add_argument("--partitions", type=int, default=500, help="trivial asset (0: skip)")
    parser.add_argument("--ingest", type=int, default=1000,
                        help="prices_daily sessions (4760 for 2000-2018; 0: skip)")
    parser.add_argument("--chain", default="21,252", help="US_EQ chain sessions ('': skip)")
    parser.add_argument("--instances", default=",".join(INSTANCES))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"
                                              / "dagster_overhead.json"),
                        help="where the results go as JSON ('' : nowhere)")
    args = parser.parse_args(argv)
    if args.child:
        kind, workload, size, home = args.child
        _child(kind, workload, int(size), home)
        return 0
    kinds = [k for k in args.instances.split(",") if k]
    unknown = set(kinds) - set(INSTANCES)
    if unknown:
        parser.error(f"unknown instance(s) {sorted(unknown)}; use {', '.join(INSTANCES)}")
    workloads = ([("trivial", args.partitions)] if args.partitions else []) \
        + ([("ingest", args.ingest)] if args.ingest else []) \
        + [("chain", int(s)) for s in args.chain.split(",") if s]
    results = []
    with tempfile.TemporaryDirectory(prefix="dagster-overhead-") as tmp:
        for workload, size in workloads:
            for kind in kinds:
                print(f"==> {workload} {size} on {kind}", flush=True)
                results.append(_run_child(kind, workload, size, Path(tmp)))
                print("    " + json.dumps(results[-1]), flush=True)
    print(_table(results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
