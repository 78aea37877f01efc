"""Fragility against the embedded market's truth: do SoftTargetScore and FragilityAlpha rank
the issuers whose distress ends in a crash of 40% or more, or a delisting, within the next 63
sessions above the others?

    .venv/bin/python -m benchmarks.fragility [--start 2012-01-02] [--end 2019-12-31]
                                             [--names 80] [--every 5] [--seed 42]

The chain runs as its assets do, on the generated data: features, profiles (statements by
report date), the regime path (quarterly refits), stability vectors, scenario sets generated as
of each evaluated session, fragility measures, soft-target classes and components; the tail
model is refitted every January on the issuer-days whose horizons ended before it (its target:
a 40% loss relative to the market index, or a delisting, as configured) and scores the year
that follows. Scored out of sample (after the first cut), pooled over US_EQ and EU_EQ
issuer-days every ``--every`` sessions, with three labels per horizon (21 and 63 sessions):

* ``truth``: the generator's distress episodes (``truth_distress_events``: crash of at least
  40% peak to trough, or default and delisting) ending within the horizon -- the acceptance
  label;
* ``price``: any close 40% or more below the as-of close within the horizon, or a delisting,
  on the raw total-return path: it also counts every name caught in a market-wide crash, which
  is the regime engine's business rather than fragility, and is reported for transparency;
* ``model_target``: what the model is trained on.

ROC AUCs of SoftTargetScore, FragilityAlpha and each component, the truth rate per soft-target
class, and a ROC plot are logged to MLflow (experiment ``prometheus/fragility-benchmark``) and
written to benchmarks/results/fragility.json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import REPO

MARKETS = ("US_EQ", "EU_EQ")


def market_chain(gen, market: str, start: str, end: str, every: int, warmup_years: int,
                 configs: dict, regimes: pd.Series | None):
    """(components of every entity on the evaluated sessions, the tail outcomes the model
    learns per horizon, the raw (not market-relative) price outcomes, the sessions)."""
    from prometheus_dagster.engines.features import FeatureInputs, compute_features
    from prometheus_dagster.engines.fragility import (
        fragility_components,
        fragility_measures,
        index_levels,
        soft_target_classes,
        tail_outcomes,
        total_return_levels,
    )
    from prometheus_dagster.engines.fragility.components import window_return
    from prometheus_dagster.engines.profiles import build_profiles
    from prometheus_dagster.engines.scenarios import (
        ScenarioInputs,
        generate_scenarios,
        scenario_frames,
    )
    from prometheus_dagster.engines.stability import StabilityInputs, compute_stability

    fcfg, pcfg, scfg, scen_cfg, frag = (configs[k] for k in (
        "features", "profiles", "stability", "scenarios", "fragility"))
    instruments, issuers = gen.instruments(market), gen.issuers(market)
    actions = gen.corporate_actions(market, start, end)
    inputs = FeatureInputs(prices=gen.prices(market, start, end), corporate_actions=actions,
                           fundamentals=gen.fundamentals(market, start, end),
                           instruments=instruments)
    sessions = pd.DatetimeIndex(sorted(pd.to_datetime(inputs.prices["date"]).unique()))
    feats = compute_features(inputs, sessions, fcfg.config, config_id=fcfg.config_id)
    first = sessions[0] + pd.DateOffset(years=warmup_years)
    dates = list(sessions[sessions >= first][::every])
    companies = sorted(issuers.loc[issuers["issuer_type"] == "COMPANY", "issuer_id"])
    empty_news = pd.DataFrame(columns=["article_id", "issuer_id", "date"])
    profiles = build_profiles(market, companies, dates, inputs.fundamentals, empty_news,
                              pcfg.config, pcfg.config_id)
    rets = feats["returns_daily"]
    internals = feats["market_correlation_daily"].dropna(subset=["index_ret_1d"])
    stab = compute_stability(market, StabilityInputs(
        returns=rets[["instrument_id", "date", "ret_1d"]],
        volatility=feats["volatility_daily"], liquidity=feats["liquidity_daily"],
        instruments=instruments, issuers=issuers, profiles=profiles,
        index_returns=internals.set_index(pd.to_datetime(internals["date"]))["index_ret_1d"],
        regime_labels=regimes), dates, scfg.config, scfg.config_id)

    wide = rets.pivot_table(index="date", columns="instrument_id", values="ret_1d")
    wide.index = pd.to_datetime(wide.index)
    factors = feats["factors_daily"].pivot_table(index="date", columns="factor_id",
                                                 values="value")
    factors.index = pd.to_datetime(factors.index)
    expo = feats["instrument_factors_daily"]
    expo = expo[pd.to_datetime(expo["date"]).isin(dates)]
    sector_of = instruments.merge(issuers[["issuer_id", "sector"]], on="issuer_id") \
        .set_index("instrument_id")["sector"]
    equity = instruments[instruments["asset_class"] == "EQUITY"]
    equity_of = equity.set_index("issuer_id")["instrument_id"]
    issuer_of = equity.set_index("instrument_id")["issuer_id"]
    measures, t0 = [], time.perf_counter()
    for i, d in enumerate(dates):
        day = stab[stab["as_of_date"] == d]
        iss = day[day["entity_type"] == "ISSUER"]
        weak = pd.Series(((1 - iss["stability_score"]) + (1 - iss["fundamental"])).to_numpy()
                         / 2, index=iss["entity_id"].map(equity_of).to_numpy()).dropna()
        ex = expo[pd.to_datetime(expo["date"]) == d].pivot_table(
            index="instrument_id", columns="factor_id", values="exposure")
        sets = generate_scenarios(market, d, ScenarioInputs(
            returns=wide.loc[:d], factors=factors.loc[:d],
            regime_labels=None if regimes is None else regimes.loc[:d],
            exposures=ex if len(ex) else None, sectors=sector_of, weakness=weak.clip(0, 1)),
            scen_cfg.config, scen_cfg.config_id)
        set_rows, paths = scenario_frames(sets)
        paths = paths.merge(set_rows[["set_id", "name", "family"]], on="set_id")
        members = {("ISSUER", i_): [equity_of[i_]] for i_ in iss["entity_id"]
                   if i_ in equity_of.index}
        for s in day.loc[day["entity_type"] == "SECTOR", "entity_id"]:
            members[("SECTOR", s)] = [k for k, v in sector_of.items()
                                      if v == s.split(":", 1)[-1] and k in issuer_of.index]
        members[("MARKET", market)] = list(issuer_of.index)
        measures.append(fragility_measures(market, d, paths, members, frag.config,
                                           frag.config_id))
        if (i + 1) % 100 == 0:
            print(f"  {market}: scenarios {i + 1}/{len(dates)} dates "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
    measures = pd.concat(measures, ignore_index=True)
    classes = soft_target_classes(stab, measures, frag.config, frag.config_id)
    eq_rets = rets[rets["instrument_id"].isin(issuer_of.index)]
    ret_63d = window_return(eq_rets, 63).assign(date=lambda f: pd.to_datetime(f["date"]))
    market_frame = (eq_rets[["instrument_id", "date", "ret_21d"]].assign(
        date=lambda f: pd.to_datetime(f["date"]))
        .merge(ret_63d, on=["instrument_id", "date"], how="left")
        .merge(feats["volatility_daily"][["instrument_id", "date", "vol_63d", "drawdown"]]
               .assign(date=lambda f: pd.to_datetime(f["date"])),
               on=["instrument_id", "date"], how="left"))
    market_frame = market_frame[market_frame["instrument_id"].isin(issuer_of.index)
                                & market_frame["date"].isin(dates)]
    market_frame = market_frame.assign(entity_id=market_frame["instrument_id"].map(issuer_of),
                                       as_of_date=market_frame["date"])
    flags = profiles.rename(columns={"issuer_id": "entity_id"})
    comp = fragility_components(stab, measures, classes, market_frame, flags, frag.config)
    levels = total_return_levels(rets[["instrument_id", "date", "ret_1d"]])
    delist = actions[actions["action_type"] == "DELISTING"].groupby("instrument_id")["date"] \
        .min()
    to = frag.config.tail_outcome
    index = index_levels(internals.set_index("date")["index_ret_1d"], levels.index)
    targets = {h: tail_outcomes(levels, delist, h, to.drawdown, to.count_delisting,
                                index if to.relative_to == "market" else None)
               for h in frag.config.horizons}
    raw = {h: tail_outcomes(levels, delist, h, to.drawdown, to.count_delisting)
           for h in frag.config.horizons}
    return comp, targets, raw, sessions


def truth_labels(rows: pd.DataFrame, truth: pd.DataFrame, sessions: pd.DatetimeIndex,
                 horizon: int, drawdown: float) -> pd.Series:
    """True where the issuer's distress episode in the generator's truth (a crash of at least
    ``drawdown`` peak to trough, or a default and delisting) ends within the next ``horizon``
    sessions."""
    events = truth[(truth["peak_to_trough"] <= -drawdown)
                   | (truth["event_type"] == "DEFAULT_DELISTING")]
    pos = np.searchsorted(sessions.values, rows["as_of_date"].values)
    end = sessions.values[np.minimum(pos + horizon, len(sessions) - 1)]
    label = np.zeros(len(rows), dtype=bool)
    for e in events.itertuples():
        hit = (rows["entity_id"].to_numpy() == e.issuer_id) & \
            (rows["as_of_date"].to_numpy() < np.datetime64(e.event_date)) & \
            (end >= np.datetime64(e.event_date))
        label |= hit
    return pd.Series(label, index=rows.index)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2012-01-02")
    ap.add_argument("--end", default="2019-12-31")
    ap.add_argument("--names", type=int, default=80, help="US_EQ names (EU_EQ: 2/3 of it)")
    ap.add_argument("--every", type=int, default=5, help="evaluate every n-th session")
    ap.add_argument("--train-years", type=int, default=3, help="history before the first cut")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-regimes", action="store_true", help="skip the regime path")
    args = ap.parse_args(argv)

    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.fragility import FragilityTrainingError, fit_fragility_model
    from prometheus_dagster.engines.fragility.model import training_frame
    from prometheus_dagster.engines.synthetic_market.config import SyntheticMarketConfig
    from prometheus_dagster.engines.synthetic_market.generator import SyntheticMarket
    from prometheus_dagster.resources.mlflow_tracking import MlflowTracking

    t0 = time.perf_counter()
    configs = {k: load_engine_config(k) for k in ("features", "profiles", "stability",
                                                   "scenarios", "fragility", "regime")}
    frag = configs["fragility"].config
    gen = SyntheticMarket(SyntheticMarketConfig(
        seed=args.seed, start_date=args.start, end_date=args.end,
        markets={"US_EQ": {"n_instruments": args.names},
                 "EU_EQ": {"n_instruments": max(10, args.names * 2 // 3)}}))
    regimes = {m: None for m in MARKETS}
    if not args.no_regimes:
        regimes = market_regimes(gen, args, configs["regime"].config)
    comps, outcomes, raws, sessions = [], {h: [] for h in frag.horizons}, \
        {h: [] for h in frag.horizons}, {}
    for m in MARKETS:
        c, o, raw, sessions[m] = market_chain(gen, m, args.start, args.end, args.every, 1,
                                              configs, regimes[m])
        comps.append(c)
        for h in frag.horizons:
            outcomes[h].append(o[h])
            raws[h].append(raw[h])
        print(f"{m}: {len(c)} component rows ({time.perf_counter() - t0:.0f}s)", flush=True)
    comp = pd.concat(comps, ignore_index=True)
    outcomes = {h: pd.concat(v, ignore_index=True) for h, v in outcomes.items()}
    raws = {h: pd.concat(v, ignore_index=True) for h, v in raws.items()}
    first_cut = pd.Timestamp(int(pd.Timestamp(args.start).year) + args.train_years, 1, 1)
    cuts = pd.date_range(first_cut, args.end, freq="YS")
    scored, skipped = [], []
    for i, cut in enumerate(cuts):
        until = cuts[i + 1] if i + 1 < len(cuts) else pd.Timestamp(args.end) + pd.Timedelta(1, "D")
        try:
            model = fit_fragility_model(comp, outcomes, cut - pd.Timedelta(days=1), frag)
        except FragilityTrainingError as exc:
            print(f"model {cut.date()}: not trained ({exc}); its year is not scored")
            skipped.append(str(cut.date()))
            continue
        year = comp[(comp["as_of_date"] >= cut) & (comp["as_of_date"] < until)
                    & (comp["entity_type"] == "ISSUER")]
        pred = model.predict(year)
        scored.append(year.assign(**{f"p{h}": pred[h][0] for h in frag.horizons},
                                  **{f"alpha{h}": pred[h][1] for h in frag.horizons}))
        print(f"model {cut.date()}: " + ", ".join(
            f"h{h} {m_.rows} rows / {m_.positives} tail" for h, m_ in model.horizons.items()),
            flush=True)
    held = pd.concat(scored, ignore_index=True)
    truth = gen.truth_distress_events()
    results, curves = {}, {}
    for h in frag.horizons:
        lab = training_frame(held, {h: raws[h]}, pd.Timestamp(args.end))[h]
        lab["truth"] = False
        for m in MARKETS:
            mine = lab["market_id"] == m
            lab.loc[mine, "truth"] = truth_labels(lab[mine], truth[truth["market_id"] == m],
                                                  sessions[m], h,
                                                  frag.tail_outcome.drawdown)
        target = lab.merge(outcomes[h][["instrument_id", "as_of_date", "tail_event"]]
                           .rename(columns={"tail_event": "target"}),
                           on=["instrument_id", "as_of_date"], how="left")["target"]
        res = {"rows": int(len(lab)), "truth_positives": int(lab["truth"].sum()),
               "price_positives": int(lab["tail_event"].sum())}
        for name, y in (("truth", lab["truth"]), ("price", lab["tail_event"]),
                        ("model_target", target.fillna(False).astype(bool))):
            res[f"{name}.auc_soft_target_score"] = _auc(y, lab["soft_target_score"])
            res[f"{name}.auc_fragility_alpha"] = _auc(y, -lab[f"alpha{h}"])
            for c in ("weak_profile", "instability", "high_fragility", "complacent_pricing"):
                res[f"{name}.auc_{c}"] = _auc(y, lab[c].fillna(0))
        for cls, g in lab.groupby("soft_target_class"):
            res[f"truth_rate_{cls}"] = float(g["truth"].mean())
            res[f"rows_{cls}"] = int(len(g))
        results[f"h{h}"] = res
        curves[h] = lab.assign(y=lab["truth"].astype(int))
        print(f"h{h}: held-out AUC vs truth: SoftTargetScore "
              f"{res['truth.auc_soft_target_score']:.3f}, FragilityAlpha "
              f"{res['truth.auc_fragility_alpha']:.3f} ({res['truth_positives']} of "
              f"{res['rows']} issuer-days); vs any 40% price drawdown (market crashes "
              f"included): {res['price.auc_soft_target_score']:.3f} / "
              f"{res['price.auc_fragility_alpha']:.3f} ({res['price_positives']})", flush=True)
    summary = {"start": args.start, "end": args.end, "names": args.names, "every": args.every,
               "seed": args.seed, "first_cut": str(first_cut.date()),
               "years_without_model": skipped,
               "config_ids": {k: v.config_id for k, v in configs.items()},
               "seconds_total": time.perf_counter() - t0, "results": results}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fragility.json").write_text(json.dumps(summary, indent=2))
    tracking = MlflowTracking()
    with tracking.start_run("fragility-benchmark", run_name="fragility-vs-truth",
                            tags={"config_id": configs["fragility"].config_id}) as run:
        run.log_params({k: v for k, v in summary.items() if k not in ("results", "config_ids")})
        for hk, res in results.items():
            run.log_metrics({f"{hk}.{k}": float(v) for k, v in res.items()})
        run.log_figure(roc_figure(curves), "roc_held_out.png")
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "fragility_benchmark.json"
            p.write_text(json.dumps(summary, indent=2))
            run.log_artifact(p)
        print(f"MLflow run {run.run_id} ({run.url})")
    print(f"done in {summary['seconds_total']:.0f}s -> {out / 'fragility.json'}")


def _auc(y: pd.Series, score: pd.Series) -> float:
    from sklearn.metrics import roc_auc_score

    y = y.astype(int)
    return float(roc_auc_score(y, score)) if y.nunique() == 2 else float("nan")


def market_regimes(gen, args, cfg) -> dict[str, pd.Series]:
    """The regime path of each market as the regime assets make it (quarterly refits)."""
    from benchmarks.regime import market_internals, regime_path
    from prometheus_dagster.engines.regime import RegionInputs

    macro = gen.macro(args.start, args.end)
    first_cut = pd.Timestamp(int(pd.Timestamp(args.start).year) + 1, 1, 1)
    out = {}
    for m in MARKETS:
        inputs = RegionInputs(m, market_internals(gen, m, args.start, args.end), macro,
                              cfg.regions[m].macro)
        path, _ = regime_path(m, inputs, cfg, first_cut)
        out[m] = path.set_index(pd.to_datetime(path["as_of_date"]))["regime_label"]
    return out


def roc_figure(curves: dict[int, pd.DataFrame]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 5))
    for ax, (h, lab) in zip(np.atleast_1d(axes), curves.items(), strict=True):
        for col, sign, name in (("soft_target_score", 1, "SoftTargetScore"),
                                (f"alpha{h}", -1, "FragilityAlpha"),
                                ("instability", 1, "Instability"),
                                ("weak_profile", 1, "WeakProfile")):
            fpr, tpr, _ = roc_curve(lab["y"], sign * lab[col].fillna(0))
            ax.plot(fpr, tpr, label=name)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set(title=f"tail within {h} sessions (held out)", xlabel="false positive rate",
               ylabel="true positive rate")
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
