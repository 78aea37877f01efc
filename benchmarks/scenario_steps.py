"""The scenario steps before and after the range-native rewrite, side by side on one warehouse.

    .venv/bin/python -m benchmarks.scenario_steps [--names 120] [--sessions 63]
                                                  [--before /work/main]

A DuckDB warehouse of one market with ``--names`` instruments (returns over the look-back and
the dates, two factors, exposures and stability vectors on the dates, regime labels, issuers
with sectors) is built once; then, each in a fresh process on the same warehouse, the sets
step and the paths step of the shipped config over ``--sessions`` dates, as a single-run range:
with the code at ``--before`` (the asset bodies of ``assets/scenarios.py`` there) and with
this checkout's ``steps/scenarios.py``. Prints seconds per step and the ratio, checks that
both produce the same rows, and writes benchmarks/results/scenario_steps.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import REPO

M = "US_EQ"
SECTORS = ["Financials", "Tech", "Energy", "Health", "Industrials"]


def build_warehouse(url: str, names: int, n_dates: int) -> list[str]:
    """Write the market's inputs; returns the dates (ISO) the steps compute."""
    import prometheus_dagster.steps.scenarios  # noqa: F401  (declares the tables it reads)
    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.resources.warehouse import Warehouse

    wh = Warehouse.from_url(url)
    end = pd.Timestamp("2023-06-30")
    sessions = trading_calendar(M).sessions(end - pd.Timedelta(days=int((600 + n_dates) * 1.5)),
                                            end)[-(600 + n_dates):]
    ids = [f"EQ{i:03d}" for i in range(names)]
    rng = np.random.default_rng(3)
    market, size = rng.normal(0.0003, 0.012, len(sessions)), rng.normal(0, 0.006, len(sessions))
    beta = np.linspace(0.5, 1.5, names)
    values = market[:, None] * beta + size[:, None] * 0.5 + rng.normal(0, 0.01, (len(sessions),
                                                                                 names))
    ret = pd.DataFrame(values, index=sessions, columns=ids).stack()
    ret = ret.rename("ret_1d").rename_axis(["date", "instrument_id"]).reset_index()
    wh.write_partitions("returns_daily", ret.assign(market_id=M, config_id="f"), market_id=M,
                        dates=sessions)
    fac = pd.concat([pd.DataFrame({"date": sessions, "factor_id": f, "value": v})
                     for f, v in (("MARKET", market), ("SIZE", size))])
    wh.write_partitions("factors_daily", fac.assign(market_id=M, config_id="f", n_long=names,
                                                    n_short=0), market_id=M, dates=sessions)
    days = list(sessions[-n_dates:])
    ex = pd.DataFrame([(d, i, f, b if f == "MARKET" else 0.5) for d in days
                       for i, b in zip(ids, beta, strict=True) for f in ("MARKET", "SIZE")],
                      columns=["date", "instrument_id", "factor_id", "exposure"])
    wh.write_partitions("instrument_factors_daily", ex.assign(market_id=M, config_id="f"),
                        market_id=M, dates=days)
    stab = pd.DataFrame([(d, "ISSUER", f"IS{k:03d}", *rng.uniform(0, 1, 2)) for d in days
                         for k in range(names)],
                        columns=["as_of_date", "entity_type", "entity_id", "stability_score",
                                 "fundamental"])
    wh.write_partitions("stability_vectors", stab.assign(market_id=M, config_id="f"),
                        market_id=M, dates=days)
    labels = np.where(np.arange(len(sessions)) % 11 < 3, "RISK_OFF_PANIC", "RISK_ON_LOW_VOL")
    wh.write_partitions("regimes", pd.DataFrame({
        "as_of_date": sessions, "regime_label": labels, "confidence": 0.9, "alert_level": "GREEN",
        "warning_count": 0, "model_id": "m", "market_id": M, "config_id": "r"}),
        market_id=M, dates=sessions)
    wh.replace_all("issuers", pd.DataFrame({
        "issuer_id": [f"IS{k:03d}" for k in range(names)], "issuer_type": "COMPANY",
        "name": [f"Issuer {k}" for k in range(names)], "market_id": M,
        "sector": [SECTORS[k % len(SECTORS)] for k in range(names)]}), where={"market_id": M})
    wh.replace_all("instruments", pd.DataFrame({
        "instrument_id": ids, "issuer_id": [f"IS{k:03d}" for k in range(names)], "market_id": M,
        "asset_class": "EQUITY", "symbol": ids, "currency": "USD", "multiplier": 1.0,
        "status": "ACTIVE"}), where={"market_id": M})
    return [f"{d:%Y-%m-%d}" for d in days]


# run in a fresh process with PYTHONPATH at the code under test; prints one JSON line
WORKER = r"""
import json, sys, time
import pandas as pd
import prometheus_dagster.engines.features, prometheus_dagster.engines.stability
import prometheus_dagster.engines.regime, prometheus_dagster.engines.scenarios
from prometheus_dagster.core.config import load_engine_config
from prometheus_dagster.resources.warehouse import Warehouse
url, dates, out, after = sys.argv[1], [pd.Timestamp(d) for d in sys.argv[2].split(",")], \
    sys.argv[3], sys.argv[4] == "after"
wh = Warehouse.from_url(url)
loaded = load_engine_config("scenarios")
cfg, cid = loaded.config, "bench"
M = "US_EQ"
t0 = time.perf_counter()
if after:
    from prometheus_dagster.steps.scenarios import compute_scenario_sets, compute_scenario_paths
    sets = compute_scenario_sets(wh, M, dates, cfg, cid).frame
else:
    from prometheus_dagster.assets.scenarios import ScenarioData
    from prometheus_dagster.core.schemas import validate_frame
    from prometheus_dagster.engines.scenarios import (ScenarioDay, generate_scenario_set,
        scenario_set_frame, regenerate_paths, scenario_path_frame)
    data = ScenarioData(wh, M, dates, cfg)
    frames = []
    for d in dates:
        day = ScenarioDay(data.for_date(d), d)
        frames.append(scenario_set_frame([generate_scenario_set(M, d, s, day, cfg, cid)
                                          for s in cfg.sets], validate=False))
    sets = validate_frame("scenario_sets", pd.concat(frames, ignore_index=True))
t_sets = time.perf_counter() - t0
wh.write_partitions("scenario_sets", sets, market_id=M, dates=dates)
t0 = time.perf_counter()
if after:
    paths, _ = compute_scenario_paths(wh, M, dates, cfg)
else:
    from prometheus_dagster.assets.scenarios import _check_reproduced
    stored = wh.read_partitions("scenario_sets", market_id=M, dates=dates)
    data = ScenarioData(wh, M, dates, cfg)
    frames = []
    for d, day in stored.groupby("as_of_date", sort=True):
        inputs = ScenarioDay(data.for_date(pd.Timestamp(d)), pd.Timestamp(d))
        gens = [regenerate_paths(row, inputs, cfg) for _, row in day.iterrows()]
        for row, gen in zip(day.to_dict(orient="records"), gens, strict=True):
            _check_reproduced(row, gen.set_row)
        frames.append(scenario_path_frame(gens, validate=False))
    paths = pd.concat(frames, ignore_index=True)
t_paths = time.perf_counter() - t0
sets.to_pickle(out + ".sets.pkl"); paths.to_pickle(out + ".paths.pkl")
print(json.dumps({"sets_s": t_sets, "paths_s": t_paths, "sets": len(sets), "paths": len(paths)}))
"""


def run_worker(root: str, url: str, dates: list[str], out: str, after: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": root}
    proc = subprocess.run([sys.executable, "-c", WORKER, url, ",".join(dates), out,
                           "after" if after else "before"], env=env, capture_output=True,
                          text=True, check=False, cwd=root)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=120)
    parser.add_argument("--sessions", type=int, default=63)
    parser.add_argument("--before", default="/work/main")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb:///{Path(tmp) / 'wh.duckdb'}"
        dates = build_warehouse(url, args.names, args.sessions)
        results = {}
        for label, root, after in (("before", args.before, False), ("after", str(REPO), True)):
            results[label] = run_worker(root, url, dates, str(Path(tmp) / label), after)
            print(label, results[label], flush=True)
        for kind in ("sets", "paths"):
            a = pd.read_pickle(Path(tmp) / f"before.{kind}.pkl")
            b = pd.read_pickle(Path(tmp) / f"after.{kind}.pkl")
            if kind == "sets":  # the exclusion lists may differ: see docs/engines/scenarios.md
                a, b = (f.drop(columns=["excluded_instruments"]) for f in (a, b))
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-15)
    summary = {"names": args.names, "sessions": args.sessions, **{
        f"{k}_{label}": v for label, r in results.items() for k, v in r.items()},
        "sets_ratio": results["before"]["sets_s"] / results["after"]["sets_s"],
        "paths_ratio": results["before"]["paths_s"] / results["after"]["paths_s"]}
    print(json.dumps(summary, indent=1))
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "scenario_steps.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s")
