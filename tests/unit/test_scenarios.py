"""Scenario engine: reproducibility (same seed to the bit, stable ids across processes,
regeneration from the stored row), look-ahead invariance, calibration of bootstrap and factor
bootstrap paths against their base window (tolerances stated per test), correlation stress and
shock scaling, historical windows and the regime filter with its fallback, exact overlays and
named shocks, fragility targeting, bounds (property-based), errors, table rows and the default
config. All on a seeded two-factor panel of 600 sessions x 12 instruments."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError, DataSchemaError, LookAheadError
from prometheus_dagster.core.schemas import validate_frame, vector_to_array
from prometheus_dagster.engines.scenarios import (
    ScenarioDay,
    ScenarioError,
    ScenarioInputs,
    ScenariosConfig,
    ScenarioSetSpec,
    generate_scenario_set,
    generate_scenarios,
    path_statistics,
    regenerate_paths,
    scenario_frames,
    scenario_path_frame,
    scenario_set_frame,
    scenario_set_id,
)
from prometheus_dagster.engines.scenarios.paths import correlation_stress

MARKET = "US_EQ"
CID = "scenarios@test"
N_SESSIONS, N_INSTRUMENTS = 600, 12
IDS = [f"EQ{i:02d}" for i in range(N_INSTRUMENTS)]
SESSIONS = pd.bdate_range("2021-01-04", periods=N_SESSIONS)
D = SESSIONS[-1]
BETA_MARKET = np.linspace(0.6, 1.4, N_INSTRUMENTS)
BETA_SIZE = np.linspace(0.2, 1.0, N_INSTRUMENTS)
SECTORS = pd.Series(["Tech"] * 4 + ["Financials"] * 4 + ["Energy"] * 4, index=IDS)
WEAKNESS = pd.Series([0.1, 0.2, 0.1, 0.0, 0.9, 0.6, 0.2, 0.1, 0.3, 0.1, 0.0, 0.2], index=IDS)


def _panel() -> ScenarioInputs:
    rng = np.random.default_rng(7)
    market = rng.normal(0.0004, 0.011, N_SESSIONS)
    size = rng.normal(0.0001, 0.006, N_SESSIONS)
    idio = rng.normal(0.0, 0.012, (N_SESSIONS, N_INSTRUMENTS))
    values = market[:, None] * BETA_MARKET + size[:, None] * BETA_SIZE + idio
    returns = pd.DataFrame(values, index=SESSIONS, columns=IDS)
    returns.iloc[rng.choice(N_SESSIONS, 15, replace=False), 3] = np.nan  # scattered gaps
    returns.iloc[:300, 11] = np.nan                                       # listed late
    labels = pd.Series("RISK_ON_LOW_VOL", index=SESSIONS)
    labels.iloc[200:241] = "RISK_OFF_PANIC"
    labels.iloc[400:461] = "RISK_OFF_GRINDING"
    factors = pd.DataFrame({"MARKET": market, "SIZE": size}, index=SESSIONS)
    return ScenarioInputs(returns=returns, factors=factors, regime_labels=labels,
                          sectors=SECTORS, weakness=WEAKNESS)


INPUTS = _panel()
CONFIG = ScenariosConfig()
WIDE = ScenariosConfig(bounds={"min_step_return": -0.999, "max_step_return": 1e9})


def spec(**kw) -> ScenarioSetSpec:
    return ScenarioSetSpec.model_validate({"name": "S", "seed": 5, **kw})


def gen(s: ScenarioSetSpec, inputs: ScenarioInputs = INPUTS, day: pd.Timestamp = D,
        config: ScenariosConfig = WIDE):
    return generate_scenario_set(MARKET, day, s, inputs, config, CID)


def with_(inputs: ScenarioInputs, **kw) -> ScenarioInputs:
    return ScenarioInputs(**{**inputs.__dict__, **kw})


def _base_returns(day: pd.Timestamp = D, sessions: int = 504) -> pd.DataFrame:
    """The base window as the engine sees it: last sessions up to the day, EQ11 excluded,
    gaps filled with zero."""
    window = INPUTS.returns.loc[:day].iloc[-sessions:]
    return window.drop(columns=["EQ11"]).fillna(0.0)


# --- reproducibility ------------------------------------------------------------------------
def test_same_seed_gives_identical_paths_and_a_stable_id() -> None:
    s = spec(family="BOOTSTRAP", num_paths=50)
    a, b = gen(s), gen(s)
    assert np.array_equal(a.paths, b.paths)
    digest = hashlib.sha256(json.dumps(s.model_dump(mode="json"), sort_keys=True,
                                       separators=(",", ":")).encode()).hexdigest()[:8]
    assert a.set_row["set_id"] == f"US_EQ:{D:%Y-%m-%d}:S:{digest}" == scenario_set_id(
        MARKET, D, s)
    assert scenario_set_id(MARKET, D, spec(family="BOOTSTRAP", num_paths=51)) != \
        a.set_row["set_id"]


def test_other_date_or_seed_gives_other_paths() -> None:
    s = spec(family="BOOTSTRAP", num_paths=50)
    base = gen(s).paths
    assert not np.array_equal(base, gen(spec(family="BOOTSTRAP", num_paths=50, seed=6)).paths)
    assert not np.array_equal(base, gen(s, day=SESSIONS[-2]).paths)
    other_name = spec(family="BOOTSTRAP", num_paths=50, name="T")
    assert not np.array_equal(base, gen(other_name).paths)


def test_paths_do_not_depend_on_the_python_process() -> None:
    code = (
        "import pandas as pd\n"
        "from tests.unit.test_scenarios import gen, spec\n"
        "g = gen(spec(family='FACTOR_BOOTSTRAP', num_paths=20, correlation_stress=0.3))\n"
        "print(g.set_row['set_id'], g.paths.tobytes().hex()[:64], repr(float(g.paths.sum())))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__))))).stdout.split()
    here = gen(spec(family="FACTOR_BOOTSTRAP", num_paths=20, correlation_stress=0.3))
    assert out == [here.set_row["set_id"], here.paths.tobytes().hex()[:64],
                   repr(float(here.paths.sum()))]


@pytest.mark.parametrize("family_spec", [
    {"family": "HISTORICAL", "regime_filter": ["RISK_OFF_PANIC", "RISK_OFF_GRINDING"]},
    {"family": "BOOTSTRAP"},
    {"family": "FACTOR_BOOTSTRAP", "correlation_stress": 0.4},
    {"family": "FRAGILITY_ADVERSARIAL"},
    {"family": "SHOCK_OVERLAY", "crash_gap": {"day": 2}},
])
def test_regenerate_from_the_stored_row_gives_the_same_paths(family_spec: dict) -> None:
    original = generate_scenario_set(MARKET, D, spec(num_paths=30, **family_spec), INPUTS,
                                     CONFIG, CID)
    stored, _ = scenario_frames([original])
    again = regenerate_paths(stored.iloc[0], INPUTS, CONFIG)
    assert np.array_equal(again.paths, original.paths)
    assert again.instrument_ids == original.instrument_ids
    assert again.set_row["set_id"] == original.set_row["set_id"]
    # the bounds recorded on the row win over a config changed since
    tighter = ScenariosConfig(bounds={"min_step_return": -0.01, "max_step_return": 0.01})
    assert np.array_equal(regenerate_paths(stored.iloc[0], INPUTS, tighter).paths,
                          original.paths)


def test_a_tampered_row_is_refused() -> None:
    original = gen(spec(family="BOOTSTRAP", num_paths=5))
    row = dict(original.set_row, seed=99)
    with pytest.raises(ScenarioError, match="seed"):
        regenerate_paths(row, INPUTS, CONFIG)
    row = dict(original.set_row, set_id="US_EQ:2023-01-02:S:00000000")
    with pytest.raises(ScenarioError, match="regenerated as"):
        regenerate_paths(row, INPUTS, CONFIG)


# --- look-ahead -----------------------------------------------------------------------------
def test_sessions_after_the_date_do_not_change_any_set() -> None:
    day = SESSIONS[560]
    cut = ScenarioInputs(returns=INPUTS.returns.loc[:day], factors=INPUTS.factors.loc[:day],
                         regime_labels=INPUTS.regime_labels.loc[:day], sectors=SECTORS,
                         weakness=WEAKNESS)
    future = INPUTS.returns.copy()
    future.loc[future.index > day] = -0.2  # a crash after D must not leak into D's sets
    full = with_(INPUTS, returns=future)
    a = generate_scenarios(MARKET, day, cut, CONFIG, CID)
    b = generate_scenarios(MARKET, day, full, CONFIG, CID)
    assert len(a) == len(CONFIG.sets)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.paths, y.paths), x.set_row["name"]
        assert x.set_row == y.set_row
        assert x.set_row["base_end"] == day
    with pytest.raises(LookAheadError, match="after"):
        generate_scenarios(MARKET, day, full, CONFIG, CID, strict=True)


# --- calibration ----------------------------------------------------------------------------
def test_bootstrap_paths_match_the_calibration_window() -> None:
    g = gen(spec(family="BOOTSTRAP", num_paths=400))
    cal, stats = g.set_row["calibration"], g.set_row["path_statistics"]
    assert cal["n_sessions"] == 504
    # the calibration is the base window itself
    assert cal == pytest.approx({**path_statistics(_base_returns().to_numpy()[None]),
                                 "n_sessions": 504, "first_session": cal["first_session"],
                                 "last_session": cal["last_session"]})
    # mean within 3 standard errors (from the spread of per-path means: paths are independent)
    se = g.paths.mean(axis=(1, 2)).std(ddof=1) / np.sqrt(400)
    assert abs(stats["mean"] - cal["mean"]) < 3 * se
    assert stats["vol"] == pytest.approx(cal["vol"], rel=0.05)           # vol within 5%
    assert stats["avg_corr"] == pytest.approx(cal["avg_corr"], abs=0.05)  # corr within 0.05
    assert cal["avg_corr"] > 0.2  # the panel has a real factor structure to preserve


def test_bootstrap_blocks_are_consecutive_rows_of_the_base_window() -> None:
    g = gen(spec(family="BOOTSTRAP", num_paths=50, block_min=7, block_max=7, horizon=14))
    base = _base_returns().to_numpy()
    for path in g.paths:
        for block in (path[:7], path[7:]):
            start = int(np.flatnonzero((base == block[0]).all(axis=1))[0])
            rows = (start + np.arange(7)) % len(base)  # circular
            assert np.array_equal(base[rows], block)


def test_factor_bootstrap_without_stress_reproduces_the_calibration() -> None:
    g = gen(spec(family="FACTOR_BOOTSTRAP", num_paths=400, shock_scale=1.0))
    cal, stats = g.set_row["calibration"], g.set_row["path_statistics"]
    assert stats["vol"] == pytest.approx(cal["vol"], rel=0.05)            # within 5%
    assert stats["avg_corr"] == pytest.approx(cal["avg_corr"], abs=0.05)  # within 0.05
    assert g.set_row["details"]["beta_source"] == "ols"


def test_correlation_stress_raises_correlation_and_shock_scale_raises_vol() -> None:
    calm = gen(spec(family="FACTOR_BOOTSTRAP", num_paths=400, shock_scale=1.0))
    stressed = gen(spec(family="FACTOR_BOOTSTRAP", num_paths=400, shock_scale=1.0,
                        correlation_stress=0.9))
    scaled = gen(spec(family="FACTOR_BOOTSTRAP", num_paths=400, shock_scale=2.0))
    base = calm.set_row["path_statistics"]
    assert stressed.set_row["path_statistics"]["avg_corr"] > base["avg_corr"] + 0.05
    assert scaled.set_row["path_statistics"]["vol"] > 1.3 * base["vol"]
    assert scaled.set_row["path_statistics"]["avg_corr"] > base["avg_corr"] + 0.05
    d = stressed.set_row["details"]
    assert d["factor_avg_corr_stressed"] == pytest.approx(
        d["factor_avg_corr"] + 0.9 * (1 - d["factor_avg_corr"]))


def test_correlation_stress_transform_hits_the_target_exactly() -> None:
    rng = np.random.default_rng(3)
    pool = rng.normal(0, 1, (300, 3)) * [0.01, 0.02, 0.005] + [0.001, 0.0, -0.001]
    pool[:, 2] -= 0.5 * pool[:, 0]
    stress = correlation_stress(pool, 0.6)
    out = stress.apply(pool)
    corr = np.corrcoef(pool, rowvar=False)
    target = 0.4 * corr + 0.6
    np.testing.assert_allclose(np.corrcoef(out, rowvar=False), target, atol=1e-10)
    np.testing.assert_allclose(out.mean(axis=0), pool.mean(axis=0), atol=1e-14)
    np.testing.assert_allclose(out.std(axis=0), pool.std(axis=0), rtol=1e-10)
    np.testing.assert_array_equal(correlation_stress(pool, 0.0).apply(pool).round(12),
                                  pool.round(12))


def test_supplied_exposures_are_used_for_the_decomposition() -> None:
    exposures = pd.DataFrame({"MARKET": BETA_MARKET, "SIZE": BETA_SIZE}, index=IDS)
    exposures = exposures.drop(index="EQ00")
    g = gen(spec(family="FACTOR_BOOTSTRAP", num_paths=5),
            inputs=with_(INPUTS, exposures=exposures))
    assert g.set_row["details"]["beta_source"] == "exposures+ols"
    assert any("estimated by OLS" in w for w in g.set_row["details"]["warnings"])


# --- historical -----------------------------------------------------------------------------
def test_historical_paths_are_actual_windows_of_the_input() -> None:
    g = gen(spec(family="HISTORICAL", num_paths=40, horizon=10))
    base = _base_returns()
    starts = g.set_row["details"]["window_starts"]
    assert len(starts) == 40 == g.set_row["num_paths"]
    assert starts == sorted(starts) and len(set(starts)) == 40
    for path, start in zip(g.paths, starts, strict=True):
        window = base.loc[start:].iloc[:10]
        assert len(window) == 10 and window.index[-1] <= D
        np.testing.assert_array_equal(path, window.to_numpy())


def test_historical_regime_filter_is_respected() -> None:
    risk_off = ("RISK_OFF_PANIC", "RISK_OFF_GRINDING")
    g = gen(spec(family="HISTORICAL", num_paths=500, regime_filter=risk_off))
    row = g.set_row
    assert row["regime_filter_applied"] is True and row["regime_filter"] == list(risk_off)
    starts = pd.DatetimeIndex(row["details"]["window_starts"])
    assert INPUTS.regime_labels.loc[starts].isin(risk_off).all()
    # fewer qualifying windows than asked: all of them, and the row says how many
    assert row["num_paths"] == row["details"]["windows_available"] == 41 + 61
    assert row["details"]["requested_paths"] == 500


def test_historical_regime_filter_falls_back_or_raises() -> None:
    g = gen(spec(family="HISTORICAL", num_paths=20, regime_filter=("RECOVERY",)))
    assert g.set_row["regime_filter_applied"] is False
    assert g.set_row["details"]["windows_available"] == 504 - 21 + 1
    assert any("fell back" in w for w in g.set_row["details"]["warnings"])
    with pytest.raises(ScenarioError, match=r"'S' as of .*RECOVERY.*0 windows"):
        gen(spec(family="HISTORICAL", regime_filter=("RECOVERY",), regime_fallback="RAISE"))
    no_labels = with_(INPUTS, regime_labels=None)
    g = gen(spec(family="BOOTSTRAP", num_paths=5, regime_filter=("RISK_OFF_PANIC",)),
            inputs=no_labels)
    assert g.set_row["regime_filter_applied"] is False


def test_bootstrap_regime_filter_draws_only_filtered_sessions() -> None:
    g = gen(spec(family="BOOTSTRAP", num_paths=50, regime_filter=("RISK_OFF_GRINDING",)))
    assert g.set_row["regime_filter_applied"] is True
    grinding = _base_returns()[INPUTS.regime_labels.loc[_base_returns().index]
                               == "RISK_OFF_GRINDING"].to_numpy()
    assert g.set_row["calibration"]["n_sessions"] == len(grinding) == 61
    rows = g.paths.reshape(-1, g.paths.shape[-1])
    assert all((grinding == r).all(axis=1).any() for r in rows)


# --- overlays and named sets ----------------------------------------------------------------
def test_overlay_on_no_base_is_exactly_the_configured_shocks() -> None:
    exposures = pd.DataFrame({"MARKET": BETA_MARKET}, index=IDS)
    s = spec(family="SHOCK_OVERLAY", base="NONE", horizon=8,
             crash_gap={"day": 3, "market_return": -0.12},
             credit_freeze={"start_step": 2, "end_step": 5, "return_per_step": -0.01},
             vol_spike={"multiplier": 3.0})
    g = gen(s, inputs=with_(INPUTS, exposures=exposures))
    assert g.paths.shape == (1, 8, 11) and g.set_row["num_paths"] == 1
    expected = np.zeros((1, 8, 11))
    expected[:, 2, :] += -0.12 * BETA_MARKET[:11]
    expected[:, 1:5, :] += -0.01 * WEAKNESS.to_numpy()[:11]
    np.testing.assert_array_equal(g.paths, expected)
    assert g.set_row["clipped_moves"] == 0


def test_overlay_is_bounded_after_the_shocks() -> None:
    s = spec(family="SHOCK_OVERLAY", base="NONE", horizon=4,
             crash_gap={"day": 1, "market_return": -0.5})
    exposures = pd.DataFrame({"MARKET": np.full(12, 2.0)}, index=IDS)
    g = generate_scenario_set(MARKET, D, s, with_(INPUTS, exposures=exposures), CONFIG, CID)
    np.testing.assert_array_equal(g.paths[0, 0], np.full(11, -0.6))  # -1.0 clipped at -0.6
    assert g.set_row["clipped_moves"] == 11


def test_vol_spike_multiplies_the_base_exactly() -> None:
    plain = gen(spec(family="BOOTSTRAP", num_paths=30))
    spiked = gen(spec(family="SHOCK_OVERLAY", num_paths=30,
                      vol_spike={"start_step": 3, "end_step": 7, "multiplier": 3.0}))
    expected = plain.paths.copy()
    expected[:, 2:7, :] *= 3.0
    np.testing.assert_array_equal(spiked.paths, expected)


def test_named_shocks_compound_to_their_totals() -> None:
    ones = with_(INPUTS, exposures=pd.DataFrame({"MARKET": np.ones(12)}, index=IDS),
                 weakness=pd.Series(np.r_[1.0, np.zeros(11)], index=IDS))
    crash = gen(spec(family="NAMED", named=[{"kind": "MARKET", "total_return": -0.30}]),
                inputs=ones)
    assert crash.paths.shape == (1, 21, 11)
    np.testing.assert_allclose(crash.cumulative_returns, -0.30, atol=1e-12)
    assert np.ptp(crash.paths[0], axis=0).max() == 0  # spread evenly over the steps
    sector = gen(spec(family="NAMED", named=[{"kind": "SECTOR", "sector": "Financials",
                                              "total_return": -0.25}]), inputs=ones)
    cum = pd.Series(sector.cumulative_returns[0], index=sector.instrument_ids)
    np.testing.assert_allclose(cum[SECTORS == "Financials"], -0.25, atol=1e-12)
    assert (cum[SECTORS.loc[cum.index] != "Financials"] == 0).all()
    credit = gen(spec(family="NAMED", named=[{"kind": "CREDIT", "total_return": -0.40}]),
                 inputs=ones)
    assert credit.cumulative_returns[0, 0] == pytest.approx(-0.40, abs=1e-12)
    assert (credit.cumulative_returns[0, 1:] == 0).all()
    # a beta of 0.5 halves the step return
    half = with_(INPUTS, exposures=pd.DataFrame({"MARKET": np.full(12, 0.5)}, index=IDS))
    h = gen(spec(family="NAMED", named=[{"kind": "MARKET", "total_return": -0.30}]),
            inputs=half)
    np.testing.assert_allclose(h.paths, 0.5 * crash.paths, rtol=1e-14)


def test_market_betas_are_estimated_when_no_exposures_are_given() -> None:
    g = gen(spec(family="NAMED", horizon=1, named=[{"kind": "MARKET", "total_return": -0.1}]))
    betas = g.paths[0, 0] / -0.1
    np.testing.assert_allclose(betas, BETA_MARKET[:11], atol=0.12)


# --- fragility ------------------------------------------------------------------------------
def test_fragility_shocks_target_the_weak_and_spill_to_sector_peers() -> None:
    g = gen(spec(family="FRAGILITY_ADVERSARIAL", base="NONE", num_paths=50,
                 adversarial={"min_weakness": 0.5, "adverse_return": -0.35,
                              "spillover": 0.3}))
    cum = pd.DataFrame(g.cumulative_returns, columns=g.instrument_ids)
    details = g.set_row["details"]
    scale = np.array(details["path_scales"])
    assert set(details["targets"]) == {"EQ04", "EQ05"}
    assert set(details["peers"]) == {"EQ06", "EQ07"}
    assert 0.5 <= scale.min() < scale.max() <= 1.5  # paths differ
    np.testing.assert_allclose(cum["EQ04"], scale * -0.35 * 0.9, rtol=1e-5)
    np.testing.assert_allclose(cum["EQ05"], scale * -0.35 * 0.6, rtol=1e-5)
    sector_avg = -0.35 * (0.9 + 0.6) / 2
    np.testing.assert_allclose(cum["EQ06"], scale * 0.3 * sector_avg, rtol=1e-5)
    untouched = [i for i in g.instrument_ids if i not in ("EQ04", "EQ05", "EQ06", "EQ07")]
    assert (cum[untouched] == 0).all().all()  # below min_weakness, no targeted peer


def test_fragility_on_a_bootstrap_base_hurts_targets_most() -> None:
    g = gen(spec(family="FRAGILITY_ADVERSARIAL", num_paths=200))
    cum = pd.DataFrame(g.cumulative_returns, columns=g.instrument_ids).mean()
    targets, peers = ["EQ04", "EQ05"], ["EQ06", "EQ07"]
    others = cum.drop(targets + peers)
    assert cum[targets].max() < cum[peers].min() - 0.03
    assert cum[peers].max() < others.min()
    assert g.paths.std() > 0.005  # the base moves


def test_fragility_without_sectors_has_no_spillover() -> None:
    g = gen(spec(family="FRAGILITY_ADVERSARIAL", base="NONE", num_paths=3),
            inputs=with_(INPUTS, sectors=None))
    assert g.set_row["details"]["peers"] == []
    assert any("no spillover" in w for w in g.set_row["details"]["warnings"])


# --- bounds ---------------------------------------------------------------------------------
SMALL = ScenarioInputs(returns=INPUTS.returns.iloc[-150:, :6],
                       factors=INPUTS.factors.iloc[-150:], sectors=SECTORS, weakness=WEAKNESS)


@st.composite
def small_specs(draw) -> dict:
    family = draw(st.sampled_from(["HISTORICAL", "BOOTSTRAP", "FACTOR_BOOTSTRAP",
                                   "SHOCK_OVERLAY", "FRAGILITY_ADVERSARIAL", "NAMED"]))
    horizon = draw(st.integers(1, 10))
    body = {"family": family, "horizon": horizon, "seed": draw(st.integers(0, 2**31)),
            "base_window_sessions": 120, "min_base_sessions": 63}
    if family != "NAMED" and not (family == "SHOCK_OVERLAY"):
        body["num_paths"] = draw(st.integers(1, 15))
    if family in ("BOOTSTRAP", "FACTOR_BOOTSTRAP", "SHOCK_OVERLAY", "FRAGILITY_ADVERSARIAL"):
        body["block_min"] = draw(st.integers(1, horizon))
        body["block_max"] = draw(st.integers(body["block_min"], 30))
    if family == "FACTOR_BOOTSTRAP":
        body["shock_scale"] = draw(st.floats(0.1, 3.0))
        body["correlation_stress"] = draw(st.floats(0.0, 1.0))
    if family == "SHOCK_OVERLAY":
        body["num_paths"] = draw(st.integers(1, 15))
        body["crash_gap"] = {"day": draw(st.integers(1, horizon)),
                             "market_return": draw(st.floats(-0.9, 0.5))}
        body["vol_spike"] = {"multiplier": draw(st.floats(0.1, 10.0))}
    if family == "FRAGILITY_ADVERSARIAL":
        body["adversarial"] = {"adverse_return": draw(st.floats(-0.6, -0.01)),
                               "min_weakness": draw(st.floats(0.0, 1.0))}
    if family == "NAMED":
        body["named"] = [{"kind": "MARKET", "total_return": draw(st.floats(-0.95, 3.0))}]
    return body


@settings(max_examples=30, deadline=None)
@given(body=small_specs(), low=st.floats(-0.3, -0.002), high=st.floats(0.002, 0.3),
       leverage=st.floats(0.5, 5.0))
def test_no_step_return_leaves_the_bounds(body: dict, low: float, high: float,
                                          leverage: float) -> None:
    s = spec(**body)
    inputs = with_(SMALL, returns=SMALL.returns * leverage, factors=SMALL.factors * leverage)
    bounded = generate_scenario_set(MARKET, D, s, inputs, ScenariosConfig(
        bounds={"min_step_return": low, "max_step_return": high}), CID)
    raw = generate_scenario_set(MARKET, D, s, inputs, WIDE, CID)
    assume(raw.set_row["clipped_moves"] == 0)  # the wide bounds show the raw paths
    assert bounded.paths.min() >= low and bounded.paths.max() <= high
    outside = int(((raw.paths < low) | (raw.paths > high)).sum())
    assert bounded.set_row["clipped_moves"] == outside
    np.testing.assert_array_equal(bounded.paths, np.clip(raw.paths, low, high))
    assert (bounded.cumulative_returns > -1).all()


# --- inputs and errors ----------------------------------------------------------------------
def test_thin_history_is_excluded_and_listed() -> None:
    g = gen(spec(family="BOOTSTRAP", num_paths=5))
    assert g.set_row["excluded_instruments"] == ["EQ11"]
    assert g.instrument_ids == IDS[:11] and g.set_row["n_instruments"] == 11
    # EQ03's gaps (under 20%) stay in, filled with zero returns
    assert np.isfinite(g.paths).all()
    wider = ScenariosConfig(min_history_fraction=0.5)
    assert gen(spec(family="BOOTSTRAP", num_paths=5), config=wider).set_row[
        "excluded_instruments"] == []


def test_too_short_history_is_a_clear_error() -> None:
    day = SESSIONS[40]
    with pytest.raises(ScenarioError, match=rf"'S' as of {day:%Y-%m-%d}.*41 session"):
        gen(spec(family="BOOTSTRAP"), day=day)
    # a short window is accepted down to min_base_sessions
    g = gen(spec(family="BOOTSTRAP", num_paths=3, min_base_sessions=30, block_max=20),
            day=day)
    assert g.set_row["calibration"]["n_sessions"] == 41


def test_missing_inputs_are_named() -> None:
    with pytest.raises(ScenarioError, match="factor returns"):
        gen(spec(family="FACTOR_BOOTSTRAP"), inputs=with_(INPUTS, factors=None))
    with pytest.raises(ScenarioError, match="weakness"):
        gen(spec(family="FRAGILITY_ADVERSARIAL"), inputs=with_(INPUTS, weakness=None))
    with pytest.raises(ScenarioError, match="MARKET exposures"):
        gen(spec(family="SHOCK_OVERLAY", crash_gap={}), inputs=with_(INPUTS, factors=None))
    with pytest.raises(ScenarioError, match="sectors"):
        gen(spec(family="NAMED", named=[{"kind": "SECTOR", "sector": "Energy",
                                         "total_return": -0.2}]),
            inputs=with_(INPUTS, sectors=None))


def test_malformed_inputs_raise_data_schema_errors() -> None:
    with pytest.raises(DataSchemaError, match="weakness of 'EQ00'"):
        gen(spec(family="BOOTSTRAP"), inputs=with_(INPUTS, weakness=WEAKNESS.replace(0.1, 1.5)))
    with pytest.raises(DataSchemaError, match="ascending"):
        gen(spec(family="BOOTSTRAP"), inputs=with_(INPUTS, returns=INPUTS.returns[::-1]))
    with pytest.raises(DataSchemaError, match="DatetimeIndex"):
        gen(spec(family="BOOTSTRAP"),
            inputs=with_(INPUTS, returns=INPUTS.returns.reset_index(drop=True)))


def _body(**set_fields) -> dict:
    return {"engine": "scenarios", "version": "1",
            "sets": [{"name": "X", "family": "BOOTSTRAP", **set_fields}]}


@pytest.mark.parametrize(("body", "message"), [
    (_body(family="MONTE_CARLO"), r"sets\.0\.family"),
    (_body(block_min=10, block_max=5), "block_min"),
    (_body(block_min=30, block_max=40), "block_min.*horizon"),
    (_body(block_max=70), "block_max.*min_base_sessions"),
    (_body(shock_scale=2.0), "'shock_scale' applies to FACTOR_BOOTSTRAP"),
    (_body(family="NAMED"), "'named'"),
    (_body(family="NAMED", num_paths=10, named=[{"kind": "CREDIT", "total_return": -0.2}]),
     "num_paths"),
    (_body(family="NAMED", named=[{"kind": "SECTOR", "total_return": -0.2}]), "sector"),
    (_body(family="NAMED", named=[{"kind": "MARKET", "total_return": -1.0}]), "total_return"),
    (_body(family="SHOCK_OVERLAY"), "crash_gap"),
    (_body(family="SHOCK_OVERLAY", horizon=5, crash_gap={"day": 6}), "crash_gap.day"),
    (_body(correlation_stress=1.5), "correlation_stress"),
    (_body(colour="red"), "colour"),
    ({**_body(), "bounds": {"min_step_return": 0.1}}, "min_step_return"),
    ({**_body(), "sets": [{"name": "X", "family": "BOOTSTRAP"},
                          {"name": "X", "family": "HISTORICAL"}]}, "unique"),
])
def test_bad_configs_raise_config_errors_naming_the_field(body: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(body)


# --- tables and default config --------------------------------------------------------------
def test_default_config_generates_valid_tables() -> None:
    loaded = load_engine_config("scenarios")
    assert loaded.config == ScenariosConfig()
    config = loaded.config
    sets = generate_scenarios(MARKET, D, INPUTS, config, loaded.config_id)
    assert [s.set_row["name"] for s in sets] == [s.name for s in config.sets]
    assert {s.set_row["family"] for s in sets} == {
        "HISTORICAL", "BOOTSTRAP", "FACTOR_BOOTSTRAP", "SHOCK_OVERLAY",
        "FRAGILITY_ADVERSARIAL", "NAMED"}
    set_rows, path_rows = scenario_frames(sets)
    assert len(set_rows) == len(sets)
    assert len(path_rows) == sum(s.paths.shape[0] * s.paths.shape[2] for s in sets)
    assert validate_frame("scenario_sets", set_rows).equals(set_rows)
    assert validate_frame("scenario_paths", path_rows).equals(path_rows)
    first = sets[1]
    rows = path_rows[path_rows["set_id"] == first.set_row["set_id"]]
    r = rows[(rows["path_id"] == 3) & (rows["instrument_id"] == "EQ05")].iloc[0]
    np.testing.assert_array_equal(vector_to_array(r["step_returns"]),
                                  first.paths[3, :, 5].astype(np.float32))
    assert r["cumulative_return"] == pytest.approx(np.prod(1 + first.paths[3, :, 5]) - 1)
    stored = set_rows.iloc[0]
    assert json.loads(stored["generator_spec"])["name"] == "HISTORICAL_RISK_OFF"
    assert stored["regime_filter_applied"] and stored["config_id"] == loaded.config_id
    for s in sets:
        assert s.paths.min() >= -0.6 and s.paths.max() <= 1.0


def test_path_statistics_by_hand() -> None:
    x = np.array([[0.01, 0.02], [0.02, 0.04], [0.03, 0.06], [0.04, 0.08]])
    stats = path_statistics(x[None])
    assert stats["mean"] == pytest.approx(x.mean())
    assert stats["vol"] == pytest.approx(np.sqrt((x[:, 0].var(ddof=1) + x[:, 1].var(ddof=1))
                                                 / 2))
    assert stats["avg_corr"] == pytest.approx(1.0)
    anti = np.stack([x[:, 0], -x[:, 0], np.zeros(4)], axis=1)
    assert path_statistics(anti[None])["avg_corr"] == pytest.approx(-1.0)  # flat one ignored
    assert path_statistics(x[None, :, :1])["avg_corr"] is None


def test_scenario_day_shares_windows_but_not_warnings() -> None:
    config = ScenariosConfig()
    # exposures missing for two names: sets that read betas record an OLS warning each
    exposures = pd.DataFrame({"MARKET": BETA_MARKET}, index=IDS).iloc[2:]
    inputs = with_(INPUTS, exposures=exposures)
    day = ScenarioDay(inputs, D)
    shared = [generate_scenario_set(MARKET, D, s, day, config, CID) for s in config.sets]
    alone = [generate_scenario_set(MARKET, D, s, inputs, config, CID) for s in config.sets]
    for a, b in zip(shared, alone, strict=True):
        assert a.set_row == b.set_row
        np.testing.assert_array_equal(a.paths, b.paths)
    again = regenerate_paths(scenario_set_frame(shared).iloc[2], day, config)
    np.testing.assert_array_equal(again.paths, shared[2].paths)
    with pytest.raises(ValueError, match="prepared for"):
        generate_scenario_set(MARKET, SESSIONS[-2], config.sets[0], day, config, CID)


def test_unvalidated_frames_validate_to_the_validated_ones() -> None:
    sets = generate_scenarios(MARKET, D, INPUTS, CONFIG, CID)
    set_rows, path_rows = scenario_frames(sets)
    pd.testing.assert_frame_equal(
        validate_frame("scenario_paths", scenario_path_frame(sets, validate=False)), path_rows)
    pd.testing.assert_frame_equal(
        validate_frame("scenario_sets", pd.concat(
            [scenario_set_frame(sets[:4], validate=False),
             scenario_set_frame(sets[4:], validate=False)], ignore_index=True)), set_rows)
