"""The full chain backtested over years of the embedded market with the strict time machine.

    .venv/bin/python -m benchmarks.backtest [--start 2015-06-01] [--end 2019-12-31]
                                            [--names 60] [--years 3] [--rebalance 21]

Builds a warehouse the way production does: reference data, prices, corporate actions and
statements ingested and features computed as single-run backfills through Dagster; issuer
profiles from statements by report date (the text chain is not run: no news embeddings);
quarterly point-in-time assessment refits for the backtest years. Then the ``US_EQ/
backtest_runs`` asset walks the last ``--years`` years with the long-only core strategy (its
universe's profile requirement met by the statement profiles) in strict mode: every read of
every engine goes through the time machine, the assessment scores are computed in the walk
with the model version trained before each rebalance, the risk model is estimated point in
time, the optimiser rebalances from the simulated holdings, the simulator fills on the next
session. Prints the metrics, the per-stage times (inside the backtest stage also the walk's
seconds in market reads, simulator and decisions) and where the tear sheet is; writes
benchmarks/results/backtest.json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import REPO, write_market_config

M = "US_EQ"
STRATEGY = "core_equity_long_only"


def _span(a: str, b: str) -> dict:
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="2015-06-01")
    parser.add_argument("--end", default="2019-12-31")
    parser.add_argument("--names", type=int, default=60)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--rebalance", type=int, default=21)
    args = parser.parse_args(argv)

    from dagster import AssetKey, DagsterInstance, materialize

    from prometheus_dagster.assets.assessment import assessment_assets
    from prometheus_dagster.assets.backtest import backtest_assets
    from prometheus_dagster.assets.features import features_assets
    from prometheus_dagster.assets.ingestion import ingestion_assets
    from prometheus_dagster.assets.portfolio import portfolio_assets
    from prometheus_dagster.assets.risk import risk_assets
    from prometheus_dagster.assets.universe import universe_assets
    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.features import FEATURE_TABLES
    from prometheus_dagster.engines.profiles import build_profiles
    from prometheus_dagster.resources import build_resources
    from prometheus_dagster.resources.sources import SourceResource
    from prometheus_dagster.resources.warehouse import Warehouse

    tmp = Path(tempfile.mkdtemp(prefix="prometheus-backtest-bench-"))
    market_cfg = write_market_config(tmp, args.names, args.start, args.end)
    url = f"duckdb:///{tmp / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(market_cfg))
    assets = [*ingestion_assets([M]), *features_assets([M]), *risk_assets([M]),
              *assessment_assets([M]), *universe_assets([M]), *portfolio_assets([M]),
              *backtest_assets([M])]
    instance = DagsterInstance.ephemeral()
    stages: dict[str, float] = {}

    def run(keys: list[str], **kw):
        result = materialize(assets, resources=resources, instance=instance,
                             selection=[AssetKey([M, k]) for k in keys], **kw)
        if not result.success:
            raise SystemExit(f"materialization of {keys} failed")
        return result

    sessions = trading_calendar(M).sessions(pd.Timestamp(args.start), pd.Timestamp(args.end))
    first, last = sessions[0].strftime("%Y-%m-%d"), sessions[-1].strftime("%Y-%m-%d")
    t = time.perf_counter()
    run(["instruments", "issuers"])
    run(["prices_daily", "corporate_actions", "fundamentals"], tags=_span(first, last))
    run(list(FEATURE_TABLES), tags=_span(first, last))
    stages["ingest_and_features"] = time.perf_counter() - t

    t = time.perf_counter()
    wh = Warehouse.from_url(url)
    pcfg = load_engine_config("profiles")
    issuers = wh.read("issuers", where={"market_id": M})
    companies = sorted(issuers.loc[issuers["issuer_type"] == "COMPANY", "issuer_id"])
    fundamentals = wh.read_partitions("fundamentals", market_id=M)
    days = [pd.Timestamp(d) for d in sessions]
    profiles = build_profiles(M, companies, days, fundamentals,
                              pd.DataFrame(columns=["article_id", "issuer_id", "date"]),
                              pcfg.config, pcfg.config_id)
    wh.write_partitions("profiles", profiles, market_id=M, dates=days)
    stages["profiles"] = time.perf_counter() - t

    bt_start = pd.Timestamp(args.end) - pd.DateOffset(years=args.years) + pd.Timedelta(days=1)
    t = time.perf_counter()
    quarters = pd.date_range(bt_start.to_period("Q").start_time, args.end, freq="QS")
    for q in quarters:
        run(["assessment_models"], partition_key=q.strftime("%Y-%m-%d"))
    stages["assessment_refits"] = time.perf_counter() - t

    t = time.perf_counter()
    config = {"strategy_id": STRATEGY, "start": str(bt_start.date()), "end": args.end,
              "strict": True, "rebalance_every": args.rebalance, "initial_capital": 1e7}
    done = run(["backtest_runs"],
               run_config={"ops": {f"{M}__backtest_runs": {"config": config}}})
    stages["backtest"] = time.perf_counter() - t
    walk = {}
    for event in done.get_asset_materialization_events():
        meta = event.materialization.metadata
        if "walk_seconds" in meta:
            walk = dict(meta["walk_seconds"].value)

    bt = wh.read("backtest_runs").iloc[-1]
    metrics = json.loads(bt["metrics"]) if isinstance(bt["metrics"], str) else bt["metrics"]
    reads = json.loads(bt["data_reads"]) if isinstance(bt["data_reads"], str) \
        else bt["data_reads"]
    equity = wh.read("backtest_daily_equity", where={"backtest_id": bt["backtest_id"]})
    out = {"backtest_id": bt["backtest_id"], "strict": bool(bt["strict"]),
           "start": str(pd.Timestamp(bt["start_date"]).date()),
           "end": str(pd.Timestamp(bt["end_date"]).date()), "sessions": len(equity),
           "names": args.names, "rebalance_every": args.rebalance,
           "assessment_refits": len(quarters), "metrics": metrics, "data_reads": reads,
           "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
           "backtest_walk_seconds": walk,
           "mlflow_run_id": bt["mlflow_run_id"], "mlflow": f"sqlite:///{tmp / 'mlflow.db'}"}
    print(f"backtest {out['backtest_id']}: {out['sessions']} sessions "
          f"{out['start']} .. {out['end']}, strict time machine")
    for k in ("total_return", "cagr", "ann_vol", "sharpe", "sortino", "max_drawdown",
              "max_drawdown_duration", "calmar", "avg_turnover", "hit_rate", "costs_bps",
              "benchmark_total_return"):
        print(f"  {k:<24} {metrics.get(k)}")
    print(f"  reads through the time machine: {sum(reads.values())} "
          f"({len(reads)} tables)")
    print("  stages: " + ", ".join(f"{k} {v:.0f}s" for k, v in stages.items()))
    if walk:
        print("  backtest walk: " + ", ".join(f"{k} {v:.1f}s" for k, v in walk.items()))
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "backtest.json").write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
