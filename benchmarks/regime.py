"""Regime accuracy against the embedded market's hidden regime path (10 years).

    .venv/bin/python -m benchmarks.regime [--start 2012-01-02] [--end 2021-12-31] [--names 60]

The market's internals come from the feature engine on the generated prices, the macro series
from the generator; the regime engine then runs exactly as its assets do: quarterly prototype
refits, each fitted only on data dated before its quarter, and every session labelled with the
version trained strictly before it, the smoothed path built forward in time. Scored out of
sample (after the first training cut) per region (US_EQ, EU_EQ, GLOBAL):

* balanced accuracy of risk-off (GRINDING + CRASH truth -> RISK_OFF_GRINDING/PANIC) vs calm
  (CALM truth -> not risk-off; strict: -> RISK_ON_LOW_VOL);
* labels changed by a window 10% shorter or longer;
* the shortest completed regime run (>= min_regime_duration_days).

Metrics, the summary and a plot per region (index on regime shading with the true risk-off
days as a strip) are logged to MLflow (experiment ``prometheus/regime-benchmark``) and written
to benchmarks/results/regime.json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import REPO

REGIONS = {"US_EQ": ("US_EQ",), "EU_EQ": ("EU_EQ",), "GLOBAL": ("US_EQ", "EU_EQ")}


def market_internals(gen, market: str, start: str, end: str) -> pd.DataFrame:
    from prometheus_dagster.engines.features import FeatureInputs, compute_market_correlation

    inputs = FeatureInputs(prices=gen.prices(market, start, end),
                           corporate_actions=gen.corporate_actions(market, start, end),
                           fundamentals=gen.fundamentals(market, start, end),
                           instruments=gen.instruments(market))
    sessions = pd.DatetimeIndex(sorted(pd.to_datetime(inputs.prices["date"]).unique()))
    return compute_market_correlation(inputs, sessions)


def regime_path(region: str, inputs, cfg, first_cut: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """The smoothed path of a region with quarterly refits from ``first_cut`` on."""
    from prometheus_dagster.engines.regime import (
        assign_regimes,
        compute_region_features,
        fit_regime_model,
    )

    features = compute_region_features(inputs, cfg)
    models = {}
    refits = pd.date_range(first_cut, features.index[-1], freq="QS")
    for i, valid_from in enumerate(refits):
        hist = features[features.index < valid_from]
        model = fit_regime_model(hist, hist.index[-1], cfg)
        until = refits[i + 1] if i + 1 < len(refits) else features.index[-1] + pd.Timedelta(1, "D")
        for d in features.index[(features.index >= valid_from) & (features.index < until)]:
            models[d] = (f"{region}/{i + 1}", model)
    return assign_regimes(region, features, models, cfg, "benchmark"), len(refits)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2012-01-02")
    ap.add_argument("--end", default="2021-12-31")
    ap.add_argument("--train-years", type=int, default=3, help="history before the first cut")
    ap.add_argument("--names", type=int, default=60, help="names per equity market")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.regime import (
        RegionInputs,
        combine_internals,
        label_agreement,
        risk_off_balanced_accuracy,
        run_lengths,
    )
    from prometheus_dagster.engines.regime.plots import regime_figure
    from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig
    from prometheus_dagster.engines.synthetic_market.generator import SyntheticMarket
    from prometheus_dagster.resources.mlflow_tracking import MlflowTracking

    t0 = time.perf_counter()
    loaded = load_engine_config("regime")
    cfg = loaded.config
    gen = SyntheticMarket(SyntheticMarketConfig(
        seed=args.seed, start_date=args.start, end_date=args.end,
        markets={"US_EQ": {"n_instruments": args.names},
                 "EU_EQ": {"n_instruments": max(10, args.names * 2 // 3)}}))
    internals = {m: market_internals(gen, m, args.start, args.end) for m in ("US_EQ", "EU_EQ")}
    macro = gen.macro(args.start, args.end)
    truth_all = gen.truth_regimes()
    t_data = time.perf_counter() - t0
    first_cut = pd.Timestamp(args.start) + pd.DateOffset(years=args.train_years)
    first_cut = pd.Timestamp(first_cut.year, 1, 1) if first_cut.month == 1 else first_cut
    results, figures = {}, {}
    for region, members in REGIONS.items():
        frame = internals[region] if region != "GLOBAL" else combine_internals(
            {m: internals[m] for m in members})
        inputs = RegionInputs(region, frame, macro, cfg.regions[region].macro)
        paths = {}
        for w in (cfg.window, round(cfg.window * 0.9), round(cfg.window * 1.1)):
            wcfg = cfg.model_copy(update={"window": w})
            paths[w], refits = regime_path(region, inputs, wcfg, first_cut)
        base = paths[cfg.window].set_index("as_of_date")["regime_label"]
        truth = truth_all[truth_all["market_id"] == region].set_index("date")["regime"]
        score = risk_off_balanced_accuracy(base, truth)
        runs = run_lengths(list(base))
        changed = {f"labels_changed_window_{w}": 1 - label_agreement(
            base, p.set_index("as_of_date")["regime_label"])
            for w, p in paths.items() if w != cfg.window}
        results[region] = {**score, **changed, "refits": refits, "sessions": len(base),
                           "shortest_completed_run": min(n for _, n in runs[1:-1]),
                           "switches": len(runs) - 1,
                           "mean_confidence": float(paths[cfg.window]["confidence"].mean())}
        index = frame.set_index(pd.to_datetime(frame["date"]))["index_ret_1d"]
        figures[region] = regime_figure(f"{region} (out of sample)", paths[cfg.window], index,
                                        truth)
        print(f"{region:<7} balanced accuracy {score['balanced_accuracy']:.3f} "
              f"(strict {score['strict_balanced_accuracy']:.3f}; risk-off recall "
              f"{score['risk_off_recall']:.3f}, calm {score['calm_not_risk_off']:.3f}); "
              + ", ".join(f"{k.split('_')[-1]}-session window changes {v:.1%}"
                          for k, v in changed.items())
              + f"; shortest run {results[region]['shortest_completed_run']}", flush=True)
    summary = {"start": args.start, "end": args.end, "first_cut": str(first_cut.date()),
               "names": args.names, "seed": args.seed, "config_id": loaded.config_id,
               "seconds_data": t_data, "seconds_total": time.perf_counter() - t0,
               "regions": results}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "regime.json").write_text(json.dumps(summary, indent=2))
    tracking = MlflowTracking()
    with tracking.start_run("regime-benchmark", run_name="regime-vs-truth",
                            tags={"config_id": loaded.config_id}) as run:
        run.log_params({k: v for k, v in summary.items() if k != "regions"})
        for region, res in results.items():
            run.log_metrics({f"{region}.{k}": float(v) for k, v in res.items()})
            run.log_figure(figures[region], f"{region}_regimes_vs_truth.png")
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "regime_benchmark.json"
            p.write_text(json.dumps(summary, indent=2))
            run.log_artifact(p)
        print(f"MLflow run {run.run_id} ({run.url})")
    print(f"done in {summary['seconds_total']:.0f}s -> {out / 'regime.json'}")


if __name__ == "__main__":
    main()
