"""Features and embeddings benchmark: 500 US_EQ names x 5 years of the embedded market.

    .venv/bin/python -m benchmarks.encoders [--names 500] [--years 5] [--per-partition 5]

Stages, each a single-run backfill through Dagster in its own subprocess (so that peak memory
is measured per stage) on one DuckDB warehouse:

1. ingestion of the 5 years (set-up; reported, not the subject);
2. features over the 5 years;
3. text embeddings of every article of the 5 years (first pass), then again (cache hits);
4. encoder training for the last year (trained on the 4 years before it), with held-out
   recall@10 against its random baseline;
5. numeric-window/joint embeddings and profiles over the last year;
6. the same assets as one run per partition for the first ``--per-partition`` sessions of the
   last year: the baseline that the single-run rate is compared with.

Reports seconds, rows per second and peak RSS per stage in benchmarks/results/encoders.json.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, write_market_config

M = "US_EQ"


def _child(stage: str, config: str, home: str, first_year: int, last_year: int,
           per_partition: int) -> None:
    """Runs one stage inside the subprocess and prints a JSON line."""
    import os
    import resource

    os.environ["PROMETHEUS_HOME"] = home
    from dagster import AssetKey, DagsterInstance, materialize

    from prometheus_dagster.assets.embeddings import encoder_assets
    from prometheus_dagster.assets.features import features_assets
    from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
    from prometheus_dagster.assets.profiles import profile_assets
    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.engines.features import FEATURE_TABLES
    from prometheus_dagster.resources import build_resources
    from prometheus_dagster.resources.sources import SourceResource
    from prometheus_dagster.resources.warehouse import Warehouse

    url = f"duckdb:///{home}/wh.duckdb"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{home}/mlflow.db")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=config)
    assets = [*ingestion_assets([M]), *features_assets([M]), *encoder_assets([M], [M]),
              *profile_assets([M])]
    instance = DagsterInstance.ephemeral()
    cal = trading_calendar(M)
    all_days = cal.sessions(f"{first_year}-01-01", f"{last_year}-12-31")
    last_days = cal.sessions(f"{last_year}-01-01", f"{last_year}-12-31")

    def span(days) -> dict:
        return {"dagster/asset_partition_range_start": days[0].strftime("%Y-%m-%d"),
                "dagster/asset_partition_range_end": days[-1].strftime("%Y-%m-%d")}

    def run(selection, **kw) -> None:
        result = materialize(assets, resources=resources, instance=instance,
                             selection=selection, **kw)
        if not result.success:
            raise SystemExit(f"stage {stage} failed")

    wh = Warehouse.from_url(url)
    keys = {
        "ingest": [AssetKey([M, t]) for t in MARKET_TABLES],
        "features": [AssetKey([M, t]) for t in FEATURE_TABLES],
        "text": [AssetKey([M, "text_embeddings"])],
        "windows": [AssetKey([M, "numeric_window_embeddings"]),
                    AssetKey([M, "joint_embeddings"]), AssetKey([M, "profiles"])],
    }
    out: dict = {"stage": stage}
    t = time.perf_counter()
    if stage == "ingest":
        run([AssetKey([M, "instruments"]), AssetKey([M, "issuers"])])
        run(keys["ingest"], tags=span(all_days))
        out["rows"] = int(wh.query("select count(*) as n from prices_daily")["n"].iloc[0])
        out["partitions"] = len(all_days)
    elif stage == "features":
        run(keys["features"], tags=span(all_days))
        out["rows"] = sum(int(wh.query(f"select count(*) as n from {t}")["n"].iloc[0])
                          for t in FEATURE_TABLES)
        out["partitions"] = len(all_days)
    elif stage in ("text", "text_cached"):
        run(keys["text"], tags=span(all_days))
        out["rows"] = int(wh.query("select count(*) as n from text_embeddings")["n"].iloc[0])
        out["partitions"] = len(all_days)
    elif stage == "train":
        run([AssetKey([M, "encoder_models"])], partition_key=f"{last_year}-01-01")
        models = wh.read("models", where={"model_type": "joint_encoder"})
        metrics = json.loads(models["metrics"].iloc[-1])
        out.update({k: metrics[k] for k in ("heldout_recall_at_10", "random_recall_at_10",
                                            "recall_at_10_vs_random", "joint_train_pairs",
                                            "joint_heldout_pairs", "numeric_pairs")})
        out["partitions"] = 1
    elif stage == "windows":
        run(keys["windows"], tags=span(last_days))
        out["rows"] = sum(int(wh.query(f"select count(*) as n from {t} where as_of_date >= "
                                       f"'{last_year}-01-01'")["n"].iloc[0])
                          for t in ("numeric_window_embeddings", "joint_embeddings", "profiles"))
        out["partitions"] = len(last_days)
    elif stage == "windows_per_partition":
        days = last_days[:per_partition]
        for d in days:
            run(keys["features"] + keys["windows"], partition_key=d.strftime("%Y-%m-%d"))
        out["partitions"] = len(days)
    out["seconds"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out), flush=True)


STAGES = ("ingest", "features", "text", "text_cached", "train", "windows",
          "windows_per_partition")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--names", type=int, default=500)
    p.add_argument("--years", type=int, default=5)
    p.add_argument("--last-year", type=int, default=2023)
    p.add_argument("--per-partition", type=int, default=5)
    p.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        stage, config, home, first, last, per = args.child
        _child(stage, config, home, int(first), int(last), int(per))
        return {}
    first_year = args.last_year - args.years + 1
    results: dict = {"names": args.names, "years": args.years,
                     "span": f"{first_year}..{args.last_year}", "stages": {}}
    with tempfile.TemporaryDirectory(prefix="prometheus-bench-") as tmp:
        config = write_market_config(Path(tmp), args.names, f"{first_year - 1}-10-01",
                                     f"{args.last_year}-12-31")
        for stage in STAGES:
            print(f"==> {stage}", flush=True)
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.encoders", "--child", stage, str(config), tmp,
                 str(first_year), str(args.last_year), str(args.per_partition)],
                cwd=REPO, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                print(proc.stdout[-3000:], proc.stderr[-3000:])
                raise SystemExit(f"benchmark stage {stage} failed")
            res = json.loads(lines[-1][len("RESULT "):])
            results["stages"][stage] = res
            print("    " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in res.items() if k != "stage"), flush=True)
    s = results["stages"]
    single = s["features"]["seconds"] / s["features"]["partitions"]
    window_single = s["windows"]["seconds"] / s["windows"]["partitions"]
    per_part = s["windows_per_partition"]["seconds"] / s["windows_per_partition"]["partitions"]
    results["summary"] = {
        "features_and_embeddings_seconds": s["features"]["seconds"] + s["text"]["seconds"]
        + s["train"]["seconds"] + s["windows"]["seconds"],
        "peak_rss_mb": max(v["peak_rss_mb"] for k, v in s.items() if k != "ingest"),
        "features_seconds_per_session_single_run": single,
        "text_first_pass_vs_cached_speedup": s["text"]["seconds"] / s["text_cached"]["seconds"],
        "single_run_vs_per_partition_speedup": per_part / (single + window_single),
        "recall_at_10_vs_random": s["train"]["recall_at_10_vs_random"],
    }
    print(json.dumps(results["summary"], indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "encoders.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
