"""Fragility over a range of dates in one pass equals each date computed on its own: the
scenario-loss measures (bit for bit), soft-target classes, fragility classes and the alpha
rows."""

import json

import numpy as np
import pandas as pd

from prometheus_dagster.engines.fragility import (
    FragilityConfig,
    fit_fragility_model,
    fragility_alpha_rows,
    fragility_class,
    fragility_measures,
    soft_target_class,
    soft_target_classes,
)
from prometheus_dagster.engines.fragility.classes import fragility_classes
from prometheus_dagster.engines.fragility.measures import _rounded, fragility_measures_range
from prometheus_dagster.steps.fragility import entity_members
from tests.unit.test_fragility import small_config, synthetic_history

CFG = FragilityConfig()
DATES = list(pd.bdate_range("2023-03-01", periods=5))
SETS = (("boot", "BOOTSTRAP", 40), ("hist", "HISTORICAL", 13), ("crash", "NAMED", 1))


def market(n: int = 24):
    """Instruments of ``n`` issuers in three sectors (one of 10 names, so its returns are
    summed over more than 8 members) and the index."""
    ids = [f"M:I{k:02d}" for k in range(n)]
    sectors = ["Tech"] * 10 + ["Energy"] * 7 + ["Banks"] * (n - 17)
    instruments = pd.DataFrame({"instrument_id": [*ids, "M:IDX"],
                                "issuer_id": [f"iss{k:02d}" for k in range(n)] + [None],
                                "asset_class": ["EQUITY"] * n + ["INDEX"], "market_id": "M"})
    issuers = pd.DataFrame({"issuer_id": [f"iss{k:02d}" for k in range(n)], "sector": sectors})
    entities = ([("ISSUER", f"iss{k:02d}") for k in range(n)]
                + [("SECTOR", f"M:{s}") for s in sorted(set(sectors))] + [("MARKET", "M")])
    return ids, instruments, issuers, entities


def range_inputs(seed: int = 5):
    """Paths and stability entities of DATES with the gaps real data has: scattered missing
    returns, a name without paths after the second date, a date without one issuer's
    stability vector and a date without paths."""
    rng = np.random.default_rng(seed)
    ids, instruments, issuers, entities = market()
    frames = []
    for d in DATES[:-1]:
        for name, family, n in SETS:
            values = rng.normal(-0.02, 0.15, (n, len(ids)))
            frames.append(pd.DataFrame({
                "as_of_date": d, "set_id": f"M:{d.date()}:{name}", "name": name,
                "family": family, "path_id": np.repeat(np.arange(n), len(ids)),
                "instrument_id": np.tile(ids, n), "cumulative_return": values.ravel()}))
    paths = pd.concat(frames, ignore_index=True)
    paths.loc[rng.random(len(paths)) < 0.05, "cumulative_return"] = np.nan
    paths = paths[~((paths["instrument_id"] == ids[3]) & (paths["as_of_date"] > DATES[1]))]
    stability = pd.DataFrame([{"market_id": "M", "entity_type": t, "entity_id": e,
                               "as_of_date": d} for d in DATES for t, e in entities
                              if not (d == DATES[2] and e == "iss05")])
    return paths.reset_index(drop=True), stability, instruments, issuers


def test_measures_of_a_range_equal_each_date_bit_for_bit():
    paths, stability, instruments, issuers = range_inputs()
    per_date = []
    for d in DATES:
        day = paths[paths["as_of_date"] == d].drop(columns="as_of_date").reset_index(drop=True)
        st = stability[stability["as_of_date"] == d]
        if len(day):
            per_date.append(fragility_measures("M", d, day,
                                               entity_members(st, instruments, issuers),
                                               CFG, "cfg"))
    expected = pd.concat(per_date, ignore_index=True)
    entities_on = {pd.Timestamp(d): list(zip(g["entity_type"], g["entity_id"], strict=True))
                   for d, g in stability.groupby("as_of_date")}
    got = fragility_measures_range("M", paths, entities_on,
                                   entity_members(stability, instruments, issuers), CFG, "cfg")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for c in ("scenario_losses", "scenario_set_ids"):
        assert [json.dumps(v) for v in got[c]] == [json.dumps(v) for v in expected[c]]
    assert set(got["as_of_date"]) == set(DATES[:-1])  # the date without paths has no rows
    day = got[got["as_of_date"] == DATES[2]]
    assert "iss05" not in set(day.loc[day["entity_type"] == "ISSUER", "entity_id"])


def test_rounding_equals_pythons_round():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, 20_000), np.round(rng.uniform(-1, 1, 5_000), 6)
                        + 5e-7, [np.nan, np.inf, -np.inf, 0.0, -0.0, 1234.5678915, 2.5e-7]])
    expected = [round(float(v), 6) if np.isfinite(v) else None for v in x]
    assert _rounded(x) == expected


def classified_inputs(n: int = 400, seed: int = 2):
    rng = np.random.default_rng(seed)
    stability = pd.DataFrame({
        "market_id": "M", "entity_type": rng.choice(["ISSUER", "SECTOR"], n),
        "entity_id": [f"e{k % 80}" for k in range(n)],
        "as_of_date": [DATES[k // 80] for k in range(n)],
        "stability_score": rng.uniform(0.2, 0.8, n), "fundamental": rng.uniform(0, 0.6, n)})
    stability = stability.drop_duplicates(["entity_type", "entity_id", "as_of_date"])
    stability.loc[stability.sample(frac=0.05, random_state=1).index, "stability_score"] = np.nan
    measures = stability[["entity_type", "entity_id", "as_of_date"]].assign(
        high_fragility=rng.uniform(0.5, 1.0, len(stability))).sample(frac=0.9, random_state=3)
    return stability, measures


def test_soft_target_classes_of_a_range_equal_each_date_and_the_rule():
    stability, measures = classified_inputs()
    got = soft_target_classes(stability, measures, CFG, "cfg")
    assert {"SOFT_TARGET", "WATCHLIST", "NONE"} <= set(got["soft_target_class"])
    expected = pd.concat([soft_target_classes(stability[stability["as_of_date"] == d],
                                              measures[measures["as_of_date"] == d], CFG, "cfg")
                          for d in DATES], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for r in got.itertuples():
        cls, why = soft_target_class(r.stability_score, r.high_fragility, r.profile_weakness,
                                     CFG)
        assert r.soft_target_class == cls
        assert r.reasons == why + ([] if np.isfinite(r.high_fragility)
                                   else ["no scenario losses"])


def test_fragility_classes_equal_the_rule_row_by_row():
    rng = np.random.default_rng(4)
    score = rng.uniform(0, 1, 2_000)
    score[::50] = np.nan
    soft = rng.choice(["NONE", "WATCHLIST", "SOFT_TARGET"], 2_000, p=[0.8, 0.15, 0.05])
    p = rng.uniform(0, 0.7, 2_000)
    p[::3] = np.nan
    got = fragility_classes(score, soft, p, CFG)
    expected = [fragility_class(s, c, None if np.isnan(q) else q, CFG)
                for s, c, q in zip(score, soft, p, strict=True)]
    assert got.tolist() == expected
    assert set(expected) == {"NONE", "WATCHLIST", "SHORT_CANDIDATE", "CRISIS"}


def test_alpha_rows_of_a_range_equal_each_date():
    comp, outcomes = synthetic_history(n_names=20, n_days=90)
    cfg = small_config()
    cut = pd.Timestamp("2020-03-31")
    model = fit_fragility_model(comp, outcomes, cut, cfg)
    later = comp[comp["as_of_date"] > cut].reset_index(drop=True)
    later.loc[later.index % 7 == 0, "entity_type"] = "SECTOR"
    later.loc[later.index % 11 == 0, "complacent_pricing"] = np.nan
    dates = sorted(later["as_of_date"].unique())
    models = {pd.Timestamp(d): ("M.fragility-lgbm-v1/1", model) for d in dates[2:]}
    got = fragility_alpha_rows(later, models, cfg, "cfg")
    expected = pd.concat([fragility_alpha_rows(later[later["as_of_date"] == d], models, cfg,
                                               "cfg") for d in dates], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for c in ("position_templates", "features"):
        assert [json.dumps(v) for v in got[c]] == [json.dumps(v) for v in expected[c]]
    assert got["tail_probability"].notna().any() and got["tail_probability"].isna().any()
