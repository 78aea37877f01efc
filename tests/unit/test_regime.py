"""Regime engine: hand-checked smoothing, transitions, percentiles, alert levels and scores;
window features checked against numpy on a seeded series, with look-ahead and history-start
invariance and macro staleness; prototypes fitted on two well separated synthetic regimes
(labels, persistence, row independence, embedding, determinism); config errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_mutual_info_score

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.engines.regime import (
    RISK_OFF_LABELS,
    RegimeConfig,
    RegimeModel,
    RegimeTrainingError,
    RegionInputs,
    assign_regimes,
    combine_internals,
    compute_region_features,
    early_warnings,
    fit_regime_model,
    missing_inputs,
    risk_off_balanced_accuracy,
    run_lengths,
    smooth_labels,
    trailing_percentile,
    transition_matrix,
)
from prometheus_dagster.engines.regime.smoothing import next_regime_probabilities
from prometheus_dagster.engines.regime.warnings import alert_level

ROLES = {"implied_vol": ["VIX"], "credit_spread": ["IG"]}
SQRT252 = math.sqrt(252)


# --- smoothing ---------------------------------------------------------------------------
def _seq(spec: str) -> list[str]:
    return list(spec)


def test_one_day_blip_is_ignored() -> None:
    raw = _seq("AAAAABAAAA")
    assert smooth_labels(raw, min_duration=3, confirmation=2) == _seq("AAAAAAAAAA")


def test_switch_waits_for_confirmation() -> None:
    raw = _seq("AAAAABBBBB")
    assert smooth_labels(raw, 3, 2) == _seq("AAAAAABBBB")
    assert smooth_labels(raw, 3, 3) == _seq("AAAAAAABBB")
    assert smooth_labels(raw, 3, 1) == raw


def test_regime_is_held_for_min_duration() -> None:
    raw = _seq("AABBBBBB")
    assert smooth_labels(raw, min_duration=5, confirmation=2) == _seq("AAAAABBB")
    raw = _seq("AAAAABBBBBBAAAAAA")
    assert smooth_labels(raw, min_duration=8, confirmation=2) == _seq("AAAAAAAABBBBBBBBA")


def test_unconfirmed_alternation_never_switches() -> None:
    raw = _seq("AAAAA" + "BC" * 10)
    assert smooth_labels(raw, 1, 2) == ["A"] * len(raw)


def test_none_keeps_the_state_and_counts_towards_duration() -> None:
    raw: list[str | None] = [None, None, "A", None, None, "B", "B", None]
    assert smooth_labels(raw, 3, 2) == [None, None, "A", "A", "A", "A", "B", "B"]


labels_st = st.integers(3, 4).flatmap(
    lambda k: st.lists(st.sampled_from("ABCD"[:k]), max_size=200))


@settings(max_examples=300, deadline=None)
@given(raw=labels_st, min_duration=st.integers(1, 10), confirmation=st.integers(1, 3))
def test_completed_runs_last_at_least_min_duration(raw: list[str], min_duration: int,
                                                   confirmation: int) -> None:
    runs = run_lengths(smooth_labels(raw, min_duration, confirmation))
    assert sum(n for _, n in runs) == len(raw)
    assert all(n >= min_duration for _, n in runs[:-1])


@settings(max_examples=200, deadline=None)
@given(raw=labels_st, min_duration=st.integers(1, 10), confirmation=st.integers(1, 3),
       data=st.data())
def test_smoothing_is_causal(raw: list[str], min_duration: int, confirmation: int,
                             data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(raw)))
    whole = smooth_labels(raw, min_duration, confirmation)
    assert smooth_labels(raw[:cut], min_duration, confirmation) == whole[:cut]


@settings(max_examples=100, deadline=None)
@given(raw=labels_st)
def test_smoothing_without_constraints_is_the_identity(raw: list[str]) -> None:
    assert smooth_labels(raw, 1, 1) == raw


def test_prompt_stress_switches_at_once_except_out_of_a_steady_regime() -> None:
    """A prompt session (strong stress by its prototype and by its own level) switches without
    confirmation out of an unsettled regime, but a one-day spike in a calm one still needs
    confirming; the minimum duration holds either way."""
    raw = ["HV"] * 6 + ["RO"] + ["HV"] * 6
    prompt = [lab == "RO" for lab in raw]
    assert smooth_labels(raw, 5, 2)[6] == "HV"
    assert smooth_labels(raw, 5, 2, prompt=prompt)[6] == "RO"
    assert smooth_labels(raw, 5, 2, prompt=prompt, steady=("HV",)) == smooth_labels(raw, 5, 2)
    early = ["HV"] * 3 + ["RO"] + ["HV"] * 3
    assert smooth_labels(early, 5, 2, prompt=[lab == "RO" for lab in early]) == ["HV"] * 7


def test_run_lengths_hand_example() -> None:
    assert run_lengths(_seq("AABBBA")) == [("A", 2), ("B", 3), ("A", 1)]
    assert run_lengths([]) == []


# --- transitions -------------------------------------------------------------------------
def test_transition_matrix_hand_example() -> None:
    p = transition_matrix(_seq("AAABBA"), ["A", "B", "C"], prior=0.5)
    expected = np.array([[2.5, 1.5, 0.5], [1.5, 1.5, 0.5], [0.5, 0.5, 0.5]])
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


def test_transition_matrix_without_prior_counts_and_ignores_unknown_states() -> None:
    p = transition_matrix(["A", "A", None, "B", "X", "A", "B"], ["A", "B", "C"], prior=0.0)
    np.testing.assert_array_equal(p, [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


@settings(max_examples=100, deadline=None)
@given(labels=st.lists(st.sampled_from("ABC"), min_size=2, max_size=100),
       prior=st.floats(0.01, 5.0))
def test_transition_rows_sum_to_one(labels: list[str], prior: float) -> None:
    p = transition_matrix(labels, ["A", "B", "C"], prior)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert (p > 0).all()


def test_next_regime_probabilities_hand_example() -> None:
    t = np.array([[0.8, 0.15, 0.05], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]])
    tomorrow, after, expected = next_regime_probabilities(t, ["A", "B", "C"], "A")
    assert tomorrow == {"A": 0.8, "B": 0.15, "C": 0.05}
    assert after == pytest.approx({"B": 0.75, "C": 0.25}, rel=1e-12)
    assert expected == pytest.approx(5.0, rel=1e-12)
    _, after, expected = next_regime_probabilities(t, ["A", "B", "C"], "C")
    assert after == {"A": 0.0, "B": 0.0}
    assert expected == math.inf


# --- early warnings ------------------------------------------------------------------------
def _naive_percentile(x: np.ndarray, history: int, min_history: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for t in range(len(x)):
        w = x[max(0, t - history + 1):t + 1]
        w = w[~np.isnan(w)]
        if not np.isnan(x[t]) and len(w) >= min_history:
            out[t] = np.mean(w <= x[t])
    return out


def test_trailing_percentile_hand_example() -> None:
    got = trailing_percentile(np.array([3.0, 1.0, 2.0, 5.0, 4.0]), history=3, min_history=2)
    np.testing.assert_allclose(got, [np.nan, 0.5, 2 / 3, 1.0, 2 / 3], rtol=1e-12)
    got = trailing_percentile(np.array([3.0, np.nan, 2.0, 1.0]), history=3, min_history=2)
    np.testing.assert_allclose(got, [np.nan, np.nan, 0.5, 0.5], rtol=1e-12)


def test_trailing_percentile_needs_min_history() -> None:
    x = np.random.default_rng(3).standard_normal(50)
    got = trailing_percentile(x, history=20, min_history=10)
    assert np.isnan(got[:9]).all()
    assert np.isfinite(got[9:]).all()
    assert ((got[9:] > 0) & (got[9:] <= 1)).all()


def test_trailing_percentile_matches_a_loop_across_chunks() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(5000).round(1)
    x[rng.random(5000) < 0.05] = np.nan
    np.testing.assert_allclose(trailing_percentile(x, 100, 30), _naive_percentile(x, 100, 30),
                               rtol=1e-12)


def test_trailing_percentile_has_no_look_ahead() -> None:
    x = np.random.default_rng(5).standard_normal(3000)
    full = trailing_percentile(x, 756, 126)
    for cut in (126, 757, 2048, 2049, 2500):
        np.testing.assert_array_equal(trailing_percentile(x[:cut], 756, 126), full[:cut])


@pytest.mark.parametrize(("count", "domains", "level"), [
    (0, 0, "GREEN"), (2, 2, "GREEN"), (3, 1, "GREEN"), (3, 2, "YELLOW"), (4, 1, "GREEN"),
    (4, 2, "YELLOW"), (6, 2, "ORANGE"), (7, 1, "GREEN"), (7, 2, "ORANGE"), (11, 2, "ORANGE"),
    (11, 3, "RED"), (10, 5, "RED"),
])
def test_alert_level(count: int, domains: int, level: str) -> None:
    assert alert_level(count, domains, RegimeConfig().early_warning) == level


def test_early_warnings_counts_domains() -> None:
    cfg = RegimeConfig().early_warning
    n = 300
    calm = np.linspace(1.0, 2.0, n)
    frame = pd.DataFrame({"vol_short": calm, "credit_level": calm, "implied_vol": calm,
                          "drawdown": -calm}, index=pd.bdate_range("2020-01-01", periods=n))
    out = early_warnings(frame, cfg)
    assert (out["alert_level"].iloc[:cfg.min_history_sessions - 1] == "GREEN").all()
    last = out.iloc[-1]
    assert last["warning_count"] == 4
    assert last["warning_domains"] == {"credit": 1, "internals": 2, "positioning": 1}
    assert last["alert_level"] == "YELLOW"
    assert set(last["warnings"]) == {"vol_short", "credit_level", "implied_vol", "drawdown"}
    assert "breadth" in out.attrs["unavailable_indicators"]


# --- window features -----------------------------------------------------------------------
def _internals(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "date": pd.bdate_range("2012-01-02", periods=n),
        "index_ret_1d": rng.normal(0.0003, 0.011, n),
        "avg_pairwise_corr_63d": rng.uniform(0.2, 0.6, n),
        "dispersion_1d": rng.uniform(0.005, 0.02, n),
        "breadth_1d": rng.uniform(0.3, 0.7, n),
    })


def _macro(dates: pd.DatetimeIndex, seed: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kept = dates[rng.random(len(dates)) > 0.1]
    vix = 15 * np.exp(np.cumsum(rng.normal(0, 0.05, len(kept))))
    ig = 1.2 * np.exp(np.cumsum(rng.normal(0, 0.01, len(kept))))
    return pd.concat([
        pd.DataFrame({"series_id": "VIX", "date": kept, "value": vix, "frequency": "D"}),
        pd.DataFrame({"series_id": "IG", "date": kept, "value": ig, "frequency": "D"}),
    ], ignore_index=True)


def _features(internals: pd.DataFrame, macro: pd.DataFrame, roles=ROLES,
              config: RegimeConfig | None = None) -> pd.DataFrame:
    inputs = RegionInputs("US_EQ", internals, macro, roles)
    return compute_region_features(inputs, config or RegimeConfig())


@pytest.fixture(scope="module")
def raw_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    internals = _internals(900)
    return internals, _macro(pd.DatetimeIndex(internals["date"]))


@pytest.fixture(scope="module")
def full_features(raw_inputs) -> pd.DataFrame:
    return _features(*raw_inputs)


def test_short_window_features_match_numpy(raw_inputs, full_features) -> None:
    internals, _ = raw_inputs
    ws = RegimeConfig().short_window
    assert ws == 21
    lr = np.log1p(internals["index_ret_1d"].to_numpy())
    for t in (20, 400, 899):
        window = lr[t - ws + 1:t + 1]
        row = full_features.iloc[t]
        assert row["ret_short"] == pytest.approx(window.sum(), rel=1e-12, abs=1e-15)
        assert row["vol_short"] == pytest.approx(np.std(window, ddof=1) * SQRT252, rel=1e-12)
    long_window = lr[899 - 63 + 1:]
    assert full_features["ret_long"].iloc[899] == pytest.approx(long_window.sum(), rel=1e-12)
    assert full_features["vol_long"].iloc[899] == pytest.approx(
        np.std(long_window, ddof=1) * SQRT252, rel=1e-12)


def test_drawdown_is_level_over_trailing_peak(raw_inputs, full_features) -> None:
    internals, _ = raw_inputs
    dd = full_features["drawdown"].to_numpy()
    assert np.nanmax(dd) <= 0.0
    assert np.isnan(dd[:19]).all() and np.isfinite(dd[19:]).all()
    level = np.concatenate([[0.0], np.cumsum(np.log1p(internals["index_ret_1d"].to_numpy()))])
    for t in (300, 600, 899):
        peak = level[t + 1 - 252:t + 2].max()
        assert dd[t] == pytest.approx(math.expm1(level[t + 1] - peak), rel=1e-9, abs=1e-15)


def test_macro_features_are_as_of(raw_inputs, full_features) -> None:
    internals, macro = raw_inputs
    vix = macro[macro["series_id"] == "VIX"].set_index("date")["value"]
    asof = vix.reindex(pd.DatetimeIndex(internals["date"]), method="ffill")
    np.testing.assert_array_equal(full_features["implied_vol"].to_numpy(), asof.to_numpy())
    change = full_features["implied_vol_change"].to_numpy()
    assert change[500] == asof.iloc[500] - asof.iloc[479]
    assert full_features["implied_minus_realised"].iloc[500] == pytest.approx(
        asof.iloc[500] / 100 - full_features["vol_short"].iloc[500], rel=1e-12)


def test_window_coverage_rule() -> None:
    internals = _internals(200)
    r = internals["index_ret_1d"].to_numpy().copy()
    r[[95, 99]] = np.nan
    r[150:155] = np.nan
    internals["index_ret_1d"] = r
    out = _features(internals, _macro(pd.DatetimeIndex(internals["date"])))
    lr = np.log1p(r)
    assert out["ret_short"].iloc[100] == pytest.approx(np.nansum(lr[80:101]), rel=1e-12)
    assert out["vol_short"].iloc[100] == pytest.approx(
        np.nanstd(lr[80:101], ddof=1) * SQRT252, rel=1e-12)
    assert np.isnan(out["ret_short"].iloc[160])
    assert np.isnan(out["ret_short"].iloc[:16]).all()


def test_features_have_no_look_ahead(raw_inputs, full_features) -> None:
    internals, macro = raw_inputs
    for cut in (pd.Timestamp("2013-06-14"), internals["date"].iloc[700]):
        part = _features(internals[internals["date"] <= cut], macro[macro["date"] <= cut])
        assert list(part.columns) == list(full_features.columns)
        expected = full_features.loc[:cut]
        assert part.index.equals(expected.index)
        np.testing.assert_array_equal(part.to_numpy(), expected.to_numpy())


def test_features_do_not_depend_on_history_start(raw_inputs, full_features) -> None:
    internals, macro = raw_inputs
    start = internals["date"].iloc[300]
    late = _features(internals.iloc[300:], macro[macro["date"] >= start])
    settled = late.index[4 * RegimeConfig().window:]
    assert len(settled) > 300
    np.testing.assert_array_equal(late.loc[settled].to_numpy(),
                                  full_features.loc[settled, late.columns].to_numpy())


def test_missing_role_series_is_reported(raw_inputs) -> None:
    internals, macro = raw_inputs
    roles = {"implied_vol": ["VIX"], "credit_spread": ["IG_OLD", "IG"], "haven": ["GOLD"]}
    missing = missing_inputs(RegionInputs("US_EQ", internals, macro, roles))
    assert "macro haven (none of GOLD)" in missing
    assert not any(m.startswith(("macro implied_vol", "macro credit_spread")) for m in missing)
    assert "macro rate_short (no series mapped in configs/engines/regime.yaml)" in missing
    out = _features(internals, macro, roles)
    assert "haven_return" not in out.columns
    assert out["credit_level"].notna().all()


def test_missing_internals_are_reported() -> None:
    internals = _internals(50)[["date", "index_ret_1d"]]
    missing = missing_inputs(RegionInputs("X", internals, _macro(internals["date"]), ROLES))
    assert "average correlation (needs several instruments)" in missing
    assert "breadth (needs several instruments)" in missing
    assert not any(m.startswith("index returns") for m in missing)


@pytest.mark.parametrize(("frequency", "limit"), [("D", 7), ("W", 14)])
def test_stale_macro_values_are_not_carried_forward(frequency: str, limit: int) -> None:
    internals = _internals(120)
    last = pd.Timestamp("2012-04-06")
    obs = pd.DataFrame({"series_id": "VIX", "date": pd.bdate_range("2012-01-02", last),
                        "value": 20.0, "frequency": frequency})
    obs.loc[obs.index[-1], "value"] = 33.0
    vol = _features(internals, obs, {"implied_vol": ["VIX"]})["implied_vol"]
    age = pd.Series((vol.index - last).days, index=vol.index)
    fresh = vol[(age >= 0) & (age <= limit)]
    assert len(fresh) >= 5 and (fresh == 33.0).all()
    assert (age > limit).sum() > 10 and vol[age > limit].isna().all()


def test_combine_internals_averages_members_present() -> None:
    d = pd.bdate_range("2024-01-01", periods=3)
    us = pd.DataFrame({"date": d, "index_ret_1d": [0.01, 0.02, 0.03]})
    eu = pd.DataFrame({"date": d[[0, 2]], "index_ret_1d": [0.03, -0.01]})
    out = combine_internals({"US_EQ": us, "EU_EQ": eu})
    assert list(out["date"]) == list(d)
    np.testing.assert_allclose(out["index_ret_1d"], [0.02, 0.02, 0.01], rtol=1e-12)


# --- prototypes --------------------------------------------------------------------------
STRESS_BLOCKS = ((100, 160), (300, 360), (480, 510))


def _regime_features(n: int = 600, seed: int = 21) -> tuple[pd.DataFrame, np.ndarray]:
    """Calm and stress sessions (stress in blocks, ~25% of days) with noisy features."""
    rng = np.random.default_rng(seed)
    stress = np.zeros(n, dtype=bool)
    for a, b in STRESS_BLOCKS:
        stress[a:b] = True
    level = {"implied_vol": (12.0, 35.0), "vol_short": (0.1, 0.3), "credit_level": (1.0, 2.2)}
    frame = {f: np.where(stress, hi, lo) * np.exp(rng.normal(0, 0.08, n))
             for f, (lo, hi) in level.items()}
    frame["ret_short"] = np.where(stress, -0.05, 0.02) + rng.normal(0, 0.01, n)
    return pd.DataFrame(frame, index=pd.bdate_range("2015-01-01", periods=n)), stress


def _raw_labels(model: RegimeModel, frame: pd.DataFrame) -> np.ndarray:
    z, _ = model.standardise(frame)
    post, _ = model.cluster_posterior(z)
    return np.asarray(model.labels)[np.argmax(model.label_posterior(post), axis=1)]


def _posterior(model: RegimeModel, frame: pd.DataFrame) -> np.ndarray:
    z, _ = model.standardise(frame)
    return model.label_posterior(model.cluster_posterior(z, model.temperature)[0])


FOUR_FEATURES = ["implied_vol", "vol_short", "credit_level", "ret_short"]


def _config() -> RegimeConfig:
    return RegimeConfig(model={"features": FOUR_FEATURES})


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, np.ndarray, RegimeModel]:
    frame, stress = _regime_features()
    return frame, stress, fit_regime_model(frame, frame.index[-1], _config())


def test_fallback_features_complete_a_thin_feature_set() -> None:
    frame, _ = _regime_features()
    frame = frame.drop(columns=["credit_level"])
    config = RegimeConfig(model={"features": ["implied_vol", "credit_level"]})
    model = fit_regime_model(frame, frame.index[-1], config)
    assert model.features == ["implied_vol", "vol_short", "ret_short"]


def test_default_features_take_what_an_index_alone_gives() -> None:
    """Index-only data (no cross-section, no macro): the prototypes are fitted on the index's
    volatility, drawdown and trend, and stress blocks come out risk-off."""
    frame, stress = _regime_features()
    frame = frame[["vol_short", "ret_short"]].assign(
        drawdown=np.where(stress, -0.15, -0.01)
        * np.exp(np.random.default_rng(4).normal(0, 0.1, len(frame))))
    model = fit_regime_model(frame, frame.index[-1], RegimeConfig())
    assert model.features == ["vol_short", "drawdown", "ret_short"]
    raw = _raw_labels(model, frame)
    assert np.mean(np.isin(raw[stress], RISK_OFF_LABELS)) > 0.9
    assert np.mean(np.isin(raw[~stress], RISK_OFF_LABELS)) < 0.05


def test_model_uses_the_configured_features(fitted) -> None:
    frame, _, model = fitted
    assert model.features == ["implied_vol", "vol_short", "credit_level", "ret_short"]
    assert model.log_features == ["implied_vol", "vol_short", "credit_level"]
    assert model.training_rows == len(frame)
    assert model.first_training_date == "2015-01-01"


def test_calm_days_are_labelled_risk_on_low_vol(fitted) -> None:
    frame, stress, model = fitted
    raw = _raw_labels(model, frame)
    assert np.mean(raw[~stress] == "RISK_ON_LOW_VOL") > 0.9


def test_stress_days_are_labelled_risk_off(fitted) -> None:
    frame, stress, model = fitted
    raw = _raw_labels(model, frame)
    assert np.mean(np.isin(raw[stress], RISK_OFF_LABELS)) > 0.9


def test_model_transition_is_a_stochastic_matrix(fitted) -> None:
    _, _, model = fitted
    t = np.asarray(model.transition)
    assert t.shape == (len(model.labels), len(model.labels))
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-12)
    assert np.diag(t)[model.labels.index("RISK_ON_LOW_VOL")] > 0.9


def test_model_json_round_trip(fitted, tmp_path) -> None:
    frame, _, model = fitted
    again = RegimeModel.from_json(model.to_json())
    assert again == model
    np.testing.assert_array_equal(_posterior(again, frame), _posterior(model, frame))
    loaded = RegimeModel.load(model.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(_posterior(loaded, frame), _posterior(model, frame))


def test_inference_is_row_independent(fitted) -> None:
    frame, _, model = fitted
    batch = _posterior(model, frame)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, rtol=1e-12)
    for i in (0, 1, 150, 333, 599):
        np.testing.assert_array_equal(_posterior(model, frame.iloc[[i]]), batch[[i]])
    perm = np.random.default_rng(0).permutation(len(frame))
    np.testing.assert_array_equal(_posterior(model, frame.iloc[perm]), batch[perm])


def test_missing_feature_is_imputed_at_the_training_mean(fitted) -> None:
    frame, _, model = fitted
    row = frame.iloc[[5]].copy()
    row["credit_level"] = np.nan
    z, missing = model.standardise(row)
    assert missing[0].tolist() == [False, False, True, False]
    assert z[0, 2] == 0.0


def test_embedding_is_unit_norm_and_keeps_cosines(fitted) -> None:
    frame, _, model = fitted
    z, _ = model.standardise(frame.iloc[:50])
    e = model.embedding(z)
    assert e.shape == (50, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-12)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(e @ e.T, zn @ zn.T, atol=1e-12)
    np.testing.assert_array_equal(model.embedding(np.zeros((1, 4))), np.zeros((1, 384)))


def test_too_little_history_is_a_training_error() -> None:
    cfg = RegimeConfig()
    frame, _ = _regime_features(n=cfg.refit.min_training_sessions - 1)
    with pytest.raises(RegimeTrainingError, match="min_training_sessions"):
        fit_regime_model(frame, frame.index[-1], cfg)


def test_fit_uses_rows_up_to_trained_through_only(fitted) -> None:
    frame, _, _ = fitted
    cut = frame.index[399]
    changed_future = frame.copy()
    changed_future.iloc[400:] = changed_future.iloc[400:].to_numpy()[::-1] * 3
    a = fit_regime_model(frame, cut, _config())
    b = fit_regime_model(changed_future, cut, _config())
    assert a.training_rows == 400 and a.trained_through == str(cut.date())
    assert a.to_json() == b.to_json()


def test_fit_is_deterministic(fitted) -> None:
    frame, _, model = fitted
    assert fit_regime_model(frame, frame.index[-1], _config()).to_json() == model.to_json()


def test_assign_regimes_smooths_raw_labels_causally(fitted) -> None:
    frame, _, model = fitted
    cfg = _config()
    models = {d: ("m1", model) for d in frame.index[200:]}
    rows = assign_regimes("US_EQ", frame, models, cfg, "regime@test")
    assert len(rows) == 400
    assert list(rows["regime_label"]) == smooth_labels(
        list(rows["raw_label"]), cfg.min_regime_duration_days, cfg.confirmation_days)
    np.testing.assert_array_equal(rows["raw_label"], _raw_labels(model, frame.iloc[200:]))
    assert rows["confidence"].between(0, 1).all()
    head = assign_regimes("US_EQ", frame.iloc[:350], models, cfg, "regime@test")
    assert list(head["regime_label"]) == list(rows["regime_label"].iloc[:150])


# --- evaluation --------------------------------------------------------------------------
def test_risk_off_balanced_accuracy_hand_example() -> None:
    d = pd.bdate_range("2024-01-01", periods=10)
    truth = pd.Series(["CALM", "CALM", "CALM", "CALM", "GRINDING", "GRINDING", "CRASH",
                       "RECOVERY", "CALM", "CRASH"], index=d)
    pred = pd.Series(["RISK_ON_LOW_VOL", "RISK_ON_HIGH_VOL", "RISK_OFF_GRINDING",
                      "RISK_ON_LOW_VOL", "RISK_OFF_GRINDING", "TRANSITION", "RISK_OFF_PANIC",
                      "RISK_OFF_PANIC", None], index=d[:9])
    got = risk_off_balanced_accuracy(pred, truth)
    assert got == pytest.approx({
        "risk_off_recall": 2 / 3, "calm_not_risk_off": 3 / 4, "calm_low_vol": 2 / 4,
        "balanced_accuracy": (2 / 3 + 3 / 4) / 2, "strict_balanced_accuracy": (2 / 3 + 1 / 2) / 2,
        "risk_off_sessions": 3.0, "calm_sessions": 4.0,
    }, rel=1e-12)


def test_risk_off_balanced_accuracy_needs_risk_off_truth() -> None:
    d = pd.bdate_range("2024-01-01", periods=4)
    truth = pd.Series(["CALM", "CALM", "RECOVERY", "CALM"], index=d)
    pred = pd.Series(["RISK_ON_LOW_VOL"] * 4, index=d)
    with pytest.raises(ValueError, match="risk-off"):
        risk_off_balanced_accuracy(pred, truth)


# --- config ------------------------------------------------------------------------------
def test_window_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="window"):
        validate_config({"engine": "regime", "version": "1", "window": 3})


def test_unknown_macro_role_is_a_config_error() -> None:
    body = {"engine": "regime", "version": "1",
            "regions": {"US_EQ": {"macro": {"implied_vol": ["VIX"], "volatility": ["VIX"]}}}}
    with pytest.raises(ConfigError, match="volatility"):
        validate_config(body)


def test_shipped_config_loads() -> None:
    loaded = load_engine_config("regime")
    cfg = loaded.config
    assert isinstance(cfg, RegimeConfig)
    assert cfg.window == 63 and cfg.short_window == 21
    assert cfg.regions["GLOBAL"].members == ()  # derived from configs/markets.yaml
    assert cfg.regions["US_EQ"].macro["implied_vol"] == ("US_IMPLIED_VOL", "VIX")
    assert loaded.config_id.startswith("regime@1-")


def test_regions_are_derived_from_the_market_declarations() -> None:
    from prometheus_dagster.steps.regime import regime_regions

    regions = regime_regions(["US_EQ", "EU_EQ", "FX_GLOB"])
    assert list(regions) == ["US_EQ", "EU_EQ", "FX_GLOB", "GLOBAL"]
    assert regions["GLOBAL"].members == ("US_EQ", "EU_EQ")
    assert regime_regions(["US_EQ"])["GLOBAL"].members == ("US_EQ",)
    assert "FX_GLOB" not in regime_regions(["US_EQ", "EU_EQ"])


def test_a_day_beyond_every_prototype_is_labelled_from_its_own_stress() -> None:
    """Prototypes fitted on calm years only; a crash-level day is far from all of them and is
    named from its own characteristics (risk-off), not by the nearest calm cluster."""
    frame, stress = _regime_features()
    calm = frame[~stress]
    model = fit_regime_model(calm, calm.index[-1], _config())
    assert set(model.labels) <= {"RISK_ON_LOW_VOL", "RISK_ON_HIGH_VOL", "TRANSITION"}
    crash = calm.iloc[[-1]].copy()
    crash.index = [calm.index[-1] + pd.Timedelta(days=1)]
    crash[["implied_vol", "vol_short", "credit_level", "ret_short"]] = [70.0, 0.6, 3.5, -0.2]
    both = pd.concat([calm, crash])
    models = {d: ("m1", model) for d in both.index}
    rows = assign_regimes("US_EQ", both, models, _config(), "regime@test")
    last = rows.iloc[-1]
    assert last["raw_label"] in RISK_OFF_LABELS
    assert last["diagnostics"]["out_of_range"] is True
    # stress beyond every prototype is labelled at once (no confirmation), and the farther it
    # lies the surer the label: not a coin flip, nor the nearest calm prototype
    assert last["regime_label"] in RISK_OFF_LABELS
    assert last["confidence"] > _config().model.outlier_probability
    assert not any(d["out_of_range"] for d in rows["diagnostics"].iloc[:-1])
    assert set(rows["regime_label"].iloc[:-1]) <= set(model.labels)


def test_a_calm_only_history_keeps_calm_days_calm() -> None:
    """Prototypes fitted on calm years only: the calm half is narrow, so the upper tail of
    calm lies many of its dispersions above it, yet its vol is barely higher; it must not be
    named risk-off, and neither must fresh calm days."""
    frame, stress = _regime_features()
    calm = frame[~stress]
    model = fit_regime_model(calm, calm.index[-1], _config())
    assert not set(model.labels) & set(RISK_OFF_LABELS)
    assert all(c["excess"] < model.labelling["risk_off_excess"]
               for c in model.cluster_characteristics)
    fresh, fresh_stress = _regime_features(seed=5)
    raw = _raw_labels(model, fresh[~fresh_stress])
    assert np.mean(raw == "RISK_ON_LOW_VOL") > 0.95


def test_out_of_range_confidence_grows_with_distance() -> None:
    frame, stress = _regime_features()
    calm = frame[~stress]
    model = fit_regime_model(calm, calm.index[-1], _config())
    days = []
    for k, scale in enumerate((2.0, 3.0, 6.0)):
        day = calm.iloc[[-1]].copy()
        day.index = [calm.index[-1] + pd.Timedelta(days=10 * (k + 1))]
        day[["implied_vol", "vol_short", "credit_level", "ret_short"]] = [
            12.0 * scale, 0.1 * scale, 1.0 * scale ** 0.5, -0.03 * scale]
        days.append(day)
    both = pd.concat([calm, *days])
    rows = assign_regimes("US_EQ", both, {d: ("m1", model) for d in both.index}, _config(),
                          "regime@test").tail(3)
    assert all(d["out_of_range"] for d in rows["diagnostics"])
    assert rows["raw_label"].isin(RISK_OFF_LABELS).all()
    conf = rows["confidence"].to_numpy()
    assert np.all(np.diff(conf) >= 0) and conf[-1] > 0.999


def test_feature_weights_come_from_the_config() -> None:
    """A feature's weight multiplies its z-score in the mixture; a weight near zero makes a
    model blind to that feature, and changing a weight changes the config id."""
    frame, stress = _regime_features()
    noisy = frame.copy()
    # a slow series that is high on random calm months and tells nothing about stress
    months = noisy.index.to_period("M")
    rng = np.random.default_rng(8)
    wild = {m: rng.choice([1.0, 3.0]) for m in months.unique()}
    noisy["credit_level"] = [wild[m] for m in months]
    heavy = RegimeConfig(model={"features": FOUR_FEATURES,
                                "feature_weights": {"credit_level": 3.0}})
    light = RegimeConfig(model={"features": FOUR_FEATURES,
                                "feature_weights": {"credit_level": 0.05}})
    m_light = fit_regime_model(noisy, noisy.index[-1], light)
    assert m_light.feature_weights == [1.0, 1.0, 0.05, 1.0]
    z, _ = m_light.standardise(noisy.iloc[[0]])
    plain = (np.log(noisy["credit_level"].iloc[0]) - m_light.mean[2]) / m_light.scale[2]
    assert z[0, 2] == pytest.approx(0.05 * plain)
    m_heavy = fit_regime_model(noisy, noisy.index[-1], heavy)
    raw = _raw_labels(m_light, noisy)
    assert np.mean(np.isin(raw[stress], RISK_OFF_LABELS)) > 0.9
    assert np.mean(raw[~stress] == "RISK_ON_LOW_VOL") > 0.95
    # how much the calm days' prototypes follow the slow series: nothing when it weighs
    # little, a split of calm months by it when it weighs much
    follows = {}
    for name, m in (("light", m_light), ("heavy", m_heavy)):
        z, _ = m.standardise(noisy)
        cluster = m.cluster_posterior(z)[0].argmax(axis=1)
        follows[name] = adjusted_mutual_info_score(noisy["credit_level"][~stress],
                                                   cluster[~stress])
    assert follows["light"] < 0.1 and follows["heavy"] > 0.4
    ids = {validate_config({"engine": "regime", "model": {"feature_weights": w}}).config_id
           for w in ({"credit_level": 0.5}, {"credit_level": 0.25})}
    assert len(ids) == 2


def test_unknown_or_negative_feature_weight_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown feature"):
        validate_config({"engine": "regime", "model": {"feature_weights": {"credit": 1.0}}})
    with pytest.raises(ConfigError, match=">= 0"):
        validate_config({"engine": "regime",
                         "model": {"labelling": {"stress_weights": {"vol_short": -1.0}}}})


def test_urgent_stress_switches_without_confirmation_but_after_min_duration() -> None:
    raw = list("AAAAAAAB") + list("BBBBBB")
    urgent = [False] * 7 + [True] + [False] * 6
    assert smooth_labels(raw, 3, 2, urgent)[7] == "B"
    assert smooth_labels(raw, 3, 2)[7] == "A"
    # a state younger than the minimum duration is still held
    assert smooth_labels(list("AABBB"), 3, 2, [False, False, True, False, False])[:3] == \
        ["A", "A", "A"]
