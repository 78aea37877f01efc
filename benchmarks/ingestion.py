"""Ingestion benchmark: the reference-size embedded market (500 names, 20 years of history),
ingesting one year of US_EQ prices as ONE single-run backfill versus ONE RUN PER PARTITION,
measured in the same process session. Reports rows/s and peak memory of each mode.

    .venv/bin/python -m benchmarks.ingestion [--names 500] [--year 2024] [--per-partition 20]

Per-partition mode runs the first N sessions of the year (default 20) and reports its rate; the
ratio between the two rates is the result. Each mode runs in its own subprocess so that peak
memory (max RSS) is measured per mode.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, write_market_config


def _child(mode: str, config: str, home: str, year: int, per_partition: int) -> None:
    """Runs inside the subprocess: one mode, prints a JSON line."""
    import os

    os.environ["PROMETHEUS_HOME"] = home
    from dagster import AssetKey, DagsterInstance, materialize

    from prometheus_dagster.assets.ingestion import ingestion_assets
    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.resources import build_resources
    from prometheus_dagster.resources.sources import SourceResource
    from prometheus_dagster.resources.warehouse import Warehouse

    url = f"duckdb:///{home}/wh-{mode}.duckdb"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{home}/mlflow-{mode}.db")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=config)
    assets = ingestion_assets(["US_EQ"])
    instance = DagsterInstance.ephemeral()
    t = time.perf_counter()
    resources["source"].get().fetch("prices_daily", "US_EQ", f"{year}-01-02", f"{year}-01-02")
    generate_s = time.perf_counter() - t
    materialize(assets, resources=resources, instance=instance,
                selection=[AssetKey(["US_EQ", "instruments"])])
    sessions = trading_calendar("US_EQ").sessions(f"{year}-01-01", f"{year}-12-31")
    prices = [AssetKey(["US_EQ", "prices_daily"])]
    t = time.perf_counter()
    if mode == "single_run":
        res = materialize(assets, resources=resources, instance=instance, selection=prices, tags={
            "dagster/asset_partition_range_start": sessions[0].strftime("%Y-%m-%d"),
            "dagster/asset_partition_range_end": sessions[-1].strftime("%Y-%m-%d")})
        assert res.success
        n_partitions = len(sessions)
    else:
        for d in sessions[:per_partition]:
            res = materialize(assets, resources=resources, instance=instance, selection=prices,
                              partition_key=d.strftime("%Y-%m-%d"))
            assert res.success
        n_partitions = per_partition
    elapsed = time.perf_counter() - t
    rows = int(Warehouse.from_url(url).query("select count(*) as n from prices_daily")["n"][0])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "partitions": n_partitions, "rows": rows,
                      "seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed, 1),
                      "seconds_per_partition": round(elapsed / n_partitions, 3),
                      "generate_s": round(generate_s, 2), "peak_rss_mb": round(peak_mb, 1)}))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--per-partition", type=int, default=20)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], args.child[2], args.year, args.per_partition)
        return {}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = write_market_config(Path(tmp), args.names, f"{args.year - 19}-01-03",
                                     f"{args.year}-12-31")
        for mode in ("single_run", "per_partition"):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.ingestion", "--year", str(args.year),
                 "--per-partition", str(args.per_partition), "--child", mode, str(config), tmp],
                cwd=REPO, capture_output=True, text=True, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise SystemExit(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            results[mode] = json.loads(lines[-1])
    single, each = results["single_run"], results["per_partition"]
    results["speedup_rows_per_s"] = round(single["rows_per_s"] / each["rows_per_s"], 1)
    print(f"ingestion of {args.names} names, {args.year} (history from {args.year - 19}):")
    for mode in ("single_run", "per_partition"):
        r = results[mode]
        print(f"  {mode:<14} {r['partitions']:>4} partitions {r['rows']:>8} rows "
              f"{r['seconds']:>8.2f} s  {r['rows_per_s']:>10.1f} rows/s  "
              f"{r['seconds_per_partition']:.3f} s/partition  peak {r['peak_rss_mb']:.0f} MB "
              f"(generation {r['generate_s']:.1f} s)")
    print(f"  single-run backfill is {results['speedup_rows_per_s']}x the per-partition rate")
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "ingestion.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
