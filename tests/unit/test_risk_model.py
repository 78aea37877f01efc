"""Risk engine: the point-in-time factor risk model B F B' + D, scored on returns simulated from
a known factor model."""

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError, DataSchemaError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.risk import (
    FactorRiskModel,
    InsufficientHistoryError,
    RiskModelConfig,
    RiskModelInputs,
    estimate_risk_model,
    estimate_risk_models,
    risk_model_frames,
    risk_model_from_frames,
)
from prometheus_dagster.engines.risk.stats import (
    ewma_weights,
    floor_eigenvalues,
    weighted_column_variance,
    weighted_covariance,
)

CFG = RiskModelConfig()
MARKET = "US_EQ"
FACTORS = ["MARKET", "SIZE", "VALUE"]
N_NAMES, N_SESSIONS = 40, 400
TRUE_VOLS = np.array([0.18, 0.08, 0.06])
TRUE_CORR = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 1.0]])
TRUE_F = TRUE_CORR * np.outer(TRUE_VOLS, TRUE_VOLS)  # annualised


def simulate(seed: int = 11) -> dict:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=N_SESSIONS)
    ids = [f"I{i:02d}" for i in range(N_NAMES)]
    b = np.column_stack([rng.normal(1.0, 0.25, N_NAMES), rng.normal(0.0, 0.7, N_NAMES),
                         rng.normal(0.0, 0.7, N_NAMES)])
    spec_vol = rng.uniform(0.15, 0.40, N_NAMES)
    f = rng.standard_normal((N_SESSIONS, 3)) @ np.linalg.cholesky(TRUE_F / 252).T
    eps = rng.standard_normal((N_SESSIONS, N_NAMES)) * spec_vol / np.sqrt(252)
    r = f @ b.T + eps
    returns = pd.DataFrame({"instrument_id": np.tile(ids, N_SESSIONS),
                            "date": np.repeat(dates, N_NAMES), "ret_1d": r.ravel()})
    factor_returns = pd.DataFrame({"factor_id": np.tile(FACTORS, N_SESSIONS),
                                   "date": np.repeat(dates, 3), "value": f.ravel()})
    exposures = pd.DataFrame({
        "instrument_id": np.tile(np.repeat(ids, 3), N_SESSIONS),
        "date": np.repeat(dates, N_NAMES * 3),
        "factor_id": np.tile(FACTORS, N_NAMES * N_SESSIONS),
        "exposure": np.tile(b.ravel(), N_SESSIONS),
    })
    return {"dates": dates, "ids": ids, "b": b, "spec_vol": spec_vol, "r": r,
            "inputs": RiskModelInputs(returns, factor_returns, exposures)}


@pytest.fixture(scope="module")
def sim() -> dict:
    return simulate()


@pytest.fixture(scope="module")
def last_model(sim) -> FactorRiskModel:
    return estimate_risk_model(MARKET, sim["dates"][-1], sim["inputs"], CFG)


def assert_same_model(a: FactorRiskModel, b: FactorRiskModel) -> None:
    assert (a.market_id, a.as_of_date) == (b.market_id, b.as_of_date)
    assert a.instrument_ids == b.instrument_ids and a.factor_ids == b.factor_ids
    np.testing.assert_array_equal(a.exposures, b.exposures)
    np.testing.assert_array_equal(a.factor_cov, b.factor_cov)
    np.testing.assert_array_equal(a.specific_var, b.specific_var)
    assert a.notes == b.notes


# --- estimators -------------------------------------------------------------------------------

def test_equal_weights_reproduce_sample_covariance_and_half_life_halves_weight():
    x = np.random.default_rng(0).standard_normal((50, 3))
    np.testing.assert_allclose(weighted_covariance(x, ewma_weights(50, None)),
                               np.cov(x, rowvar=False), rtol=1e-12)
    w = ewma_weights(50, 10.0)
    assert w[-1] == 1.0 and w[-11] == pytest.approx(0.5)
    col = x.copy()
    col[:10, 1] = np.nan
    var, count = weighted_column_variance(col, ewma_weights(50, None))
    assert count.tolist() == [50, 40, 50]
    assert var[1] == pytest.approx(np.var(x[10:, 1], ddof=1))


def test_eigenvalue_floor_makes_an_indefinite_matrix_psd():
    bad = np.array([[1.0, 0.99, 0.0], [0.99, 1.0, 0.99], [0.0, 0.99, 1.0]])
    assert np.linalg.eigvalsh(bad).min() < 0
    fixed, changed = floor_eigenvalues(bad, 1e-3)
    assert changed and np.allclose(fixed, fixed.T)
    assert np.linalg.eigvalsh(fixed).min() >= 1e-3 * np.trace(bad) / 3 - 1e-12
    same, changed = floor_eigenvalues(np.eye(3), 1e-3)
    assert not changed and np.array_equal(same, np.eye(3))


# --- recovery of a known factor model --------------------------------------------------------

def test_recovers_factor_and_specific_risk_of_the_simulated_market(sim, last_model):
    m = last_model
    assert m.factor_ids == FACTORS and m.instrument_ids == sim["ids"]
    np.testing.assert_array_equal(m.exposures, sim["b"])
    # EWMA(90) over 252 sessions: ~190 effective observations, ~5% standard error on a vol.
    est_vols = np.sqrt(np.diag(m.factor_cov))
    np.testing.assert_allclose(est_vols, TRUE_VOLS, rtol=0.15)
    est_spec = np.sqrt(m.specific_var)
    assert np.median(est_spec) == pytest.approx(np.median(sim["spec_vol"]), rel=0.15)
    assert np.corrcoef(est_spec, sim["spec_vol"])[0, 1] > 0.8
    assert m.notes["factor_sessions"] == 252 and m.notes["specific_sessions"] == 126
    assert m.notes["excluded"] == {} and m.notes["instruments"] == {}

    w = np.full(N_NAMES, 1.0 / N_NAMES)
    model_vol = np.sqrt(m.portfolio_variance(w))
    realised_vol = np.std(sim["r"][-252:] @ w, ddof=1) * np.sqrt(252)
    true_vol = np.sqrt(w @ (sim["b"] @ TRUE_F @ sim["b"].T + np.diag(sim["spec_vol"] ** 2)) @ w)
    assert model_vol == pytest.approx(realised_vol, rel=0.10)
    assert model_vol == pytest.approx(true_vol, rel=0.15)


def test_covariance_is_symmetric_psd_and_matches_factor_form(last_model):
    m = last_model
    cov = m.covariance()
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), m.total_vols(), rtol=1e-12)
    rng = np.random.default_rng(3)
    for w in (rng.normal(size=N_NAMES), np.full(N_NAMES, 1.0 / N_NAMES)):
        assert m.portfolio_variance(w) == pytest.approx(w @ cov @ w, abs=1e-10)
        np.testing.assert_allclose(m.factor_exposures(w), m.exposures.T @ w, rtol=1e-12)
        dec = m.risk_decomposition(w)
        assert dec["total_variance"] == pytest.approx(m.portfolio_variance(w), abs=1e-12)
        assert dec["factor_variance"] + dec["specific_variance"] == pytest.approx(
            dec["total_variance"], abs=1e-14)
        assert sum(dec["factor_contributions"].values()) == pytest.approx(
            dec["factor_variance"], abs=1e-12)
        assert list(dec["factor_contributions"]) == FACTORS
    with pytest.raises(ValueError, match="shape"):
        m.portfolio_variance(np.ones(3))


def test_as_arrays_follow_the_requested_instrument_order(last_model):
    b, f, d = last_model.as_arrays(["I05", "I01"])
    np.testing.assert_array_equal(b, last_model.exposures[[5, 1]])
    np.testing.assert_array_equal(d, last_model.specific_var[[5, 1]])
    assert f is last_model.factor_cov
    with pytest.raises(KeyError, match="NOPE"):
        last_model.as_arrays(["I01", "NOPE"])


# --- point in time ----------------------------------------------------------------------------

def test_data_after_the_date_changes_nothing(sim):
    day = sim["dates"][300]
    inp = sim["inputs"]
    base = estimate_risk_model(MARKET, day, inp, CFG)

    def wild(frame: pd.DataFrame, col: str) -> pd.DataFrame:
        out = frame.copy()
        after = out["date"] > day
        out.loc[after, col] = out.loc[after, col] * 50 + 3
        new = out[after].head(5).assign(instrument_id="NEW") if "instrument_id" in out else None
        return pd.concat([out, new]) if new is not None else out

    future = RiskModelInputs(wild(inp.returns, "ret_1d"), wild(inp.factor_returns, "value"),
                             wild(inp.exposures, "exposure"))
    truncated = RiskModelInputs(*(f[f["date"] <= day] for f in
                                  (inp.returns, inp.factor_returns, inp.exposures)))
    assert_same_model(base, estimate_risk_model(MARKET, day, future, CFG))
    assert_same_model(base, estimate_risk_model(MARKET, day, truncated, CFG))
    assert base.notes["last_session"] == str(day.date())


def test_backfill_equals_per_date_calls_exactly(sim):
    days = list(sim["dates"][[399, 100, 250, 64, 200]])
    early = sim["dates"][10]
    models = estimate_risk_models(MARKET, [*days, early], sim["inputs"], CFG)
    assert [m.as_of_date for m in models] == sorted(days)  # the early date is skipped
    for m in models:
        assert_same_model(m, estimate_risk_model(MARKET, m.as_of_date, sim["inputs"], CFG))
    with pytest.raises(InsufficientHistoryError, match="min_factor_history"):
        estimate_risk_model(MARKET, early, sim["inputs"], CFG)


# --- degraded inputs --------------------------------------------------------------------------

def degraded(sim) -> tuple[pd.Timestamp, RiskModelInputs]:
    day = sim["dates"][-1]
    inp = sim["inputs"]
    ex = inp.exposures
    on_day = ex["date"] == day
    drop = on_day & ((ex["instrument_id"] == "I05")
                     | ((ex["instrument_id"] == "I06") & (ex["factor_id"] == "SIZE")))
    ex = ex[~drop]
    ghost = pd.DataFrame({"instrument_id": "GHOST", "date": day, "factor_id": FACTORS,
                          "exposure": [1.0, 0.0, 0.0]})
    ret = inp.returns
    short = ret["instrument_id"].isin(["I07", "I08"]) & (ret["date"] < sim["dates"][-20])
    return day, RiskModelInputs(ret[~short], inp.factor_returns, pd.concat([ex, ghost]))


def test_missing_exposures_short_history_and_no_returns_are_noted(sim, last_model):
    day, inp = degraded(sim)
    m = estimate_risk_model(MARKET, day, inp, CFG)
    notes = m.notes["instruments"]
    assert "GHOST" not in m.instrument_ids
    assert m.notes["excluded"] == {"GHOST": "no returns on or before the date"}
    assert m.instrument_ids == sim["ids"]

    i05, i06 = sim["ids"].index("I05"), sim["ids"].index("I06")
    cross = np.vstack([sim["b"], [1.0, 0.0, 0.0]])  # GHOST's exposures count in the median
    cross[i05] = np.nan
    cross[i06, 1] = np.nan
    med = np.nanmedian(cross, axis=0)
    np.testing.assert_array_equal(m.exposures[i05], med)
    assert m.exposures[i06, 1] == med[1]
    np.testing.assert_array_equal(m.exposures[i06, [0, 2]], sim["b"][i06, [0, 2]])
    assert notes["I05"].startswith("median exposure for MARKET, SIZE, VALUE")
    assert notes["I06"].startswith("median exposure for SIZE (")

    i07, i08 = sim["ids"].index("I07"), sim["ids"].index("I08")
    assert notes["I07"] == "median specific variance (20 residuals, min_history 63)"
    assert m.specific_var[i07] == m.specific_var[i08]
    own = np.delete(m.specific_var, [i07, i08])
    assert own.min() < m.specific_var[i07] < own.max()

    chosen = estimate_risk_model(MARKET, day, inp, CFG, instrument_ids=["I01", "NOPE", "I00"])
    assert chosen.instrument_ids == ["I00", "I01"]
    assert chosen.notes["excluded"] == {"NOPE": "no returns on or before the date"}


def test_factors_without_exposures_or_returns_are_dropped_and_noted(sim, last_model):
    inp = sim["inputs"]
    day = sim["dates"][-1]
    momentum = inp.factor_returns[inp.factor_returns["factor_id"] == "SIZE"].assign(
        factor_id="MOMENTUM")
    quality = inp.exposures[inp.exposures["date"] == day].drop_duplicates(
        "instrument_id").assign(factor_id="QUALITY")
    extra = RiskModelInputs(inp.returns, pd.concat([momentum, inp.factor_returns]),
                            pd.concat([inp.exposures, quality]))
    m = estimate_risk_model(MARKET, day, extra, CFG)
    assert m.factor_ids == FACTORS
    assert m.notes["dropped_factors"] == {"MOMENTUM": "no exposures on the date",
                                          "QUALITY": "no factor returns in the window"}
    np.testing.assert_array_equal(m.factor_cov, last_model.factor_cov)


def test_specific_floor_and_no_exposures_on_the_date(sim):
    cfg = RiskModelConfig(min_specific_vol=0.5)
    m = estimate_risk_model(MARKET, sim["dates"][-1], sim["inputs"], cfg)
    np.testing.assert_array_equal(m.specific_var, np.full(N_NAMES, 0.25))
    with pytest.raises(InsufficientHistoryError, match="no exposures dated"):
        estimate_risk_model(MARKET, pd.Timestamp("2022-06-04"), sim["inputs"], CFG)  # Saturday


def test_bad_input_frames_raise_named_errors(sim):
    inp = sim["inputs"]
    with pytest.raises(DataSchemaError, match="returns: missing column"):
        estimate_risk_model(MARKET, sim["dates"][-1],
                            RiskModelInputs(inp.returns.drop(columns="ret_1d"),
                                            inp.factor_returns, inp.exposures), CFG)
    dup = pd.concat([inp.factor_returns, inp.factor_returns.tail(1)])
    with pytest.raises(DataSchemaError, match="factor_returns: duplicate key"):
        estimate_risk_model(MARKET, sim["dates"][-1],
                            RiskModelInputs(inp.returns, dup, inp.exposures), CFG)


# --- tables -----------------------------------------------------------------------------------

def test_frames_validate_and_round_trip(sim):
    day, inp = degraded(sim)
    models = estimate_risk_models(MARKET, [sim["dates"][300], day], inp, CFG)
    factor_df, specific_df = risk_model_frames(models, "risk@1-test")
    validate_frame("risk_factor_covariance", factor_df)
    validate_frame("risk_specific", specific_df)
    assert len(factor_df) == 2 * 3 and len(specific_df) == 2 * N_NAMES
    for m in models:
        f_rows = factor_df[factor_df["as_of_date"] == m.as_of_date]
        s_rows = specific_df[specific_df["as_of_date"] == m.as_of_date]
        back = risk_model_from_frames(f_rows, s_rows)
        assert back.instrument_ids == m.instrument_ids and back.factor_ids == m.factor_ids
        np.testing.assert_array_equal(back.exposures, m.exposures)
        np.testing.assert_array_equal(back.factor_cov, m.factor_cov)
        np.testing.assert_allclose(back.specific_var, m.specific_var, rtol=1e-14)
        assert back.notes == m.notes
        np.testing.assert_allclose(s_rows["total_vol"], m.total_vols(), rtol=1e-14)
    with pytest.raises(DataSchemaError, match="one market and date"):
        risk_model_from_frames(factor_df, specific_df)


# --- config -----------------------------------------------------------------------------------

def test_default_yaml_equals_model_defaults_and_bad_values_are_named():
    loaded = load_engine_config("risk")
    assert loaded.config == RiskModelConfig()
    assert loaded.config_id.startswith("risk@1-")
    base = {"engine": "risk", "version": "1"}
    for field, value in (("factor_window", 1), ("shrinkage", 1.5), ("factor_half_life", 0),
                         ("min_specific_vol", -0.1), ("annualisation", 0), ("bogus", 1)):
        with pytest.raises(ConfigError, match=field):
            validate_config({**base, field: value})
    with pytest.raises(ConfigError, match="min_history"):
        validate_config({**base, "min_history": 200})
    with pytest.raises(ConfigError, match="min_factor_history"):
        validate_config({**base, "factor_window": 50})
