"""Fragility engine: scenario-loss measures, soft-target and fragility classes, components
and SoftTargetScore, tail outcomes, the point-in-time tail model and the alpha rows."""

import warnings

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.fragility import (
    COMPONENTS,
    FragilityConfig,
    FragilityModel,
    FragilityTrainingError,
    entity_path_returns,
    expected_shortfall,
    fit_fragility_model,
    fragility_alpha_rows,
    fragility_class,
    fragility_components,
    fragility_measures,
    high_fragility,
    index_levels,
    position_templates,
    soft_target_class,
    soft_target_classes,
    soft_target_score,
    tail_outcomes,
    total_return_levels,
)
from prometheus_dagster.engines.fragility.model import training_frame

CFG = FragilityConfig()
D = pd.Timestamp("2023-03-01")


def paths_frame(returns: dict[str, list[float]], family: str = "BOOTSTRAP",
                name: str = "boot") -> pd.DataFrame:
    rows = [{"set_id": f"S:{name}", "name": name, "family": family, "path_id": p,
             "instrument_id": i, "cumulative_return": r}
            for i, rs in returns.items() for p, r in enumerate(rs)]
    return pd.DataFrame(rows)


# --- measures ---------------------------------------------------------------------------------
def test_expected_shortfall_hand_checked():
    losses = np.arange(1, 101, dtype=float) / 100  # 0.01 .. 1.00
    assert expected_shortfall(losses, 0.95) == pytest.approx(np.mean([0.96, 0.97, 0.98, 0.99,
                                                                      1.0]))
    assert expected_shortfall(np.array([0.2, 0.1]), 0.95) == 0.2  # fewer paths: the worst
    assert np.isnan(expected_shortfall(np.array([]), 0.95))


def test_entity_path_returns_equal_weighted_members():
    paths = paths_frame({"A": [0.1, -0.2], "B": [0.3, -0.4]})
    out = entity_path_returns(paths, {("SECTOR", "M:Tech"): ["A", "B", "Z"],
                                      ("ISSUER", "a"): ["A"]})
    assert out[("SECTOR", "M:Tech")]["ret"].tolist() == pytest.approx([0.2, -0.3])
    assert out[("ISSUER", "a")]["ret"].tolist() == pytest.approx([0.1, -0.2])


def test_fragility_measures_losses_per_set_and_pooled():
    rng = np.random.default_rng(0)
    boot = paths_frame({"A": list(rng.normal(0, 0.05, 200)),
                        "B": list(rng.normal(0, 0.25, 200))})
    named = paths_frame({"A": [-0.5], "B": [-0.1]}, family="NAMED", name="crash")
    members = {("ISSUER", "a"): ["A"], ("ISSUER", "b"): ["B"]}
    out = fragility_measures("M", D, pd.concat([boot, named]), members, CFG, "cfg")
    validate_frame("fragility_measures", out)
    a, b = (out.set_index("entity_id").loc[k] for k in ("a", "b"))
    # NAMED sets are not pooled into ES but count for the worst case
    assert a["worst_case_loss"] == pytest.approx(0.5)
    assert a["expected_shortfall"] < 0.2 < b["expected_shortfall"]
    assert a["scenario_losses"]["crash"]["es"] == pytest.approx(0.5)
    assert a["n_paths"] == 201
    assert b["high_fragility"] > a["high_fragility"]
    assert out["high_fragility"].between(0, 1).all()


def _reference_measures(paths: pd.DataFrame, members: dict) -> dict:
    """Per entity, the loss statistics computed one entity and set at a time with the 1-D
    functions (what the vectorised ``fragility_measures`` must reproduce to the bit)."""
    out = {}
    es_families = set(CFG.measures.es_families)
    for entity, frame in entity_path_returns(paths, members).items():
        loss = -frame["ret"].to_numpy()
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_set = {str(n): (int(len(g)), np.nanmean(-g["ret"].to_numpy()),
                                expected_shortfall(-g["ret"].to_numpy(), CFG.measures.es_level),
                                np.nanmax(-g["ret"].to_numpy()))
                       for n, g in frame.groupby("name", sort=True)}
            pooled = loss[frame["family"].isin(es_families).to_numpy()]
            out[entity] = (per_set, expected_shortfall(pooled, CFG.measures.es_level),
                           np.nanmax(loss), np.nanmean(pooled), int(np.isfinite(loss).sum()))
    return out


def test_fragility_measures_equal_per_entity_reference_with_gaps():
    rng = np.random.default_rng(3)
    ids = [f"I{i}" for i in range(9)]
    frames = [paths_frame({i: list(rng.normal(0, 0.1, n)) for i in ids}, family=f, name=nm)
              for nm, f, n in (("boot", "BOOTSTRAP", 57), ("hist", "HISTORICAL", 13),
                               ("crash", "NAMED", 1))]
    paths = pd.concat(frames, ignore_index=True)
    gaps = rng.random(len(paths)) < 0.1  # scattered missing losses
    paths.loc[gaps, "cumulative_return"] = np.nan
    paths = paths[~((paths["instrument_id"] == "I8") & (paths["name"] == "hist"))]
    members = {("ISSUER", i.lower()): [i] for i in ids}
    members |= {("SECTOR", "M:S"): ids[:4], ("MARKET", "M"): [*ids, "GONE"],
                ("ISSUER", "none"): ["GONE"]}
    out = fragility_measures("M", D, paths, members, CFG, "cfg").set_index(
        ["entity_type", "entity_id"])
    reference = _reference_measures(paths, members)
    assert set(out.index) == set(reference)

    def same(a, b) -> bool:
        return (a is None and not np.isfinite(b)) or a == b

    for entity, (per_set, es, worst, mean, n_paths) in reference.items():
        row = out.loc[entity]
        assert (row["expected_shortfall"], row["worst_case_loss"], row["mean_loss"],
                row["n_paths"]) == (es, worst, mean, n_paths)
        assert list(row["scenario_losses"]) == list(per_set)
        for name, (count, m, e, w) in per_set.items():
            got = row["scenario_losses"][name]
            assert got["paths"] == count
            assert same(got["mean"], round(m, 6) if np.isfinite(m) else m)
            assert same(got["es"], round(e, 6) if np.isfinite(e) else e)
            assert same(got["worst"], round(w, 6) if np.isfinite(w) else w)
    assert out.loc[("MARKET", "M"), "members"] == 10


def test_high_fragility_monotone_in_es_within_type():
    es = np.linspace(0.0, 0.9, 12)
    m = pd.DataFrame({"entity_type": "ISSUER", "expected_shortfall": es})
    hf = high_fragility(m, CFG).to_numpy()
    assert (np.diff(hf) >= 0).all() and hf.min() >= 0 and hf.max() <= 1
    few = pd.DataFrame({"entity_type": ["MARKET"], "expected_shortfall": [0.25]})
    assert high_fragility(few, CFG).iloc[0] == pytest.approx(0.25 / CFG.measures.loss_scale)


# --- classes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stability, fragility, weakness, expected", [
    (0.2, 0.85, 0.8, "SOFT_TARGET"),
    (0.2, 0.85, 0.6, "WATCHLIST"),   # not weak enough for a soft target
    (0.45, 0.2, 0.9, "WATCHLIST"),  # stability below the watch line
    (0.6, 0.95, 0.1, "WATCHLIST"),  # fragility above the watch line
    (0.6, 0.85, 0.9, "NONE"),
    (np.nan, np.nan, np.nan, "NONE"),  # missing values never cross a line
])
def test_soft_target_class_rules(stability, fragility, weakness, expected):
    cls, reasons = soft_target_class(stability, fragility, weakness, CFG)
    assert cls == expected
    assert bool(reasons) == (expected != "NONE")


def test_soft_target_classes_rows_and_reasons():
    stab = pd.DataFrame({"market_id": "M", "entity_type": "ISSUER", "entity_id": ["a", "b"],
                         "as_of_date": D, "stability_score": [0.2, 0.8],
                         "fundamental": [0.1, 0.9]})
    meas = pd.DataFrame({"entity_type": "ISSUER", "entity_id": ["a"], "as_of_date": D,
                         "high_fragility": [0.9]})
    out = soft_target_classes(stab, meas, CFG, "cfg")
    validate_frame("soft_target_classes", out)
    assert out["soft_target_class"].tolist() == ["SOFT_TARGET", "NONE"]
    assert out["profile_weakness"].tolist() == pytest.approx([0.9, 0.1])
    assert "no scenario losses" in out["reasons"].iloc[1]


def test_fragility_class_rules():
    assert fragility_class(0.9, "NONE", None, CFG) == "CRISIS"
    assert fragility_class(0.3, "NONE", 0.7, CFG) == "CRISIS"
    assert fragility_class(0.3, "SOFT_TARGET", 0.1, CFG) == "SHORT_CANDIDATE"
    assert fragility_class(0.65, "NONE", None, CFG) == "SHORT_CANDIDATE"
    assert fragility_class(0.65, "NONE", 0.05, CFG) == "WATCHLIST"  # model disagrees
    assert fragility_class(0.1, "WATCHLIST", None, CFG) == "WATCHLIST"
    assert fragility_class(0.1, "NONE", 0.01, CFG) == "NONE"


def test_position_templates_scaled_and_capped():
    comps = {c: 0.8 for c in COMPONENTS}
    short = position_templates("ISSUER", "a", "EQ:A", "SHORT_CANDIDATE", 0.7, comps, CFG)
    assert [t["kind"] for t in short] == ["EQUITY_SHORT"]
    assert short[0]["notional_hint"] == pytest.approx(10_000_000 * 0.01 * 0.7)
    crisis = position_templates("ISSUER", "a", "EQ:A", "CRISIS", 5.0, comps, CFG)
    assert sum(t["notional_hint"] for t in crisis) == pytest.approx(10_000_000 * 0.02)
    assert {t["kind"] for t in crisis} == {"EQUITY_SHORT", "PUT_SPREAD"}
    assert position_templates("SECTOR", "M:Tech", None, "SHORT_CANDIDATE", 0.7, comps,
                              CFG)[0]["kind"] == "SECTOR_HEDGE"
    assert position_templates("ISSUER", "a", "EQ:A", "NONE", 0.1, comps, CFG) == []
    watch = position_templates("ISSUER", "a", "EQ:A", "WATCHLIST", 0.5, comps, CFG)
    assert watch[0]["notional_hint"] == 0.0 and watch[0]["direction"] == "FLAT"


# --- components -------------------------------------------------------------------------------
def test_soft_target_score_needs_several_components():
    one = pd.DataFrame([{**{c: 0.0 for c in COMPONENTS}, "instability": 1.0}])
    all_high = pd.DataFrame([{c: 0.9 for c in COMPONENTS}])
    assert soft_target_score(one, 3).iloc[0] == pytest.approx(1 / 3)
    assert soft_target_score(all_high, 3).iloc[0] == pytest.approx(0.9)
    missing = pd.DataFrame([{"weak_profile": 0.9, "instability": 0.9, "high_fragility": 0.9,
                             "complacent_pricing": np.nan}])
    assert soft_target_score(missing, 3).iloc[0] == pytest.approx(0.9)


def component_inputs(n: int = 8):
    ids = [f"i{k}" for k in range(n)]
    fundamental = np.linspace(0.1, 0.9, n)  # i0 weakest profile
    stab = pd.DataFrame({"market_id": "M", "entity_type": "ISSUER", "entity_id": ids,
                         "as_of_date": D, "stability_score": np.linspace(0.3, 0.9, n),
                         "fundamental": fundamental, "liquidity": 0.5, "volatility": 0.5,
                         "contagion": 0.5, "vol_ratio": 1.0, "market_stress_beta": 1.0})
    meas = pd.DataFrame({"entity_type": "ISSUER", "entity_id": ids, "as_of_date": D,
                         "high_fragility": np.linspace(0.9, 0.1, n),
                         "expected_shortfall": 0.2, "worst_case_loss": 0.4})
    market = pd.DataFrame({"entity_id": ids, "as_of_date": D,
                           "instrument_id": [f"EQ:{i}" for i in ids],
                           "vol_63d": np.linspace(0.2, 0.6, n), "drawdown": -0.1,
                           "ret_21d": 0.0, "ret_63d": 0.0})
    flags = pd.DataFrame({"entity_id": ids, "as_of_date": D, "leverage_score": 1 - fundamental,
                          "earnings_quality_score": 0.2, "liquidity_risk": 0.2})
    return stab, meas, market, flags


def test_components_in_unit_interval_and_complacent_pricing():
    stab, meas, market, flags = component_inputs()
    classes = soft_target_classes(stab, meas, CFG, "cfg")
    out = fragility_components(stab, meas, classes, market, flags, CFG)
    for c in (*COMPONENTS, "soft_target_score"):
        assert out[c].between(0, 1).all(), c
    assert out.loc[0, "weak_profile"] == pytest.approx(0.9)
    # the weakest profile has the lowest volatility rank: weakness not priced in
    assert out.loc[0, "complacent_pricing"] == out["complacent_pricing"].max()
    priced = market.copy()
    priced.loc[0, ["vol_63d", "drawdown", "ret_63d"]] = [1.5, -0.6, -0.5]
    again = fragility_components(stab, meas, classes, priced, flags, CFG)
    assert again.loc[0, "complacent_pricing"] < out.loc[0, "complacent_pricing"]
    assert out["soft_target_score"].iloc[0] > out["soft_target_score"].iloc[-1]


# --- outcomes ---------------------------------------------------------------------------------
def test_tail_outcomes_hand_checked():
    dates = pd.bdate_range("2023-01-02", periods=6)
    rets = pd.DataFrame({"instrument_id": "A", "date": dates,
                         "ret_1d": [0.0, 0.0, -0.5, 0.0, 0.0, 0.0]})
    rets = pd.concat([rets, pd.DataFrame({"instrument_id": "B", "date": dates[:3],
                                          "ret_1d": [0.0, 0.01, 0.01]})])
    levels = total_return_levels(rets)
    out = tail_outcomes(levels, pd.Series({"B": dates[3]}), 2, 0.4)
    a = out[out["instrument_id"] == "A"].set_index("as_of_date")
    assert a["tail_event"].tolist() == [True, True, False, False]
    assert a["forward_worst"].iloc[0] == pytest.approx(-0.5)
    assert len(a) == 4  # the last two sessions' horizons are not over
    b = out[out["instrument_id"] == "B"].set_index("as_of_date")
    assert b.loc[dates[2], "tail_event"]  # delisted within the next two sessions
    assert b.loc[dates[2], "forward_worst"] == -1.0
    assert not b.loc[dates[0], "tail_event"]


def test_tail_outcomes_relative_to_the_market():
    dates = pd.bdate_range("2023-01-02", periods=5)
    crash = [0.0, -0.5, 0.0, 0.0, 0.0]
    rets = pd.DataFrame({"instrument_id": "A", "date": dates, "ret_1d": crash})
    levels = total_return_levels(rets)
    index = index_levels(pd.Series(crash, index=dates), levels.index)
    absolute = tail_outcomes(levels, pd.Series(dtype="datetime64[ns]"), 2, 0.4)
    relative = tail_outcomes(levels, pd.Series(dtype="datetime64[ns]"), 2, 0.4, benchmark=index)
    assert absolute["tail_event"].iloc[0] and not relative["tail_event"].any()
    assert relative["forward_worst"].abs().max() < 1e-12  # moved with the market


# --- model ------------------------------------------------------------------------------------
def synthetic_history(n_names: int = 40, n_days: int = 160, seed: int = 1):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=n_days)
    rows, outs = [], []
    for k in range(n_names):
        weak = rng.uniform()
        for d in dates:
            w = np.clip(weak + rng.normal(0, 0.1), 0, 1)
            tail = rng.uniform() < 0.02 + 0.5 * w ** 4
            rows.append({"market_id": "M", "entity_type": "ISSUER", "entity_id": f"i{k}",
                         "instrument_id": f"EQ:i{k}", "as_of_date": d, "weak_profile": w,
                         "instability": np.clip(w + rng.normal(0, 0.2), 0, 1),
                         "high_fragility": rng.uniform(), "complacent_pricing": rng.uniform(),
                         "soft_target_class": "NONE"})
            outs.append({"instrument_id": f"EQ:i{k}", "as_of_date": d,
                         "forward_worst": -0.6 if tail else -0.05, "tail_event": tail})
    comp = pd.DataFrame(rows)
    comp["soft_target_score"] = soft_target_score(comp, 3)
    o = pd.DataFrame(outs)
    return comp, {21: o, 63: o}


def small_config(**refit) -> FragilityConfig:
    return FragilityConfig(model={"n_estimators": 30, "min_child_samples": 20},
                           refit={"min_training_rows": 100, "min_positive": 10, **refit})


def test_model_learns_ranks_and_is_deterministic(tmp_path):
    from sklearn.metrics import roc_auc_score

    comp, outcomes = synthetic_history()
    cfg = small_config()
    cut = pd.Timestamp("2020-05-29")
    model = fit_fragility_model(comp, outcomes, cut, cfg)
    again = fit_fragility_model(comp, outcomes, cut, cfg)
    assert model.horizons[21].booster == again.horizons[21].booster
    later = comp[comp["as_of_date"] > cut]
    p, alpha = model.predict(later)[63]
    truth = later.merge(outcomes[63], on=["instrument_id", "as_of_date"])["tail_event"]
    assert roc_auc_score(truth, p) > 0.75
    assert (alpha <= 0).all() and np.corrcoef(p, alpha)[0, 1] < -0.99
    # row-independent: scoring one row alone gives its batch value
    one = model.predict(later.iloc[[5]])[63][0][0]
    assert one == pytest.approx(p[5], abs=1e-12)
    loaded = FragilityModel.load(model.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(loaded.predict(later)[63][0], p)
    assert loaded.trained_through == "2020-05-29"


def test_training_uses_only_outcomes_known_before_the_cut():
    comp, outcomes = synthetic_history(n_names=5, n_days=40)
    cut = pd.Timestamp("2020-01-31")
    frames = training_frame(comp, outcomes, cut)
    assert frames[21]["as_of_date"].max() <= cut
    # outcome rows exist only where the horizon ended in the data: pass a truncated set
    known = {h: o[o["as_of_date"] <= cut - pd.Timedelta(days=10)] for h, o in outcomes.items()}
    assert training_frame(comp, known, cut)[21]["as_of_date"].max() <= cut - \
        pd.Timedelta(days=10)


def test_training_refuses_too_few_tail_outcomes():
    comp, outcomes = synthetic_history(n_names=5, n_days=30)
    calm = {h: o.assign(tail_event=False) for h, o in outcomes.items()}
    with pytest.raises(FragilityTrainingError, match="tail outcomes"):
        fit_fragility_model(comp, calm, pd.Timestamp("2020-12-31"), small_config())


def test_alpha_rows_with_and_without_a_model():
    comp, outcomes = synthetic_history(n_names=20, n_days=80)
    cfg = small_config()
    cut = pd.Timestamp("2020-03-31")
    model = fit_fragility_model(comp, outcomes, cut, cfg)
    later = comp[comp["as_of_date"] > cut].copy()
    dates = sorted(later["as_of_date"].unique())
    models = {pd.Timestamp(d): ("M.fragility-lgbm-v1/1", model) for d in dates[1:]}
    out = fragility_alpha_rows(later, models, cfg, "cfg")
    validate_frame("fragility_alpha", out)
    assert sorted(out["horizon_days"].unique()) == [21, 63]
    first = out[out["as_of_date"] == dates[0]]
    assert first["tail_probability"].isna().all() and first["model_id"].isna().all()
    rest = out[out["as_of_date"] > dates[0]]
    assert rest["tail_probability"].between(0, 1).all()
    assert (rest["model_id"] == "M.fragility-lgbm-v1/1").all()
    assert set(out["fragility_class"]) <= {"NONE", "WATCHLIST", "SHORT_CANDIDATE", "CRISIS"}
    shorts = out[out["fragility_class"].isin(["SHORT_CANDIDATE", "CRISIS"])]
    assert all(len(t) for t in shorts["position_templates"])


# --- config -----------------------------------------------------------------------------------
def test_default_config_loads_and_bad_values_are_named():
    loaded = load_engine_config("fragility")
    assert loaded.config.horizons == (21, 63)
    with pytest.raises(ConfigError, match="aligned"):
        validate_config({"engine": "fragility", "version": "x", "components": {"aligned": 9}})
    with pytest.raises(ConfigError, match="crisis_score"):
        validate_config({"engine": "fragility", "version": "x",
                         "classes": {"watch_score": 0.9}})
    with pytest.raises(ConfigError, match="horizons"):
        validate_config({"engine": "fragility", "version": "x", "horizons": [21, 21]})
