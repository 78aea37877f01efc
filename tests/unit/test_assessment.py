"""Assessment engine: point-in-time features, forward labels, the purged and embargoed
LightGBM combination model, walk-forward validation and the instrument_scores rows."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError, DataSchemaError, PrometheusError
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.assessment import (
    INSTRUMENT_SCORES,
    AssessmentConfig,
    AssessmentInputError,
    AssessmentInputs,
    AssessmentModel,
    AssessmentTrainingError,
    assessment_features,
    evaluate_predictions,
    fit_assessment_model,
    forward_labels,
    instrument_score_rows,
    raw_features,
    standardise,
    training_cut,
    walk_forward_predictions,
)
from prometheus_dagster.engines.assessment import evaluation as evaluation_module
from prometheus_dagster.engines.assessment.config import SignalConfig
from prometheus_dagster.engines.assessment.scores import long_penalty, signal_labels

SESSIONS = pd.bdate_range("2020-01-01", periods=300)
D = SESSIONS[-1]                                   # 2021-02-23
NAMES = [f"EQUITY:N{i}" for i in range(6)]
ISSUERS = {n: f"ISS:N{i}" for i, n in enumerate(NAMES)}


# --- a small market built by hand ---------------------------------------------------------
def market(seed: int = 0) -> AssessmentInputs:
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0005, 0.015, (len(SESSIONS), len(NAMES)))
    rets[0] = np.nan
    close = 20.0 * np.cumprod(np.nan_to_num(rets) + 1.0, axis=0)
    prices, returns = [], []
    for j, n in enumerate(NAMES):
        prices.append(pd.DataFrame({"instrument_id": n, "date": SESSIONS, "close": close[:, j]}))
        returns.append(pd.DataFrame({"instrument_id": n, "date": SESSIONS,
                                     "ret_1d": rets[:, j]}))
    prices.append(pd.DataFrame({"instrument_id": "INDEX:X", "date": SESSIONS,
                                "close": 100.0}))
    instruments = pd.DataFrame({"instrument_id": [*NAMES, "INDEX:X"],
                                "issuer_id": [*ISSUERS.values(), None],
                                "asset_class": ["EQUITY"] * len(NAMES) + ["INDEX"]})
    vol = pd.concat([pd.DataFrame({"instrument_id": n, "date": SESSIONS,
                                   "vol_63d": 0.2 + 0.02 * j, "drawdown": -0.05 * j})
                     for j, n in enumerate(NAMES)], ignore_index=True)
    liq = pd.concat([pd.DataFrame({"instrument_id": n, "date": SESSIONS,
                                   "adv_21d": 1e6 * (j + 1)}) for j, n in enumerate(NAMES)],
                    ignore_index=True)
    expo = pd.concat([pd.DataFrame({"instrument_id": n, "date": SESSIONS, "factor_id": f,
                                    "exposure": 0.8 + 0.1 * j + (0.5 if f == "SIZE" else 0)})
                      for j, n in enumerate(NAMES) for f in ("MARKET", "SIZE")],
                     ignore_index=True)
    fund = []
    for j, n in enumerate(NAMES):
        for pe, rd in (("2020-06-30", "2020-08-05"), ("2020-09-30", "2020-11-05")):
            fund.append({"issuer_id": ISSUERS[n], "period_end": pe, "report_date": rd,
                         "total_assets": 1000.0 * (j + 1), "total_liabilities": 500.0,
                         "equity": 500.0 + 50 * j, "revenue": 300.0, "ebitda": 30.0 + j,
                         "net_income": 10.0 + j, "operating_cash_flow": 12.0,
                         "free_cash_flow": 8.0 + j, "cash": 50.0, "short_term_debt": 20.0,
                         "long_term_debt": 100.0, "shares_outstanding": 100.0})
    divs = pd.DataFrame({"instrument_id": [NAMES[0]] * 3 + [NAMES[1]],
                         "date": pd.to_datetime(["2020-02-10", "2020-06-10", "2020-12-12",
                                                 "2020-09-01"]),
                         "value": [0.3, 0.5, 0.5, 0.2]})
    prof = pd.DataFrame({"issuer_id": list(ISSUERS.values()),
                         "as_of_date": D - pd.Timedelta(days=1),
                         "leverage_score": np.linspace(0.1, 0.7, 6),
                         "earnings_quality_score": np.linspace(0.2, 0.5, 6),
                         "liquidity_risk": 0.1, "profile_weakness": np.linspace(0.1, 0.6, 6),
                         "profile_embedding": [[0.1 * j, 0.2, 0.3, 0.4, 0.5] for j in range(6)]})
    stab = pd.DataFrame({"entity_type": ["ISSUER"] * 6 + ["SECTOR"],
                         "entity_id": [*ISSUERS.values(), "X:Tech"], "as_of_date": D,
                         "stability_score": [*np.linspace(0.3, 0.8, 6), 0.5]})
    frag = pd.concat([pd.DataFrame({"entity_type": "ISSUER", "entity_id": list(ISSUERS.values()),
                                    "as_of_date": D, "horizon_days": h,
                                    "soft_target_score": np.linspace(0.1, 0.6, 6) + k,
                                    "tail_probability": 0.4, "high_fragility": 0.3})
                      for k, h in ((0.0, 21), (0.2, 63))], ignore_index=True)
    regimes = pd.DataFrame({"as_of_date": [SESSIONS[-40], D - pd.Timedelta(days=2)],
                            "regime_label": ["RISK_ON_LOW_VOL", "RISK_OFF_PANIC"],
                            "confidence": [0.9, 0.7]})
    return AssessmentInputs(
        prices=pd.concat(prices, ignore_index=True), returns=pd.concat(returns, ignore_index=True),
        instruments=instruments, volatility=vol, liquidity=liq, exposures=expo,
        fundamentals=pd.DataFrame(fund), dividends=divs, profiles=prof, stability=stab,
        fragility=frag, regimes=regimes)


INPUTS = market()


# --- config -------------------------------------------------------------------------------
def test_yaml_config_is_the_default():
    loaded = load_engine_config("assessment")
    assert loaded.config == AssessmentConfig()
    assert loaded.config_id.startswith("assessment@1-")


@pytest.mark.parametrize("families, text", [
    ({"value": ["no_such_feature"]}, "unknown feature"),
    ({"macro": ["book_to_price"]}, "unknown family"),
    ({"value": ["fcf_yield"], "carry": ["fcf_yield"]}, "families value and carry"),
])
def test_bad_families_are_config_errors(families, text):
    with pytest.raises(ConfigError, match=text):
        validate_config({"engine": "assessment", "version": "1", "families": families})


def test_table_is_declared():
    schema = get_schema("instrument_scores")
    assert schema is INSTRUMENT_SCORES
    assert schema.primary_key == ("strategy_id", "instrument_id", "as_of_date", "horizon_days")
    assert (schema.partition_column, schema.market_column) == ("as_of_date", "market_id")


# --- features -----------------------------------------------------------------------------
def test_each_feature_matches_a_hand_computation():
    raw = raw_features(INPUTS, [D])
    assert list(raw["instrument_id"]) == NAMES          # equities only, sorted
    row = raw.iloc[0]
    px = INPUTS.prices
    close = px[px["instrument_id"] == NAMES[0]].set_index("date")["close"]
    t = len(SESSIONS) - 1
    c = close.to_numpy()
    assert row["mom_12_1"] == pytest.approx(c[t - 21] / c[t - 252] - 1)
    assert row["mom_6m"] == pytest.approx(c[t - 21] / c[t - 126] - 1)
    assert row["rev_1m"] == pytest.approx(-(c[t] / c[t - 21] - 1))
    # dividends of the last 252 sessions (the one dated on a Saturday counts from Monday)
    assert row["dividend_yield"] == pytest.approx((0.5 + 0.5) / c[t])
    cap = c[t] * 100.0  # the 2020-09-30 statement (reported 2020-11-05)
    assert row["book_to_price"] == pytest.approx(500.0 / cap)
    assert row["earnings_yield"] == pytest.approx(4 * 10.0 / cap)
    assert row["fcf_yield"] == pytest.approx(4 * 8.0 / cap)
    assert row["roe"] == pytest.approx(40.0 / 500.0)
    assert row["roa"] == pytest.approx(40.0 / 1000.0)
    assert row["gross_profitability"] == pytest.approx(120.0 / 1000.0)
    assert row["log_market_cap"] == pytest.approx(math.log(cap))
    assert row["neg_vol_63d"] == pytest.approx(-0.2)
    assert row["drawdown"] == pytest.approx(0.0)
    assert row["neg_market_beta"] == pytest.approx(-0.8)     # MARKET, not SIZE
    assert row["log_adv_21d"] == pytest.approx(math.log(1e6))
    assert row["earnings_quality"] == pytest.approx(0.8)
    assert row["balance_sheet_strength"] == pytest.approx(0.9)
    assert row["profile_weakness"] == pytest.approx(0.1)
    assert [row[f"profile_emb_{i}"] for i in range(4)] == pytest.approx([0.0, 0.2, 0.3, 0.4])
    assert row["stability_score"] == pytest.approx(0.3)
    assert row["soft_target_score"] == pytest.approx(0.1)    # the 21-session horizon
    assert row["tail_probability"] == pytest.approx(0.4)
    assert row["fragility_measure"] == pytest.approx(0.04)
    assert row["regime_stress"] == 1.0 and row["regime_confidence"] == pytest.approx(0.7)
    assert row["regime_label"] == "RISK_OFF_PANIC"
    assert row["notes"] is None


def test_statements_are_used_by_report_date_and_latest_period():
    fund = INPUTS.fundamentals.copy()
    extra = fund.iloc[[0]].assign(period_end="2020-03-31", report_date="2020-12-01",
                                  equity=9999.0)  # late restatement of an older period
    future = fund.iloc[[0]].assign(period_end="2020-12-31", report_date="2021-03-01",
                                   equity=7777.0)
    inputs = AssessmentInputs(**{**INPUTS.__dict__,
                                 "fundamentals": pd.concat([fund, extra, future])})
    row = raw_features(inputs, [D]).iloc[0]   # neither the restatement nor the future one
    assert row["book_to_price"] == raw_features(INPUTS, [D]).iloc[0]["book_to_price"]
    early = raw_features(inputs, [pd.Timestamp("2020-10-01")]).iloc[0]   # before 2020-11-05
    px = INPUTS.prices
    c = px[(px["instrument_id"] == NAMES[0]) & (px["date"] == "2020-10-01")]["close"].iloc[0]
    assert early["book_to_price"] == pytest.approx(500.0 / (c * 100.0))  # Q2 statement


def test_missing_optional_inputs_give_nan_features_and_notes():
    bare = AssessmentInputs(prices=INPUTS.prices, returns=INPUTS.returns,
                            instruments=INPUTS.instruments)
    raw = raw_features(bare, [D])
    assert len(raw) == len(NAMES)
    for col in ("book_to_price", "roe", "neg_vol_63d", "stability_score", "soft_target_score",
                "regime_stress", "profile_emb_0", "earnings_quality"):
        assert raw[col].isna().all(), col
    assert raw["mom_12_1"].notna().all()
    assert raw["dividend_yield"].eq(0).all()
    assert "no statement" in raw["notes"].iloc[0] and "no regime" in raw["notes"].iloc[0]
    feats = assessment_features(bare, [D])
    assert feats["book_to_price"].isna().all()


def test_standardise_rank_gauss_and_zscore():
    df = pd.DataFrame({"as_of_date": [D] * 4 + [SESSIONS[0]],
                       "x": [1.0, 3.0, 2.0, np.nan, 5.0]})
    out = standardise(df, ["x"])
    from scipy.stats import norm
    assert out["x"].iloc[:3].tolist() == pytest.approx(list(norm.ppf([0.5 / 3, 2.5 / 3,
                                                                      1.5 / 3])))
    assert np.isnan(out["x"].iloc[3]) and out["x"].iloc[4] == 0.0   # missing stays; lone -> 0
    z = AssessmentConfig.model_validate({"features": {"standardise": "zscore"}})
    out = standardise(df, ["x"], z)
    assert out["x"].iloc[:3].tolist() == pytest.approx([-1.2247449, 1.2247449, 0.0])


def test_look_ahead_invariance():
    d0 = SESSIONS[280]
    base = assessment_features(INPUTS, [d0])
    later = SESSIONS > d0
    px = INPUTS.prices.copy()
    px.loc[px["date"].isin(SESSIONS[later]), "close"] *= 3.0
    rets = INPUTS.returns.copy()
    rets.loc[rets["date"].isin(SESSIONS[later]), "ret_1d"] = 0.5
    extra_days = pd.bdate_range(D + pd.Timedelta(days=1), periods=5)
    px = pd.concat([px, pd.DataFrame({"instrument_id": NAMES[0], "date": extra_days,
                                      "close": 1.0})])
    fund = pd.concat([INPUTS.fundamentals, INPUTS.fundamentals.iloc[[0]].assign(
        period_end="2020-12-31", report_date=SESSIONS[290], equity=1.0)])
    changed = AssessmentInputs(**{**INPUTS.__dict__, "prices": px, "returns": rets,
                                  "fundamentals": fund,
                                  "regimes": INPUTS.regimes.assign(regime_label="TRANSITION")})
    after = assessment_features(changed, [d0])
    pd.testing.assert_frame_equal(base, after, check_exact=True)
    pd.testing.assert_frame_equal(base, assessment_features(INPUTS.truncated(d0), [d0]),
                                  check_exact=True)


def test_many_dates_at_once_equal_one_call_per_date():
    dates = SESSIONS[255::5]
    batch = assessment_features(INPUTS, dates)
    for d in dates[::2]:
        one = assessment_features(INPUTS.truncated(d), [d])
        part = batch[batch["as_of_date"] == d].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, one, check_exact=True)


def test_bad_input_raises_named_errors():
    with pytest.raises(AssessmentInputError, match="prices_daily lacks column.*close"):
        raw_features(AssessmentInputs(prices=INPUTS.prices.drop(columns="close"),
                                      returns=INPUTS.returns, instruments=INPUTS.instruments),
                     [D])
    dup = pd.concat([INPUTS.returns, INPUTS.returns.iloc[[5]]])
    with pytest.raises(DataSchemaError, match="returns_daily: duplicate key"):
        raw_features(AssessmentInputs(prices=INPUTS.prices, returns=dup,
                                      instruments=INPUTS.instruments), [D])
    fund = INPUTS.fundamentals.astype({"equity": object})
    fund.loc[0, "equity"] = "n/a"
    with pytest.raises(PrometheusError, match="fundamentals, column 'equity': 'n/a' is not"):
        raw_features(AssessmentInputs(**{**INPUTS.__dict__, "fundamentals": fund}), [D])
    with pytest.raises(AssessmentInputError, match="returns_daily is required"):
        raw_features(AssessmentInputs(prices=INPUTS.prices, returns=INPUTS.returns.iloc[:0],
                                      instruments=INPUTS.instruments), [D])


# --- labels -------------------------------------------------------------------------------
def test_forward_labels_by_hand():
    days = pd.bdate_range("2021-01-04", periods=6)
    r = {"A": [np.nan, 0.01, 0.02, -0.01, 0.03, 0.00],
         "B": [np.nan, 0.00, 0.01, 0.02, -0.02, 0.01]}
    rows = [{"instrument_id": k, "date": d, "ret_1d": v[i]} for k, v in r.items()
            for i, d in enumerate(days)]
    rows = [x for x in rows if not (x["instrument_id"] == "B" and x["date"] == days[3])]
    lab = forward_labels(pd.DataFrame(rows), [2])
    assert lab["as_of_date"].max() == days[3]          # whole horizon must be in the data
    a0 = lab[(lab["instrument_id"] == "A") & (lab["as_of_date"] == days[0])].iloc[0]
    b0 = lab[(lab["instrument_id"] == "B") & (lab["as_of_date"] == days[0])].iloc[0]
    assert a0["forward_return"] == pytest.approx(1.01 * 1.02 - 1)
    assert b0["forward_return"] == pytest.approx(1.00 * 1.01 - 1)
    assert a0["excess_return"] == pytest.approx(a0["forward_return"]
                                                - (a0["forward_return"] + b0["forward_return"]) / 2)
    assert a0["label_end_date"] == days[2]
    b2 = lab[(lab["instrument_id"] == "B") & (lab["as_of_date"] == days[2])].iloc[0]
    assert b2["forward_return"] == pytest.approx(0.98 - 1)   # the missing row is skipped
    assert not ((lab["instrument_id"] == "B") & (lab["as_of_date"] == days[3])).any()


# --- model --------------------------------------------------------------------------------
CFG = AssessmentConfig.model_validate({
    "horizons": [5],
    "families": {"value": ["book_to_price", "earnings_yield"], "momentum": ["mom_6m"],
                 "fragility": ["soft_target_score"], "context": ["log_adv_21d"]},
    "model": {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 7,
              "min_child_samples": 20},
    "refit": {"min_training_dates": 20, "min_training_rows": 200},
    "walk_forward": {"n_folds": 3, "embargo_sessions": 5}})
H = 5


def planted(n_dates: int = 160, n_names: int = 40, seed: int = 1):
    """Features with a planted signal: the excess return is 0.01 x book_to_price + noise."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2019-01-01", periods=n_dates + H)
    rows, labels = [], []
    for t, d in enumerate(days[:n_dates]):
        x = rng.standard_normal((n_names, 5))
        fwd = 0.01 * x[:, 0] + 0.01 * rng.standard_normal(n_names)
        for i in range(n_names):
            rows.append({"instrument_id": f"I{i:02d}", "issuer_id": f"S{i:02d}",
                         "as_of_date": d, "book_to_price": x[i, 0], "earnings_yield": x[i, 1],
                         "mom_6m": x[i, 2], "soft_target_score": x[i, 3],
                         "log_adv_21d": np.nan if i % 7 == 0 else x[i, 4],
                         "fragility_measure": 0.0, "regime_label": "CALM" if t % 2 else "STRESS",
                         "notes": None})
        labels.append(pd.DataFrame({"instrument_id": [f"I{i:02d}" for i in range(n_names)],
                                    "as_of_date": d, "horizon_days": H,
                                    "label_end_date": days[t + H], "forward_return": fwd,
                                    "excess_return": fwd - fwd.mean()}))
    return pd.DataFrame(rows), pd.concat(labels, ignore_index=True), days


FEATS, LABELS, DAYS = planted()


@pytest.fixture(scope="module")
def model() -> AssessmentModel:
    return fit_assessment_model(FEATS, LABELS, DAYS[120], CFG, sessions=DAYS)


def test_training_cut_counts_embargo_sessions():
    assert training_cut(DAYS, DAYS[120], 5) == DAYS[115]
    assert training_cut(DAYS, DAYS[120], 0) == DAYS[120]
    assert training_cut(DAYS, DAYS[2], 5) == DAYS[0]


def test_fit_is_purged_and_embargoed(model):
    m = model.horizons[H]
    # every training label ended before the session 5 sessions before valid_from
    assert pd.Timestamp(m.last_label_end) == DAYS[114]
    assert pd.Timestamp(model.trained_through) < DAYS[120] - pd.Timedelta(days=5)
    assert m.rows == 40 * (115 - H)
    assert model.first_training_date == str(DAYS[0].date())
    assert model.valid_from == str(DAYS[120].date())
    assert set(model.oos_metrics[H]) >= {"mean_rank_ic", "ic_t_stat", "hit_rate",
                                         "decile_means", "decile_spearman", "ic_by_regime"}


def test_too_little_history_is_a_training_error():
    with pytest.raises(AssessmentTrainingError, match="min_training_dates"):
        fit_assessment_model(FEATS, LABELS, DAYS[15], CFG, sessions=DAYS)


def test_walk_forward_never_trains_on_labels_overlapping_the_test_fold(monkeypatch):
    seen = []
    real = evaluation_module.train_booster

    def spy(rows, names, cfg):
        seen.append(pd.Timestamp(rows["label_end_date"].max()))
        return real(rows, names, cfg)

    monkeypatch.setattr(evaluation_module, "train_booster", spy)
    preds = walk_forward_predictions(FEATS, LABELS, CFG, H, sessions=DAYS)
    firsts = preds.groupby("fold")["as_of_date"].min()
    assert len(seen) == len(firsts) == 3
    for last_end, (fold, first) in zip(seen, firsts.items(), strict=True):
        k = DAYS.get_loc(first)
        assert last_end < DAYS[k - CFG.walk_forward.embargo_sessions], fold
        assert (preds.loc[preds["fold"] == fold, "train_cut"] == DAYS[k - 5]).all()


def test_planted_signal_is_recovered_out_of_sample():
    preds = walk_forward_predictions(FEATS, LABELS, CFG, H, sessions=DAYS)
    ev = evaluate_predictions(preds)
    assert ev["mean_rank_ic"] > 0.4 and ev["ic_t_stat"] > 10
    assert ev["decile_spearman"] == pytest.approx(1.0)
    assert np.all(np.diff(ev["decile_means"]) > 0)
    assert ev["hit_rate"] > 0.6
    assert set(ev["ic_by_regime"]) == {"CALM", "STRESS"}
    regimes = pd.DataFrame({"as_of_date": DAYS, "regime_label": "ALL"})
    assert evaluate_predictions(preds, regimes)["ic_by_regime"]["ALL"]["dates"] == ev["n_dates"]


def test_contributions_sum_to_the_prediction(model):
    pred = model.predict(FEATS)[H]
    contrib = model.contributions(FEATS)[H]
    assert list(contrib.columns) == [*CFG.families, "bias"]
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), pred, rtol=0, atol=1e-12)
    assert contrib["value"].abs().mean() > contrib["context"].abs().mean()


def test_a_family_without_any_value_is_left_out_and_named(model, tmp_path):
    # a prices-only market: no statements, so the value features are never known
    prices_only = FEATS.assign(book_to_price=np.nan, earnings_yield=np.nan)
    m = fit_assessment_model(prices_only, LABELS, DAYS[120], CFG, sessions=DAYS)
    assert set(m.left_out) == {"value"}
    assert "book_to_price, earnings_yield" in m.left_out["value"]
    assert "value" not in m.families and "book_to_price" not in m.features
    contrib = m.contributions(prices_only)[H]
    assert list(contrib.columns) == ["momentum", "fragility", "context", "bias"]
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), m.predict(prices_only)[H],
                               rtol=0, atol=1e-12)
    assert AssessmentModel.load(m.save(tmp_path / "m.json")).left_out == m.left_out
    assert model.left_out == {}  # with the statements, nothing is left out
    with pytest.raises(AssessmentTrainingError, match="no family has a feature value"):
        fit_assessment_model(FEATS.assign(**{f: np.nan for f in CFG.feature_names}), LABELS,
                             DAYS[120], CFG, sessions=DAYS)


def test_fit_is_deterministic(model):
    again = fit_assessment_model(FEATS, LABELS, DAYS[120], CFG, sessions=DAYS)
    assert again.horizons[H].booster == model.horizons[H].booster
    np.testing.assert_array_equal(again.predict(FEATS)[H], model.predict(FEATS)[H])


def test_save_load_round_trip(model, tmp_path):
    path = model.save(tmp_path / "assessment_model.json")
    json.loads(path.read_text())  # plain JSON (no NaN tokens)
    back = AssessmentModel.load(path)
    np.testing.assert_array_equal(back.predict(FEATS)[H], model.predict(FEATS)[H])
    assert back.families == model.families and back.features == model.features
    assert back.trained_through == model.trained_through
    assert back.oos_metrics[H]["mean_rank_ic"] == model.oos_metrics[H]["mean_rank_ic"]


# --- scores -------------------------------------------------------------------------------
def test_signal_labels_follow_the_quantile_cut_offs():
    got = signal_labels(np.array([0.0, 0.099, 0.1, 0.29, 0.3, 0.69, 0.7, 0.89, 0.9, 1.0]),
                        SignalConfig())
    assert list(got) == ["STRONG_SELL", "STRONG_SELL", "SELL", "SELL", "HOLD", "HOLD", "BUY",
                         "BUY", "STRONG_BUY", "STRONG_BUY"]


def test_instrument_score_rows(model):
    day = FEATS[FEATS["as_of_date"] == DAYS[150]]
    out = instrument_score_rows(day, model, strategy_id="S1", market_id="US_EQ",
                                config_id="assessment@1-x", model_id="m/1", config=CFG)
    assert list(out.columns) == INSTRUMENT_SCORES.column_names
    assert len(out) == len(day) and set(out["horizon_days"]) == {H}
    assert out["score"].between(0, 1).all() and out["confidence"].between(0, 1).all()
    assert out["score"].min() == 0 and out["score"].max() == 1
    assert (out["confidence"] > 0).any()   # the model has OOS skill
    ranked = out.sort_values("expected_return")
    assert ranked["score"].is_monotonic_increasing
    assert ranked["signal_label"].iloc[0] == "STRONG_SELL"
    assert ranked["signal_label"].iloc[-1] == "STRONG_BUY"
    assert (out["signal_label"] == "STRONG_SELL").sum() == 4    # scores below 0.1 of 40 names
    comp = json.loads(out["alpha_components"].iloc[0])
    assert sum(comp.values()) == pytest.approx(out["raw_expected_return"].iloc[0], abs=1e-12)
    # no fragility: expected = raw
    np.testing.assert_array_equal(out["expected_return"], out["raw_expected_return"])


def test_fragility_penalty_lowers_a_fragile_long(model):
    day = FEATS[FEATS["as_of_date"] == DAYS[150]].reset_index(drop=True)
    raw = model.predict(day)[H]
    long_i, short_i = int(np.argmax(raw)), int(np.argmin(raw))
    fragile = day.copy()
    fragile.loc[[long_i, short_i], "fragility_measure"] = 1.0
    kw = {"strategy_id": "S1", "market_id": "US_EQ", "config_id": "c", "model_id": "m",
          "config": CFG}
    calm = instrument_score_rows(day, model, fragility_penalty=0.001, **kw)
    hit = instrument_score_rows(fragile, model, fragility_penalty=0.001, **kw)
    a = calm.set_index("instrument_id")
    b = hit.set_index("instrument_id")
    name_l, name_s = day.loc[long_i, "instrument_id"], day.loc[short_i, "instrument_id"]
    assert b.loc[name_l, "expected_return"] == pytest.approx(a.loc[name_l, "expected_return"]
                                                             - min(0.001, raw[long_i]))
    assert b.loc[name_l, "fragility_penalty"] > 0
    assert b.loc[name_l, "score"] <= a.loc[name_l, "score"]
    assert b.loc[name_s, "expected_return"] == a.loc[name_s, "expected_return"]  # shorts kept
    # the haircut never turns a long into a short by itself
    assert long_penalty(np.array([0.002]), np.array([1.0]), 10.0)[0] == pytest.approx(0.002)


def test_features_to_scores_on_the_small_market():
    cfg = AssessmentConfig.model_validate({
        "horizons": [5],
        "model": {"n_estimators": 5, "min_child_samples": 5},
        "refit": {"min_training_dates": 5, "min_training_rows": 30},
        "walk_forward": {"n_folds": 2, "embargo_sessions": 2}})
    feats = assessment_features(INPUTS, SESSIONS[-60:], cfg)
    labels = forward_labels(INPUTS.returns, [5], instruments=INPUTS.instruments)
    m = fit_assessment_model(feats, labels, SESSIONS[-1], cfg, sessions=SESSIONS)
    out = instrument_score_rows(feats[feats["as_of_date"] == D], m, strategy_id="S",
                                market_id="US_EQ", config_id="c", model_id="m", config=cfg)
    assert len(out) == len(NAMES)
    assert out["fragility_penalty"].ge(0).all()


def test_scores_of_a_range_equal_each_date_scored_on_its_own(model):
    """Two model versions over a range, days without a model, two strategies with their own
    fragility penalty: scoring the range at once (one predict call per version) gives the rows
    of scoring each date on its own, to the bit."""
    from prometheus_dagster.steps.assessment import score_features
    from prometheus_dagster.steps.universe import strategies_of

    later = fit_assessment_model(FEATS, LABELS, DAYS[135], CFG, sessions=DAYS)
    models = {"v1": model, "v2": later}
    rng = np.random.default_rng(3)
    feats = FEATS.assign(fragility_measure=rng.random(len(FEATS)))
    dates = [pd.Timestamp(d) for d in DAYS[118:150]]
    versions = {d: {"name": "US_EQ.m", "version": "1" if d < DAYS[135] else "2",
                    "source": "v1" if d < DAYS[135] else "v2"}
                for d in dates if d >= DAYS[120]}
    strategies = strategies_of("US_EQ")
    assert len({s.fragility_penalty for s, _ in strategies.values()}) == 2
    kw = dict(load=models.__getitem__, market_id="US_EQ", cfg=CFG, config_id="c",
              strategies=strategies)
    ranged, missing = score_features(feats[feats["as_of_date"].isin(dates)], dates, versions,
                                     **kw)
    alone = [score_features(feats[feats["as_of_date"] == d], [d], versions, **kw)
             for d in dates]
    assert missing == [d for d in dates if d < DAYS[120]] == [d for a in alone for d in a[1]]
    pd.testing.assert_frame_equal(
        ranged, pd.concat([a[0] for a in alone if len(a[0])], ignore_index=True))
    assert set(ranged["model_id"]) == {"US_EQ.m/1", "US_EQ.m/2"}
    assert ranged["fragility_penalty"].gt(0).any()
