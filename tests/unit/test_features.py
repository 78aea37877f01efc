"""Feature engine: hand-checked returns, risk and liquidity on a toy panel, factor signs on
constructed panels, beta recovery, look-ahead and warm-up invariance, and window features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError, DataSchemaError
from prometheus_dagster.core.schemas import get_schema, validate_frame
from prometheus_dagster.engines.features import (
    ENTITY_TYPES,
    FeatureInputs,
    FeaturePanel,
    FeaturesConfig,
    adjusted_returns,
    build_numeric_window_features,
    build_numeric_windows,
    compute_factor_exposures,
    compute_factor_returns,
    compute_features,
    compute_liquidity,
    compute_market_correlation,
    compute_returns,
    compute_volatility,
    warmup_sessions,
    window_feature_names,
)
from prometheus_dagster.engines.features.compute import rolling_ols_betas

SQRT252 = math.sqrt(252)
SESSIONS = pd.bdate_range("2024-01-02", periods=30)
CID = "features@test"


# --- the toy panel ------------------------------------------------------------------------
def _path(base: float, amp: float, phase: float) -> list[float]:
    return [round(base * (1 + amp * math.sin(0.7 * t + phase)), 2) for t in range(30)]


def toy_closes() -> dict[str, dict[int, float]]:
    """Closes by session number. AAA: 2-for-1 split on session 10. BBB: 1.00 dividend on
    session 15. CCC: no row on session 20 (a 1.00 dividend is dated that day), a 3-for-1 split
    and a 0.20 dividend on session 25."""
    a = _path(100, 0.03, 0.0)
    a = [c if t < 10 else round(c / 2, 2) for t, c in enumerate(a)]
    a[9], a[10] = 100.0, 51.0
    b = _path(50, 0.02, 1.0)
    b[14], b[15] = 50.0, 49.5
    c = _path(20, 0.02, 2.0)
    c = [x if t < 25 else round(x / 3, 2) for t, x in enumerate(c)]
    c[19], c[21], c[24], c[25] = 20.0, 21.0, 20.0, 6.8
    cc = {t: x for t, x in enumerate(c) if t != 20}
    return {"EQUITY:AAA": dict(enumerate(a)), "EQUITY:BBB": dict(enumerate(b)), "EQUITY:CCC": cc}


def toy_volume(iid: str, t: int) -> float:
    return {"EQUITY:AAA": 1000.0, "EQUITY:BBB": 3000.0, "EQUITY:CCC": 500.0}[iid] + 37.0 * t


def toy_inputs() -> FeatureInputs:
    rows = [("US_EQ", iid, SESSIONS[t], c, toy_volume(iid, t), "USD")
            for iid, closes in toy_closes().items() for t, c in closes.items()]
    prices = pd.DataFrame(rows, columns=["market_id", "instrument_id", "date", "close", "volume",
                                         "currency"])
    actions = pd.DataFrame([
        ("US_EQ", "EQUITY:AAA", SESSIONS[10], "SPLIT", 2.0),
        ("US_EQ", "EQUITY:BBB", SESSIONS[15], "DIVIDEND", 1.0),
        ("US_EQ", "EQUITY:CCC", SESSIONS[20], "DIVIDEND", 1.0),
        ("US_EQ", "EQUITY:CCC", SESSIONS[25], "SPLIT", 3.0),
        ("US_EQ", "EQUITY:CCC", SESSIONS[25], "DIVIDEND", 0.2),
    ], columns=["market_id", "instrument_id", "date", "action_type", "value"])
    instruments = pd.DataFrame({
        "instrument_id": ["EQUITY:AAA", "EQUITY:BBB", "EQUITY:CCC"],
        "issuer_id": ["ISS:A", "ISS:B", "ISS:C"], "asset_class": "EQUITY", "market_id": "US_EQ"})
    fundamentals = pd.DataFrame({
        "market_id": "US_EQ", "issuer_id": ["ISS:A"], "period_end": [pd.Timestamp("2023-09-30")],
        "report_date": [pd.Timestamp("2023-11-01")], "shares_outstanding": [1000.0],
        "equity": [5e4], "net_income": [2e3], "currency": "USD"})
    return FeatureInputs(prices, actions, fundamentals, instruments)


def hand_returns() -> dict[str, dict[int, float]]:
    """Total returns computed row by row, independently of the engine."""
    actions = {  # (instrument, session the action applies to): (split ratio, dividend)
        ("EQUITY:AAA", 10): (2.0, 0.0), ("EQUITY:BBB", 15): (1.0, 1.0),
        ("EQUITY:CCC", 21): (1.0, 1.0), ("EQUITY:CCC", 25): (3.0, 0.2)}
    out: dict[str, dict[int, float]] = {}
    for iid, closes in toy_closes().items():
        ts = sorted(closes)
        out[iid] = {ts[0]: float("nan")}
        for prev, t in zip(ts, ts[1:], strict=False):
            k, d = actions.get((iid, t), (1.0, 0.0))
            out[iid][t] = (closes[t] * k + d) / closes[prev] - 1
    return out


def row(df: pd.DataFrame, iid: str, t: int) -> pd.Series:
    sel = df[(df["instrument_id"] == iid) & (df["date"] == SESSIONS[t])]
    assert len(sel) == 1, (iid, t, len(sel))
    return sel.iloc[0]


# --- returns ------------------------------------------------------------------------------
def test_adjusted_returns_on_split_dividend_and_gap_days():
    inp = toy_inputs()
    r = adjusted_returns(inp.prices, inp.corporate_actions)
    assert list(r.columns) == ["instrument_id", "date", "ret_1d"]
    got = {(i, d): v for i, d, v in r.itertuples(index=False)}

    def ret(iid: str, t: int) -> float:
        return got[(iid, SESSIONS[t])]

    # 2-for-1 split: 100.00 -> 51.00 is +2 %, not -49 %
    assert ret("EQUITY:AAA", 10) == pytest.approx(51.0 * 2 / 100.0 - 1, rel=1e-12)
    assert ret("EQUITY:AAA", 10) == pytest.approx(0.02, abs=1e-12)
    # 1.00 dividend: 50.00 -> 49.50 + 1.00 is +1 %
    assert ret("EQUITY:BBB", 15) == pytest.approx(0.01, abs=1e-12)
    # missing row on session 20: the return spans the gap and takes the dividend dated then
    assert ret("EQUITY:CCC", 21) == pytest.approx((21.0 + 1.0) / 20.0 - 1, abs=1e-12)
    assert ret("EQUITY:CCC", 21) == pytest.approx(0.10, abs=1e-12)
    assert ("EQUITY:CCC", SESSIONS[20]) not in got
    # 3-for-1 split with a 0.20 dividend the same day: (6.80 * 3 + 0.20) / 20.00 - 1 = 3 %
    assert ret("EQUITY:CCC", 25) == pytest.approx(0.03, abs=1e-12)
    # first rows have no return
    for iid in ("EQUITY:AAA", "EQUITY:BBB", "EQUITY:CCC"):
        assert math.isnan(ret(iid, 0))
    # every other row agrees with the independent computation
    for iid, by_t in hand_returns().items():
        for t, v in by_t.items():
            np.testing.assert_allclose(ret(iid, t), v, rtol=1e-12, equal_nan=True)


def test_compute_returns_compounds_over_sessions_and_takes_logs():
    inp = toy_inputs()
    out = compute_returns(inp, SESSIONS, config_id=CID)
    validate_frame("returns_daily", out)
    hand = hand_returns()
    assert len(out) == 30 + 30 + 29
    a12 = row(out, "EQUITY:AAA", 12)
    assert a12.ret_1d == pytest.approx(hand["EQUITY:AAA"][12], rel=1e-12)
    exp5 = np.prod([1 + hand["EQUITY:AAA"][t] for t in range(8, 13)]) - 1
    assert a12.ret_5d == pytest.approx(exp5, rel=1e-12)
    assert a12.logret_5d == pytest.approx(math.log1p(exp5), rel=1e-12)
    # CCC has no row on session 20: its 5-session return at 23 compounds rows 19, 21, 22, 23
    c23 = row(out, "EQUITY:CCC", 23)
    exp = np.prod([1 + hand["EQUITY:CCC"][t] for t in (19, 21, 22, 23)]) - 1
    assert c23.ret_5d == pytest.approx(exp, rel=1e-12)
    # ret_21d at session 29 covers sessions 9..29; at 20 it would reach the first row: NaN
    assert row(out, "EQUITY:BBB", 29).ret_21d == pytest.approx(
        np.prod([1 + hand["EQUITY:BBB"][t] for t in range(9, 30)]) - 1, rel=1e-12)
    assert math.isnan(row(out, "EQUITY:BBB", 20).ret_21d)
    assert math.isnan(row(out, "EQUITY:BBB", 3).ret_5d)
    assert (out["config_id"] == CID).all()


def test_output_dates_select_rows_only():
    inp = toy_inputs()
    full = compute_returns(inp, SESSIONS)
    two = compute_returns(inp, [SESSIONS[12], SESSIONS[20].date(), "2030-01-01"])
    assert sorted(set(two["date"])) == [SESSIONS[12], SESSIONS[20]]
    assert len(two) == 3 + 2  # CCC has no row on session 20
    pd.testing.assert_frame_equal(
        two.reset_index(drop=True),
        full[full["date"].isin([SESSIONS[12], SESSIONS[20]])].reset_index(drop=True))


# --- volatility and drawdowns -----------------------------------------------------------------
def test_volatility_is_annualised_sample_std_over_the_window():
    out = compute_volatility(toy_inputs(), [SESSIONS[29]])
    validate_frame("volatility_daily", out)
    hand = hand_returns()
    a = np.array([hand["EQUITY:AAA"][t] for t in range(9, 30)])
    assert row(out, "EQUITY:AAA", 29).vol_21d == pytest.approx(
        np.std(a, ddof=1) * SQRT252, rel=1e-12)
    c = np.array([hand["EQUITY:CCC"][t] for t in range(9, 30) if t != 20])  # 20 returns
    assert row(out, "EQUITY:CCC", 29).vol_21d == pytest.approx(
        np.std(c, ddof=1) * SQRT252, rel=1e-12)
    # 29 returns are fewer than ceil(0.8 * 63): no 63-session vol yet
    assert math.isnan(row(out, "EQUITY:AAA", 29).vol_63d)


def test_drawdown_against_split_adjusted_closes():
    out = compute_volatility(toy_inputs(), [SESSIONS[29]])
    closes = toy_closes()["EQUITY:AAA"]
    adj = np.array([closes[t] / 2 if t < 10 else closes[t] for t in range(30)])
    r = row(out, "EQUITY:AAA", 29)
    assert r.drawdown == pytest.approx(adj[-1] / adj.max() - 1, rel=1e-9)
    assert r.max_drawdown_252d == pytest.approx(
        (adj / np.maximum.accumulate(adj) - 1).min(), rel=1e-9)


def test_drawdown_by_hand():
    prices = pd.DataFrame({"market_id": "US_EQ", "instrument_id": "EQUITY:X",
                           "date": SESSIONS[:4], "close": [100.0, 110.0, 99.0, 104.5],
                           "volume": 1.0})
    out = compute_volatility(FeatureInputs(prices), SESSIONS[:4])
    assert out["drawdown"].tolist() == pytest.approx([0.0, 0.0, -0.1, -0.05])
    assert out["max_drawdown_252d"].tolist() == pytest.approx([0.0, 0.0, -0.1, -0.1])


# --- liquidity ----------------------------------------------------------------------------
def test_adv_amihud_and_turnover_by_hand():
    out = compute_liquidity(toy_inputs(), [SESSIONS[29]])
    validate_frame("liquidity_daily", out)
    hand = hand_returns()
    closes = toy_closes()
    for iid in ("EQUITY:AAA", "EQUITY:CCC"):
        ts = [t for t in range(9, 30) if t in closes[iid]]
        tv = np.array([closes[iid][t] * toy_volume(iid, t) for t in ts])
        r = np.array([hand[iid][t] for t in ts])
        got = row(out, iid, 29)
        assert got.adv_21d == pytest.approx(tv.mean(), rel=1e-12)
        assert got.amihud_21d == pytest.approx(np.mean(np.abs(r) / tv), rel=1e-12)
    # AAA: 1000 shares reported before the window, 2000 after the 2-for-1 split on session 10
    shares = [1000.0] + [2000.0] * 20
    exp = np.mean([toy_volume("EQUITY:AAA", t) / s for t, s in zip(range(9, 30), shares,
                                                                      strict=True)])
    assert row(out, "EQUITY:AAA", 29).turnover_21d == pytest.approx(exp, rel=1e-12)
    assert math.isnan(row(out, "EQUITY:BBB", 29).turnover_21d)  # no share count known


# --- factor returns -------------------------------------------------------------------------
def factor_inputs(n: int = 50, t: int = 90, seed: int = 3) -> FeatureInputs:
    """Name i has a higher drift, lower vol, smaller cap, higher book-to-price and higher ROE
    the larger i is: every long-short factor should earn a positive return every day."""
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2023-01-02", periods=t)
    i = np.arange(n)
    mu = 0.002 * (i / (n - 1) - 0.5)
    sigma = 1e-4 * (1 + (n - 1 - i) / (n - 1))
    r = mu[None, :] + sigma[None, :] * rng.standard_normal((t, n))
    close = 10.0 * np.cumprod(1 + r, axis=0)
    ids = [f"EQUITY:N{k:03d}" for k in i]
    prices = pd.DataFrame({
        "market_id": "US_EQ", "instrument_id": np.repeat([ids], t, axis=0).ravel(),
        "date": np.repeat(sessions, n), "close": close.ravel(), "volume": 1e5})
    shares = 1e6 * (n - i)
    cap0 = 10.0 * shares
    equity = cap0 * (0.1 + 0.02 * i)
    fundamentals = pd.DataFrame({
        "issuer_id": [f"ISS:{k:03d}" for k in i], "period_end": pd.Timestamp("2022-09-30"),
        "report_date": pd.Timestamp("2022-11-01"), "shares_outstanding": shares,
        "equity": equity, "net_income": equity * (0.01 + 0.001 * i)})
    instruments = pd.DataFrame({"instrument_id": ids, "issuer_id": fundamentals["issuer_id"],
                                "asset_class": "EQUITY"})
    return FeatureInputs(prices, None, fundamentals, instruments)


SMALL = FeaturesConfig(momentum_lookback=20, momentum_skip=5, beta_window=30, beta_min_obs=20)


def test_factor_returns_have_the_expected_sign():
    inp = factor_inputs()
    dates = pd.to_datetime(inp.prices["date"]).unique()
    out = compute_factor_returns(inp, dates, SMALL)
    validate_frame("factors_daily", out)
    by = {f: g.set_index("date")["value"] for f, g in out.groupby("factor_id")}
    assert set(by) == {"MARKET", "SIZE", "VALUE", "MOMENTUM", "LOW_VOL", "QUALITY"}
    for f in ("SIZE", "VALUE", "MOMENTUM", "LOW_VOL", "QUALITY"):
        assert (by[f] > 0).all(), f
    # windows decide when a factor starts: momentum needs 20 sessions, low-vol 51 returns
    # (rows 1..51), both known at the close before the factor date
    assert by["MOMENTUM"].index.min() == dates[21]
    assert by["LOW_VOL"].index.min() == dates[52]
    assert out.loc[out["factor_id"] == "SIZE", "n_long"].eq(10).all()
    # MARKET: previous-close cap-weighted mean of the day's returns
    p = inp.prices.pivot(index="date", columns="instrument_id", values="close")
    r = p.pct_change()
    w = p.shift(1) * inp.fundamentals["shares_outstanding"].to_numpy()[None, :]
    exp = (r * w).sum(axis=1) / w.sum(axis=1)
    np.testing.assert_allclose(by["MARKET"].to_numpy(), exp.iloc[1:].to_numpy(), rtol=1e-10)
    eq = compute_factor_returns(inp, dates, SMALL.model_copy(update={"market_weighting": "equal"}))
    mkt = eq[eq["factor_id"] == "MARKET"]["value"].to_numpy()
    np.testing.assert_allclose(mkt, r.mean(axis=1).iloc[1:].to_numpy(), rtol=1e-10)


def test_factor_portfolios_use_the_previous_close():
    """A statement reported on day t0 reverses the book-to-price ranking; VALUE on t0 still
    sorts on the old ranking (known at the close of t0-1), from t0+1 on on the new one."""
    inp = factor_inputs()
    dates = pd.to_datetime(inp.prices["date"]).unique()
    t0 = dates[40]
    f = inp.fundamentals
    cap0 = 10.0 * f["shares_outstanding"].to_numpy()
    new = f.assign(period_end=pd.Timestamp("2022-12-31"), report_date=t0,
                   equity=cap0 * (0.1 + 0.02 * np.arange(len(f))[::-1]))
    inp = FeatureInputs(inp.prices, None, pd.concat([f, new], ignore_index=True),
                        inp.instruments)
    out = compute_factor_returns(inp, dates[38:44], SMALL)
    value = out[out["factor_id"] == "VALUE"].set_index("date")["value"]
    assert (value.loc[:t0] > 0).all()
    assert (value.loc[t0 + pd.Timedelta(days=1):] < 0).all()


def test_factor_needs_enough_names():
    inp = toy_inputs()  # three names cannot fill five quantiles of two names
    out = compute_factor_returns(inp, SESSIONS, SMALL)
    assert set(out["factor_id"]) == {"MARKET"}


# --- betas ------------------------------------------------------------------------------------
def test_rolling_ols_recovers_known_betas():
    rng = np.random.default_rng(7)
    t, n, k = 200, 5, 3
    x = rng.standard_normal((t, k)) * 0.01
    b = rng.uniform(-1.5, 1.5, (n, k))
    y = 0.0003 + x @ b.T
    y[rng.random((t, n)) < 0.1] = np.nan  # missing observations
    x[5, 1] = np.nan  # a day without one regressor drops out
    rows = np.array([150, 199])
    got = rolling_ols_betas(y, x, rows, window=126, min_obs=63)
    np.testing.assert_allclose(got, np.broadcast_to(b, got.shape), atol=1e-8)
    noisy = y + rng.standard_normal((t, n)) * 0.002
    got = rolling_ols_betas(noisy, x, rows, window=126, min_obs=63)
    np.testing.assert_allclose(got, np.broadcast_to(b, got.shape), atol=0.12)
    # too few observations, or a regressor missing too often: NaN
    assert np.isnan(rolling_ols_betas(y, x, np.array([40]), window=126, min_obs=63)).all()
    x2 = x.copy()
    x2[100:, 2] = np.nan
    got = rolling_ols_betas(y, x2, np.array([199]), window=126, min_obs=63)
    assert np.isnan(got[..., 2]).all() and not np.isnan(got[..., :2]).any()


def test_market_betas_recovered_end_to_end():
    rng = np.random.default_rng(11)
    t, n = 200, 60
    sessions = pd.bdate_range("2022-01-03", periods=t)
    beta = np.linspace(0.5, 1.5, n)  # averages 1: the equal-weighted index is the market
    m = rng.standard_normal(t) * 0.01
    r = m[:, None] * beta[None, :] + rng.standard_normal((t, n)) * 0.002
    close = 20 * np.cumprod(1 + r, axis=0)
    ids = [f"EQUITY:B{k:02d}" for k in range(n)]
    prices = pd.DataFrame({"market_id": "US_EQ", "instrument_id": np.repeat([ids], t, 0).ravel(),
                           "date": np.repeat(sessions, n), "close": close.ravel(),
                           "volume": 1e4})
    cfg = FeaturesConfig(factors=("MARKET",), market_weighting="equal")
    out = compute_factor_exposures(FeatureInputs(prices), [sessions[-1]], cfg)
    validate_frame("instrument_factors_daily", out)
    assert set(out["factor_id"]) == {"MARKET"} and len(out) == n
    np.testing.assert_allclose(out.sort_values("instrument_id")["exposure"], beta, atol=0.05)


# --- market internals -------------------------------------------------------------------------
def test_market_correlation_dispersion_and_breadth():
    inp = factor_inputs(n=20, t=80)
    dates = pd.to_datetime(inp.prices["date"]).unique()
    out = compute_market_correlation(inp, dates[-3:])
    validate_frame("market_correlation_daily", out)
    p = inp.prices.pivot(index="date", columns="instrument_id", values="close")
    r = p.pct_change()
    last = out.iloc[-1]
    win = r.iloc[-63:]
    c = win.corr().to_numpy()
    assert last.avg_pairwise_corr_63d == pytest.approx(c[np.triu_indices(20, 1)].mean(),
                                                       rel=1e-9)
    assert last.dispersion_1d == pytest.approx(r.iloc[-1].std(ddof=1), rel=1e-12)
    assert last.breadth_1d == pytest.approx((r.iloc[-1] > 0).mean())
    assert last.advance_decline == pytest.approx(
        ((r.iloc[-1] > 0).sum() - (r.iloc[-1] < 0).sum()) / 20)
    assert last.n_names == 20
    factors = compute_factor_returns(inp, dates[-1:])
    assert last.index_ret_1d == factors[factors["factor_id"] == "MARKET"]["value"].iloc[0]


# --- look-ahead and warm-up invariance ---------------------------------------------------------
def random_inputs(seed: int, t: int, n: int) -> FeatureInputs:
    """Random prices with gaps, a late listing, an early delisting, splits and dividends (some
    dated on missing rows), an ETF outside the factor universe and staggered statements."""
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2019-01-02", periods=t)
    ids = [f"EQUITY:R{k:02d}" for k in range(n)]
    r = rng.standard_normal((t, n)) * rng.uniform(0.005, 0.03, n) + rng.normal(0, 5e-4, n)
    close = rng.uniform(5, 200, n) * np.exp(np.cumsum(r, axis=0))
    keep = rng.random((t, n)) > 0.08
    keep[:, n // 2:] = True  # gaps in the first half of the names only
    keep[: t // 3, 0] = False  # listed late
    keep[t // 3:, 1] = False  # delisted early
    ti, ni = np.nonzero(keep)
    prices = pd.DataFrame({"market_id": "US_EQ", "instrument_id": np.array(ids)[ni],
                           "date": sessions[ti], "close": close[ti, ni],
                           "volume": rng.lognormal(10, 1, len(ti)), "currency": "USD"})
    m = max(2, n // 2)
    actions = pd.DataFrame({
        "market_id": "US_EQ", "instrument_id": rng.choice(ids, m),
        "date": sessions[rng.integers(1, t, m)],
        "action_type": rng.choice(["SPLIT", "DIVIDEND"], m),
        "value": rng.choice([2.0, 3.0, 0.5, 0.25], m)}).drop_duplicates(
        ["instrument_id", "date", "action_type"])
    issuers = [f"ISS:R{k:02d}" for k in range(n)]
    instruments = pd.DataFrame({"instrument_id": ids, "issuer_id": issuers,
                                "asset_class": ["ETF"] + ["EQUITY"] * (n - 1)})
    reports = []
    for iss in issuers:
        for q, pe in enumerate(pd.date_range(sessions[0] - pd.Timedelta(days=200), sessions[-1],
                                             freq="QE")):
            eq = rng.lognormal(20, 1)
            reports.append((iss, pe, pe + pd.Timedelta(days=int(rng.integers(10, 70))),
                            rng.lognormal(15, 1) if rng.random() > 0.1 else np.nan, eq,
                            eq * rng.normal(0.03, 0.03), eq * 3, eq * 0.05, q))
    fundamentals = pd.DataFrame(reports, columns=[
        "issuer_id", "period_end", "report_date", "shares_outstanding", "equity", "net_income",
        "total_assets", "ebitda", "q"]).drop(columns="q")
    return FeatureInputs(prices, actions, fundamentals, instruments)


TINY = FeaturesConfig(momentum_lookback=10, momentum_skip=2, beta_window=15, beta_min_obs=8,
                      quantiles=2, min_names_per_bucket=1)
COMPUTE = {
    "returns_daily": compute_returns,
    "volatility_daily": compute_volatility,
    "liquidity_daily": compute_liquidity,
    "factors_daily": compute_factor_returns,
    "instrument_factors_daily": compute_factor_exposures,
    "market_correlation_daily": compute_market_correlation,
}


@pytest.mark.parametrize("table", list(COMPUTE))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(40, 80), n=st.integers(5, 9),
       where=st.floats(0.0, 1.0))
def test_no_look_ahead(table, seed, t, n, where):
    inp = random_inputs(seed, t, n)
    sessions = np.sort(pd.to_datetime(inp.prices["date"]).unique())
    d = pd.Timestamp(sessions[min(int(where * len(sessions)), len(sessions) - 1)])
    fn = COMPUTE[table]
    full = fn(inp, [d], TINY, config_id=CID)
    cut = fn(inp.truncated(d), [d], TINY, config_id=CID)
    assert (full["date"] == d).all()
    pd.testing.assert_frame_equal(full, cut, check_exact=True)


@pytest.mark.parametrize("table", list(COMPUTE))
def test_warm_up_longer_history_changes_nothing(table):
    """Results for the output dates are the same whether the history starts 300 or 400
    sessions before them (400 or 500 for the betas, whose factor returns need 378)."""
    inp = random_inputs(5, 520, 25)
    sessions = np.sort(pd.to_datetime(inp.prices["date"]).unique())
    out_dates = sessions[-5:]
    short, long_ = (400, 500) if table == "instrument_factors_daily" else (300, 400)
    assert warmup_sessions(table) <= short
    fn = COMPUTE[table]
    results = []
    for h in (short, long_):
        start = sessions[-5 - h]
        p = inp.prices[pd.to_datetime(inp.prices["date"]) >= start]
        results.append(fn(FeatureInputs(p, inp.corporate_actions, inp.fundamentals,
                                        inp.instruments), out_dates))
    assert len(results[0]) > 0
    assert results[0].notna().any().all()  # every column has values
    if "factor_id" in results[0].columns:
        assert set(results[0]["factor_id"]) == set(FeaturesConfig().factors)
    pd.testing.assert_frame_equal(results[0], results[1], check_exact=True)


def test_compute_features_matches_the_single_table_functions():
    inp = random_inputs(2, 60, 7)
    dates = np.sort(pd.to_datetime(inp.prices["date"]).unique())[-10:]
    allt = compute_features(inp, dates, TINY)
    for table, fn in COMPUTE.items():
        pd.testing.assert_frame_equal(allt[table], fn(inp, dates, TINY), check_exact=True)
        validated = validate_frame(table, allt[table])
        assert list(validated.columns) == get_schema(table).column_names


# --- inputs and config --------------------------------------------------------------------------
def test_duplicate_price_rows_are_a_schema_error():
    inp = toy_inputs()
    prices = pd.concat([inp.prices, inp.prices.iloc[:1]], ignore_index=True)
    with pytest.raises(DataSchemaError, match="duplicate key"):
        compute_returns(FeatureInputs(prices), SESSIONS)


def test_config_file_and_validation():
    loaded = load_engine_config("features")
    assert loaded.config == FeaturesConfig()
    assert loaded.config_id.startswith("features@1-")
    with pytest.raises(ConfigError, match="momentum_skip"):
        validate_config({"engine": "features", "version": "1", "momentum_lookback": 20,
                         "momentum_skip": 20})
    with pytest.raises(ConfigError, match="quantiles"):
        validate_config({"engine": "features", "version": "1", "quantiles": 1})


# --- numeric window features ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def window_panel() -> FeaturePanel:
    inp = random_inputs(9, 120, 8)
    sectors = ["Tech", "Energy"]
    issuers = pd.DataFrame({"issuer_id": inp.instruments["issuer_id"],
                            "sector": [sectors[k % 2] for k in range(8)]})
    return FeaturePanel.from_inputs(inp, issuers=issuers)


ENTITY_IDS = {"INSTRUMENT": "EQUITY:R03", "ISSUER": "ISS:R04", "SECTOR": "Tech",
              "MARKET": "US_EQ"}


@pytest.mark.parametrize("entity_type", ENTITY_TYPES)
def test_window_features_shape_and_dates(window_panel, entity_type):
    sessions = pd.DatetimeIndex(np.sort(window_panel.returns["date"].unique()))
    as_of = sessions[90] + pd.Timedelta(hours=12)
    f = build_numeric_window_features(entity_type, ENTITY_IDS[entity_type], as_of, 40,
                                      panel=window_panel)
    assert f.shape == (40, len(window_feature_names(entity_type)))
    assert list(f.columns) == list(window_feature_names(entity_type))
    assert f.index[-1] == sessions[90] and f.index.max() <= as_of
    assert list(f.index) == list(sessions[51:91])
    assert np.isfinite(f.to_numpy()).all()
    assert (f.abs() <= FeaturesConfig().window_feature_clip).all().all()
    # only data up to the as-of date: the truncated panel gives the same window
    cut = build_numeric_window_features(entity_type, ENTITY_IDS[entity_type], sessions[90], 40,
                                        panel=window_panel.truncated(sessions[90]))
    pd.testing.assert_frame_equal(f, cut, check_exact=True)
    # the batch builder gives the same numbers
    windows, index = build_numeric_windows(entity_type, [sessions[60], sessions[90]], 40,
                                           window_panel)
    assert windows.shape[1:] == f.shape and len(index) == len(windows)
    hit = np.flatnonzero((index["entity_id"] == ENTITY_IDS[entity_type])
                         & (index["as_of_date"] == sessions[90]))
    assert len(hit) == 1
    np.testing.assert_array_equal(windows[hit[0]], f.to_numpy())


def test_window_features_content(window_panel):
    f = build_numeric_window_features("INSTRUMENT", "EQUITY:R03", window_panel.returns[
        "date"].max(), 20, panel=window_panel)
    r = window_panel.returns
    r = r[r["instrument_id"] == "EQUITY:R03"].set_index("date")["ret_1d"]
    seen = f.index.isin(r.index)
    assert (f.loc[seen, "observed"] == 1).all() and (f.loc[~seen, "observed"] == 0).all()
    np.testing.assert_allclose(f.loc[seen, "ret_1d"],
                               np.clip(r.reindex(f.index[seen]) / 0.02, -5, 5))
    # the issuer window adds its fundamentals, held between report dates
    g = build_numeric_window_features("ISSUER", "ISS:R04", window_panel.returns["date"].max(),
                                      20, panel=window_panel)
    assert (g["fundamentals_observed"] == 1).all()
    assert g["roe"].nunique() <= 3


def test_window_features_errors(window_panel):
    sessions = np.sort(window_panel.returns["date"].unique())
    with pytest.raises(ValueError, match="fewer than the window"):
        build_numeric_window_features("MARKET", "US_EQ", sessions[10], 40, panel=window_panel)
    with pytest.raises(ValueError, match="no returns"):
        build_numeric_window_features("INSTRUMENT", "EQUITY:NOPE", sessions[-1], 5,
                                      panel=window_panel)
    with pytest.raises(ValueError, match="no data"):  # listed a third of the way in
        build_numeric_window_features("INSTRUMENT", "EQUITY:R00", sessions[30], 20,
                                      panel=window_panel)
    with pytest.raises(ValueError, match="entity_type"):
        build_numeric_window_features("COUNTRY", "US", sessions[-1], 5, panel=window_panel)


# --- the step: a range a chunk at a time equals its dates one by one ----------------------------
def test_step_range_in_chunks_equals_date_by_date_runs():
    from prometheus_dagster.steps.features import (
        feature_tables,
        feature_warmup,
        feature_window_start,
    )

    inp = random_inputs(11, 140, 8)
    sessions = list(np.sort(pd.to_datetime(inp.prices["date"]).unique()))
    dates = [pd.Timestamp(d) for d in sessions[-20:]]
    start = feature_window_start("US_EQ", feature_warmup(TINY))
    together = feature_tables(inp, dates, TINY, CID, start, chunk=6)
    for table, frame in together.items():
        one_by_one = pd.concat([feature_tables(inp, [d], TINY, CID, start)[table]
                                for d in dates], ignore_index=True)
        assert len(frame) > 0, table
        assert set(pd.to_datetime(frame["date"])) == set(dates), table
        pd.testing.assert_frame_equal(frame, one_by_one, check_exact=True, obj=table)
