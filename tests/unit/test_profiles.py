"""Profiles: point-in-time statement selection, hand-checked structured fields, risk flags in
[0, 1] with the monotonicity they promise, and the profile embedding mix."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_dagster.engines.profiles import (
    ProfilesConfig,
    Ramp,
    build_profiles,
    combine_embedding,
    earnings_quality_score,
    latest_statements,
    leverage_score,
    liquidity_risk,
    profile_weakness,
    ramp,
)

CFG = ProfilesConfig()


def statement(issuer: str, period_end: str, report_date: str, **items) -> dict:
    base = {"issuer_id": issuer, "period_end": period_end, "report_date": report_date,
            "total_assets": 1000.0, "total_liabilities": 600.0, "equity": 400.0,
            "revenue": 250.0, "ebitda": 50.0, "net_income": 20.0, "operating_cash_flow": 30.0,
            "interest_expense": 5.0, "cash": 80.0, "short_term_debt": 40.0,
            "long_term_debt": 360.0}
    return {**base, **items}


FUND = pd.DataFrame([
    statement("A", "2023-03-31", "2023-05-10", revenue=200.0),
    statement("A", "2023-12-31", "2024-02-20", revenue=230.0),
    statement("A", "2024-03-31", "2024-05-08"),
    statement("B", "2022-09-30", "2022-11-15"),
])


def test_only_statements_reported_by_the_date_are_used():
    out = latest_statements(FUND, ["A", "B"], [pd.Timestamp("2024-05-07"),
                                               pd.Timestamp("2024-05-08")], CFG)
    a = out[out["issuer_id"] == "A"].set_index("as_of_date")
    assert a.loc["2024-05-07", "period_end"] == pd.Timestamp("2023-12-31")
    assert a.loc["2024-05-08", "period_end"] == pd.Timestamp("2024-03-31")
    assert a.loc["2024-05-08", "prior_year_revenue"] == 200.0
    b = out[out["issuer_id"] == "B"]
    assert b["report_date"].isna().all()  # older than fundamentals_max_age_days (400)


def test_structured_fields_by_hand():
    prof = build_profiles("M", ["A"], [pd.Timestamp("2024-05-08")], FUND, pd.DataFrame(),
                          CFG, "profiles@test").iloc[0]
    assert prof["total_debt"] == pytest.approx(400.0)
    assert prof["debt_to_ebitda"] == pytest.approx(400.0 / 200.0)
    assert prof["debt_to_equity"] == pytest.approx(1.0)
    assert prof["liabilities_to_assets"] == pytest.approx(0.6)
    assert prof["interest_coverage"] == pytest.approx(10.0)
    assert prof["ebitda_margin"] == pytest.approx(0.2)
    assert prof["net_margin"] == pytest.approx(0.08)
    assert prof["roe"] == pytest.approx(0.2)
    assert prof["roic"] == pytest.approx(80.0 / 800.0)
    assert prof["revenue_growth_yoy"] == pytest.approx(250.0 / 200.0 - 1)
    assert prof["cash_to_st_debt"] == pytest.approx(2.0)
    assert prof["accruals_ratio"] == pytest.approx(-0.01)
    # leverage: max(ramp(2.0; 1, 6) = 0.2, ramp(1.0; 0.5, 3) = 0.2, ramp(0.6; 0.5, .95) = 0.222)
    assert prof["leverage_score"] == pytest.approx(0.1 / 0.45)
    assert prof["liquidity_risk"] == pytest.approx(0.0)
    assert np.isnan(prof["governance_risk_score"]) and prof["recent_articles"] == 0


positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
signed = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(debt=positive, extra=st.floats(min_value=0, max_value=1e6), ebitda=signed,
       equity=signed, liabilities=positive, assets=positive)
def test_more_debt_never_lowers_the_leverage_score(debt, extra, ebitda, equity, liabilities,
                                                   assets):
    before = leverage_score(debt, ebitda, equity, liabilities, assets, CFG)
    after = leverage_score(debt + extra, ebitda, equity, liabilities + extra, assets, CFG)
    assert 0.0 <= before <= after <= 1.0


@settings(max_examples=300, deadline=None)
@given(debt=positive, ebitda=signed, cut=st.floats(min_value=0, max_value=1e6),
       equity=signed, liabilities=positive, assets=positive)
def test_less_ebitda_or_equity_never_lowers_the_leverage_score(debt, ebitda, cut, equity,
                                                               liabilities, assets):
    base = leverage_score(debt, ebitda, equity, liabilities, assets, CFG)
    assert leverage_score(debt, ebitda - cut, equity, liabilities, assets, CFG) >= base
    assert leverage_score(debt, ebitda, equity - cut, liabilities, assets, CFG) >= base


@settings(max_examples=200, deadline=None)
@given(cash=st.floats(0, 1e6), std=positive, more_cash=st.floats(0, 1e6), ebitda=signed,
       interest=positive)
def test_more_cash_never_raises_liquidity_risk(cash, std, more_cash, ebitda, interest):
    a = liquidity_risk(cash, std, ebitda, interest, CFG)
    b = liquidity_risk(cash + more_cash, std, ebitda, interest, CFG)
    assert 0.0 <= b <= a <= 1.0


def test_flag_edge_cases():
    assert leverage_score(100.0, -5.0, 50.0, 10.0, 100.0, CFG) == 1.0  # negative EBITDA
    assert leverage_score(0.0, -5.0, 50.0, 10.0, 100.0, CFG) == 0.0  # no debt at all
    assert np.isnan(leverage_score(np.nan, np.nan, np.nan, np.nan, np.nan, CFG))
    burn = earnings_quality_score(10.0, -5.0, 100.0, 100.0, CFG)
    clean = earnings_quality_score(10.0, 15.0, 100.0, 100.0, CFG)
    assert burn > clean and 0 <= clean <= burn <= 1
    assert liquidity_risk(0.0, 0.0, 10.0, 0.0, CFG) == 0.0  # nothing due, nothing to cover


def test_ramp_and_weakness():
    r = Ramp(low=1.0, high=3.0)
    np.testing.assert_allclose(ramp(np.array([0.0, 2.0, 9.0, np.nan]), r), [0, 0.5, 1, np.nan])
    with pytest.raises(ValueError, match="greater than low"):
        Ramp(low=2.0, high=1.0)
    w = profile_weakness({"leverage_score": np.array([1.0]), "earnings_quality_score":
                          np.array([0.0]), "liquidity_risk": np.array([np.nan]),
                          "governance_risk_score": np.array([np.nan])}, CFG)
    assert w[0] == pytest.approx(0.35 / 0.55)


def test_governance_flag_from_recent_news_only():
    news = pd.DataFrame({"article_id": ["old", "new"], "issuer_id": ["A", "A"],
                         "date": pd.to_datetime(["2023-12-01", "2024-05-01"])})
    sims = pd.Series({"old": 0.9, "new": 0.5})
    prof = build_profiles("M", ["A"], [pd.Timestamp("2024-05-08")], FUND, news, CFG, "p",
                          sims).iloc[0]
    assert prof["recent_articles"] == 1
    assert prof["governance_risk_score"] == pytest.approx((0.5 - 0.35) / 0.3)


def test_profile_embedding_mix():
    num = np.zeros(384, np.float32)
    num[0] = 1
    txt = np.zeros((2, 384), np.float32)
    txt[:, 1] = 1
    v = combine_embedding(num, txt, 1.0)
    assert np.linalg.norm(v) == pytest.approx(1.0)
    assert v[0] == pytest.approx(v[1])
    assert combine_embedding(None, None, 0.5) is None
    np.testing.assert_array_equal(combine_embedding(num, None, 0.5), num)


def _recent_news_one_date_at_a_time(news: pd.DataFrame, issuers: list[str],
                                    dates: list[pd.Timestamp], days: int) -> pd.DataFrame:
    """The definition, one date at a time: linked articles dated in (D - days, D]."""
    n = news.assign(issuer_id=news["issuer_id"].astype(str),
                    date=pd.to_datetime(news["date"]).dt.normalize())
    n = n[n["issuer_id"].isin(issuers)]
    parts = [n[(n["date"] <= d) & (n["date"] > d - pd.Timedelta(days=days))]
             [["issuer_id", "article_id"]].assign(as_of_date=d) for d in sorted(dates)]
    return pd.concat(parts, ignore_index=True)[["issuer_id", "as_of_date", "article_id"]]


def test_recent_news_of_a_range_equals_its_dates_one_by_one():
    from prometheus_dagster.engines.profiles import recent_news

    rng = np.random.default_rng(4)
    days = pd.bdate_range("2024-01-01", "2024-09-30")
    news = pd.DataFrame({"article_id": [f"a{i}" for i in range(400)],
                         "issuer_id": rng.choice(["A", "B", "C", "X"], 400),
                         "date": rng.choice(days, 400)})
    dates = list(pd.bdate_range("2024-04-01", "2024-06-28"))
    whole = recent_news(news, ["A", "B", "C"], dates, 30)
    expected = _recent_news_one_date_at_a_time(news, ["A", "B", "C"], dates, 30)
    pd.testing.assert_frame_equal(whole, expected)
    singles = pd.concat([recent_news(news, ["A", "B", "C"], [d], 30) for d in dates],
                        ignore_index=True)
    pd.testing.assert_frame_equal(whole, singles)
    assert set(whole["issuer_id"]) == {"A", "B", "C"}


def test_profile_embeddings_of_many_rows_equal_row_by_row_bit_for_bit():
    from prometheus_dagster.engines.profiles.compute import combine_embeddings

    rng = np.random.default_rng(11)
    texts = unit_rows(rng.normal(size=(50, 384))).astype(np.float32)
    numeric = unit_rows(rng.normal(size=(200, 384))).astype(np.float32)
    has_numeric = rng.random(200) > 0.2
    text_rows = [rng.choice(50, size=int(k), replace=False) for k in rng.integers(0, 6, 200)]
    many = combine_embeddings(numeric, has_numeric, texts, text_rows, 0.5)
    for i in range(200):
        one = combine_embedding(numeric[i] if has_numeric[i] else None,
                                texts[text_rows[i]] if len(text_rows[i]) else None, 0.5)
        if one is None:
            assert many[i] is None
        else:
            assert many[i].dtype == np.float32
            np.testing.assert_array_equal(many[i], one)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_declared_news_look_back_reaches_the_configured_days():
    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.steps.profiles import news_sessions

    for market in ("US_EQ", "EU_EQ"):
        cal = trading_calendar(market)
        for days in (1, 30, 90, 365):
            for d in cal.sessions("2023-01-02", "2023-12-29")[::7]:
                first = cal.previous_trading_day(d, news_sessions(days))
                assert first <= d - pd.Timedelta(days=days), (market, days, d)
