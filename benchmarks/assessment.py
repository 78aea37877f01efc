"""Assessment against the embedded market: do the walk-forward out-of-sample forecasts of the
LightGBM combination model rank forward excess returns?

    .venv/bin/python -m benchmarks.assessment [--start 2012-01-02] [--end 2019-12-31]
                                              [--names 300] [--seed 42]

The US_EQ market is generated (its premia: value, low specific vol, size, quality, a
persistent latent drift that past returns reveal, a large negative drift for distressed
names), the feature engine computes returns, volatility, liquidity and factor exposures,
the profiles engine the risk flags (statements by report date), and the assessment engine its
features and forward labels on every session. Stability, fragility and regime inputs are left
out (their chains take far longer than this benchmark; those features are NaN, as a market
without them would have them). For each horizon (5 and 21 sessions) the expanding-window
walk-forward of the config (purged by the horizon, embargoed) predicts every fold out of
sample; the metrics are the mean daily rank IC (and t-stat), hit rate, decile mean excess
returns and the Spearman of deciles against them, IC per hidden regime of the generator (for
slicing only, never a feature), and the same for a baseline without fitting: the equal-weight
mean of the features that have a sign prior (``model.monotone``), signed. Acceptance: mean
rank IC > 0.02 and decile Spearman >= 0.8 for both horizons. Logged to MLflow (experiment
``prometheus/assessment-benchmark``) with a decile plot and written to
benchmarks/results/assessment.json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import REPO

MARKET = "US_EQ"


def market_inputs(gen, start: str, end: str, configs: dict):
    """(AssessmentInputs of the generated market, its sessions, the instruments)."""
    from prometheus_dagster.engines.assessment import AssessmentInputs
    from prometheus_dagster.engines.features import FeatureInputs, compute_features
    from prometheus_dagster.engines.profiles import build_profiles

    prices = gen.prices(MARKET, start, end)
    actions = gen.corporate_actions(MARKET, start, end)
    fundamentals = gen.fundamentals(MARKET, start, end)
    instruments, issuers = gen.instruments(MARKET), gen.issuers(MARKET)
    sessions = pd.DatetimeIndex(sorted(pd.to_datetime(prices["date"]).unique()))
    fcfg, pcfg = configs["features"], configs["profiles"]
    feats = compute_features(
        FeatureInputs(prices=prices, corporate_actions=actions, fundamentals=fundamentals,
                      instruments=instruments), sessions, fcfg.config,
        config_id=fcfg.config_id, tables=["returns_daily", "volatility_daily",
                                          "liquidity_daily", "instrument_factors_daily"])
    companies = sorted(issuers.loc[issuers["issuer_type"] == "COMPANY", "issuer_id"])
    profiles = build_profiles(MARKET, companies, list(sessions), fundamentals,
                              pd.DataFrame(columns=["article_id", "issuer_id", "date"]),
                              pcfg.config, pcfg.config_id)
    dividends = actions.loc[actions["action_type"] == "DIVIDEND", ["instrument_id", "date",
                                                                    "value"]]
    inputs = AssessmentInputs(
        prices=prices, returns=feats["returns_daily"], instruments=instruments,
        volatility=feats["volatility_daily"], liquidity=feats["liquidity_daily"],
        exposures=feats["instrument_factors_daily"], fundamentals=fundamentals,
        dividends=dividends, profiles=profiles)
    return inputs, sessions, instruments


def baseline_predictions(features: pd.DataFrame, preds: pd.DataFrame, cfg) -> pd.DataFrame:
    """The walk-forward rows with ``prediction`` replaced by the signed equal-weight mean of
    the model features that carry a sign prior (no fitting)."""
    signed = [(f, s) for f, s in cfg.model.monotone.items() if s and f in cfg.feature_names]
    x = pd.concat([s * features[f] for f, s in signed], axis=1).mean(axis=1, skipna=True)
    base = features[["instrument_id", "as_of_date"]].assign(baseline=x.fillna(0.0))
    out = preds.drop(columns="prediction").merge(base, on=["instrument_id", "as_of_date"],
                                                 how="left")
    return out.rename(columns={"baseline": "prediction"})


def decile_figure(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.5))
    for ax, (key, res) in zip(np.atleast_1d(axes), results.items(), strict=True):
        x = np.arange(1, 11)
        ax.bar(x - 0.2, np.array(res["model"]["decile_means"]) * 1e4, 0.4, label="model")
        ax.bar(x + 0.2, np.array(res["baseline"]["decile_means"]) * 1e4, 0.4,
               label="equal-weight baseline")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=f"{key}: mean OOS excess return by forecast decile", xlabel="decile",
               ylabel="bp", xticks=x)
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def _flat(prefix: str, metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if k == "decile_means":
            out.update({f"{prefix}.decile_{i + 1}": float(x) for i, x in enumerate(v)})
        elif k == "ic_by_regime":
            out.update({f"{prefix}.ic_{label}": float(r["mean_rank_ic"]) for label, r in v.items()})
        else:
            out[f"{prefix}.{k}"] = float(v)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2012-01-02")
    ap.add_argument("--end", default="2019-12-31")
    ap.add_argument("--names", type=int, default=300, help="US_EQ names")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.assessment import (
        assessment_features,
        evaluate_predictions,
        forward_labels,
        walk_forward_predictions,
    )
    from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig
    from prometheus_dagster.engines.synthetic_market.generator import SyntheticMarket
    from prometheus_dagster.resources.mlflow_tracking import MlflowTracking

    t0 = time.perf_counter()
    configs = {k: load_engine_config(k) for k in ("features", "profiles", "assessment")}
    cfg = configs["assessment"].config
    gen = SyntheticMarket(SyntheticMarketConfig(
        seed=args.seed, start_date=args.start, end_date=args.end,
        markets={MARKET: {"n_instruments": args.names}, "EU_EQ": {"n_instruments": 10}}))
    inputs, sessions, instruments = market_inputs(gen, args.start, args.end, configs)
    timings = {"inputs": time.perf_counter() - t0}
    print(f"{MARKET}: {args.names} names, {len(sessions)} sessions; inputs "
          f"{timings['inputs']:.0f}s", flush=True)
    t = time.perf_counter()
    features = assessment_features(inputs, sessions, cfg)
    timings["features"] = time.perf_counter() - t
    t = time.perf_counter()
    labels = forward_labels(inputs.returns, cfg.horizons, instruments=instruments)
    timings["labels"] = time.perf_counter() - t
    print(f"features: {len(features)} rows ({timings['features']:.0f}s); labels: "
          f"{len(labels)} rows ({timings['labels']:.0f}s)", flush=True)
    truth = gen.truth_regimes(args.start, args.end)
    truth = truth[truth["market_id"] == MARKET].rename(columns={"date": "as_of_date",
                                                               "regime": "regime_label"})
    results = {}
    for h in cfg.horizons:
        t = time.perf_counter()
        preds = walk_forward_predictions(features, labels, cfg, h, sessions=sessions)
        timings[f"walk_forward_h{h}"] = time.perf_counter() - t
        model = evaluate_predictions(preds, truth)
        base = evaluate_predictions(baseline_predictions(features, preds, cfg), truth)
        results[f"h{h}"] = {"model": model, "baseline": base,
                            "folds": int(preds["fold"].nunique()),
                            "oos_start": str(pd.Timestamp(preds["as_of_date"].min()).date())}
        print(f"h{h}: OOS mean rank IC {model['mean_rank_ic']:.4f} (t {model['ic_t_stat']:.1f}), "
              f"decile Spearman {model['decile_spearman']:.2f}, hit rate "
              f"{model['hit_rate']:.3f} over {model['n_dates']} dates from "
              f"{results[f'h{h}']['oos_start']} ({timings[f'walk_forward_h{h}']:.0f}s); "
              f"baseline IC {base['mean_rank_ic']:.4f}, decile Spearman "
              f"{base['decile_spearman']:.2f}", flush=True)
        print("     decile means (bp): "
              + " ".join(f"{v * 1e4:.1f}" for v in model["decile_means"]))
        print("     IC by hidden regime: " + ", ".join(
            f"{k} {v['mean_rank_ic']:.3f} ({v['dates']}d)"
            for k, v in model["ic_by_regime"].items()))
    passed = all(r["model"]["mean_rank_ic"] > 0.02 and r["model"]["decile_spearman"] >= 0.8
                 for r in results.values())
    summary = {"start": args.start, "end": args.end, "names": args.names, "seed": args.seed,
               "market": MARKET, "config_ids": {k: v.config_id for k, v in configs.items()},
               "acceptance": {"mean_rank_ic_above": 0.02, "decile_spearman_at_least": 0.8,
                              "passed": passed},
               "seconds": timings, "seconds_total": time.perf_counter() - t0,
               "results": results}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "assessment.json").write_text(json.dumps(summary, indent=2))
    tracking = MlflowTracking()
    with tracking.start_run("assessment-benchmark", run_name="assessment-walk-forward",
                            tags={"config_id": configs["assessment"].config_id}) as run:
        run.log_params({"start": args.start, "end": args.end, "names": args.names,
                        "seed": args.seed, "horizons": ",".join(map(str, cfg.horizons)),
                        "n_folds": cfg.walk_forward.n_folds,
                        "embargo_sessions": cfg.walk_forward.embargo_sessions,
                        "model_id": cfg.model.model_id})
        metrics = {"passed": float(passed)}
        for hk, res in results.items():
            metrics.update(_flat(f"{hk}.model", res["model"]))
            metrics.update(_flat(f"{hk}.baseline", res["baseline"]))
        run.log_metrics(metrics)
        run.log_figure(decile_figure(results), "oos_deciles.png")
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "assessment_benchmark.json"
            p.write_text(json.dumps(summary, indent=2))
            run.log_artifact(p)
        print(f"MLflow run {run.run_id} ({run.url})")
    print(f"acceptance (IC > 0.02, decile Spearman >= 0.8 per horizon): "
          f"{'PASSED' if passed else 'FAILED'}; done in {summary['seconds_total']:.0f}s -> "
          f"{out / 'assessment.json'}")


if __name__ == "__main__":
    main()
