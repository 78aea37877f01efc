"""Fragility over a partition range: one pass over the range against one date at a time,
side by side on generated scenario paths (the compute of the steps; reads excluded).

    .venv/bin/python -m benchmarks.fragility_range [--names 120] [--sessions 63]

Nine scenario sets a date as configured (six stochastic sets of 50 paths, three named sets of
one path); issuers, 11 sectors and the market as entities. Prints seconds per step and checks
that both give the same rows.
"""

import argparse
import time

import numpy as np
import pandas as pd

from prometheus_dagster.engines.fragility import (
    FragilityConfig,
    fragility_measures,
    soft_target_classes,
)
from prometheus_dagster.engines.fragility.measures import fragility_measures_range
from prometheus_dagster.steps.fragility import PATHS_CHUNK_DATES, entity_members

SETS = (("HIST", "HISTORICAL", 50), ("BOOT", "BOOTSTRAP", 50), ("FACT", "FACTOR_BOOTSTRAP", 50),
        ("CRASH", "SHOCK_OVERLAY", 50), ("CREDIT", "SHOCK_OVERLAY", 50),
        ("FRAG", "FRAGILITY_ADVERSARIAL", 50), ("EQ", "NAMED", 1), ("SEC", "NAMED", 1),
        ("CE", "NAMED", 1))


def generated(names: int, sessions: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    dates = list(pd.bdate_range("2023-01-02", periods=sessions))
    ids = [f"US_EQ:I{i:04d}" for i in range(names)]
    instruments = pd.DataFrame({"instrument_id": [*ids, "US_EQ:IDX"],
                                "issuer_id": [f"ISS{i:04d}" for i in range(names)] + [None],
                                "asset_class": ["EQUITY"] * names + ["INDEX"]})
    issuers = pd.DataFrame({"issuer_id": [f"ISS{i:04d}" for i in range(names)],
                            "sector": [f"S{i % 11}" for i in range(names)]})
    frames = []
    for d in dates:
        for name, family, n in SETS:
            frames.append(pd.DataFrame({
                "as_of_date": d, "set_id": f"US_EQ:{d.date()}:{name}", "name": name,
                "family": family, "path_id": np.repeat(np.arange(n), names),
                "instrument_id": np.tile(ids, n),
                "cumulative_return": rng.normal(-0.01, 0.12, n * names)}))
    entities = ([("ISSUER", f"ISS{i:04d}") for i in range(names)]
                + [("SECTOR", f"US_EQ:S{i}") for i in range(11)] + [("MARKET", "US_EQ")])
    stability = pd.DataFrame([{"market_id": "US_EQ", "entity_type": t, "entity_id": e,
                               "as_of_date": d} for d in dates for t, e in entities])
    stability["stability_score"] = rng.random(len(stability))
    stability["fundamental"] = rng.random(len(stability))
    return dates, instruments, issuers, pd.concat(frames, ignore_index=True), stability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=120)
    parser.add_argument("--sessions", type=int, default=63)
    args = parser.parse_args()
    cfg = FragilityConfig()
    dates, instruments, issuers, paths, stability = generated(args.names, args.sessions)
    paths_on = {d: g.drop(columns="as_of_date").reset_index(drop=True)
                for d, g in paths.groupby("as_of_date")}
    stability_on = dict(list(stability.groupby("as_of_date")))

    t = time.perf_counter()
    by_date = pd.concat([fragility_measures("US_EQ", d, paths_on[d], entity_members(
        stability_on[d], instruments, issuers), cfg, "bench") for d in dates],
        ignore_index=True)
    one_by_one = time.perf_counter() - t
    t = time.perf_counter()
    members = entity_members(stability, instruments, issuers)
    entities_on = {d: list(zip(g["entity_type"], g["entity_id"], strict=True))
                   for d, g in stability_on.items()}
    chunks = [fragility_measures_range(
        "US_EQ", paths[paths["as_of_date"].isin(dates[i:i + PATHS_CHUNK_DATES])], entities_on,
        members, cfg, "bench") for i in range(0, len(dates), PATHS_CHUNK_DATES)]
    in_range = time.perf_counter() - t
    measures = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(measures, by_date, check_exact=True)
    print(f"fragility_measures, {args.names} names x {len(dates)} sessions "
          f"({len(paths):,} path rows): one date at a time {one_by_one:.2f} s, "
          f"range {in_range:.2f} s ({one_by_one / in_range:.1f}x)")

    t = time.perf_counter()
    by_date = pd.concat([soft_target_classes(stability_on[d], measures[
        measures["as_of_date"] == d], cfg, "bench") for d in dates], ignore_index=True)
    one_by_one = time.perf_counter() - t
    t = time.perf_counter()
    classes = soft_target_classes(stability, measures, cfg, "bench")
    in_range = time.perf_counter() - t
    pd.testing.assert_frame_equal(classes, by_date, check_exact=True)
    print(f"soft_target_classes: one date at a time {one_by_one:.2f} s, range {in_range:.2f} s "
          f"({one_by_one / in_range:.1f}x)")


if __name__ == "__main__":
    main()
