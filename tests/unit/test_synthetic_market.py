"""The embedded synthetic market: schemas, determinism, no dependence on the end date, and the
stylised facts and ground truth that downstream engines rely on."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.calendars import TradingCalendar
from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.schemas import get_schema, validate_frame
from prometheus_dagster.engines.synthetic_market import SyntheticMarket, SyntheticMarketConfig
from prometheus_dagster.engines.synthetic_market.config import EquityMarketConfig

START, END = pd.Timestamp("2019-01-02"), pd.Timestamp("2022-12-30")
SHORT_END = pd.Timestamp("2020-06-30")
EQUITY_MARKETS = ("US_EQ", "EU_EQ")
RISK_OFF = ("GRINDING", "CRASH")


def small_config(**overrides) -> SyntheticMarketConfig:
    """60 + 30 names over four years; no vendor glitches unless asked."""
    body = dict(
        seed=1, start_date=START.date(), end_date=END.date(),
        markets={"US_EQ": EquityMarketConfig(n_instruments=60, countries=("US",)),
                 "EU_EQ": EquityMarketConfig(n_instruments=30, countries=("DE", "FR"),
                                             global_loading=0.8)},
        stale_price_rate=0.0, spike_rate=0.0, missing_row_rate=0.0,
    )
    body.update(overrides)
    return SyntheticMarketConfig(**body)


def all_frames(m: SyntheticMarket, start, end) -> dict[str, pd.DataFrame]:
    out = {"markets": m.markets(), "macro_time_series": m.macro(start, end),
           "truth.regime_path": m.truth_regimes(start, end)}
    for mid in m.market_ids:
        out[f"issuers/{mid}"] = m.issuers(mid)
        out[f"instruments/{mid}"] = m.instruments(mid)
        out[f"prices_daily/{mid}"] = m.prices(mid, start, end)
        out[f"corporate_actions/{mid}"] = m.corporate_actions(mid, start, end)
        out[f"fundamentals/{mid}"] = m.fundamentals(mid, start, end)
        articles, links = m.news(mid, start, end)
        out[f"news_articles/{mid}"] = articles
        out[f"news_links/{mid}"] = links
    return out


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(small_config())


@pytest.fixture(scope="module")
def glitchy() -> SyntheticMarket:
    """Same world as ``market`` with vendor glitches at 1% per row each."""
    return SyntheticMarket(small_config(stale_price_rate=0.01, spike_rate=0.01,
                                        missing_row_rate=0.01))


def equity_returns(m: SyntheticMarket, mid: str) -> pd.DataFrame:
    p = m.prices(mid, START, END)
    adj = p.pivot(index="date", columns="instrument_id", values="adjusted_close")
    return np.log(adj).diff()


def regimes_of(m: SyntheticMarket, mid: str) -> pd.Series:
    r = m.truth_regimes()
    return r[r["market_id"] == mid].set_index("date")["regime"]


# --- config ---------------------------------------------------------------------------------
def test_demo_yaml_is_the_documented_default():
    loaded = load_engine_config("synthetic_market")
    cfg = loaded.config
    assert isinstance(cfg, SyntheticMarketConfig)
    assert (cfg.seed, str(cfg.start_date), str(cfg.end_date)) == (42, "2019-01-02", "2024-12-31")
    assert cfg.markets["US_EQ"].n_instruments == 120 and cfg.markets["EU_EQ"].n_instruments == 80
    assert list(cfg.fx_pairs) == ["EURUSD", "USDJPY", "GBPUSD"]
    assert cfg.market_ids == ["US_EQ", "EU_EQ", "FX_GLOB"]
    assert loaded.config_id.startswith("synthetic_market@1-")


@pytest.mark.parametrize("bad", [
    {"start_date": "2024-01-01", "end_date": "2023-01-01"},
    {"spike_rate": -0.1},
    {"markets": {"US_EQ": {"n_instruments": 0}}},
    {"regime_transitions": {"CALM": {"CALM": 1.0}}},
])
def test_bad_config_raises_config_error(bad):
    with pytest.raises(ConfigError):
        validate_config({"engine": "synthetic_market", "version": "1", **bad})


def test_unknown_market_raises(market):
    with pytest.raises(ConfigError, match="unknown market_id"):
        market.prices("JP_EQ", START, END)
    with pytest.raises(ConfigError):
        SyntheticMarket(small_config(markets={"XX_EQ": EquityMarketConfig()}))


# --- schemas --------------------------------------------------------------------------------
def test_every_frame_matches_its_schema_exactly(glitchy):
    frames = all_frames(glitchy, START, END)
    frames["truth.distress_events"] = glitchy.truth_distress_events()
    for key, df in frames.items():
        table = key.split("/")[0]
        schema = get_schema(table)
        assert list(df.columns) == schema.column_names, key
        validate_frame(table, df)
        if table not in ("corporate_actions",) and not key.endswith("FX_GLOB"):
            assert len(df) > 0, key


def test_ids_and_reference_data(market):
    symbols = []
    for mid in EQUITY_MARKETS:
        inst = market.instruments(mid)
        iss = market.issuers(mid)
        eq = inst[inst["asset_class"] == "EQUITY"]
        assert eq["instrument_id"].str.fullmatch(r"EQUITY:[A-Z]{2}\d{4}").all()
        assert (eq["issuer_id"] == "ISS:" + eq["symbol"]).all()
        assert set(eq["issuer_id"]) == set(iss["issuer_id"])
        assert (inst["instrument_id"] == f"INDEX:{mid}").sum() == 1
        symbols += list(eq["symbol"])
    assert len(symbols) == len(set(symbols))
    fx = market.instruments("FX_GLOB")
    assert set(fx["instrument_id"]) == {"FX:EURUSD", "FX:USDJPY", "FX:GBPUSD"}
    assert market.issuers("FX_GLOB").empty
    assert set(market.markets()["market_id"]) == {"US_EQ", "EU_EQ", "FX_GLOB"}


# --- determinism and point-in-time ----------------------------------------------------------
def test_same_config_gives_identical_frames(market):
    twin = SyntheticMarket(small_config())
    a, b = all_frames(market, START, END), all_frames(twin, START, END)
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], obj=key)
    pd.testing.assert_frame_equal(market.truth_distress_events(), twin.truth_distress_events())


def test_data_for_a_date_does_not_depend_on_end_date(market):
    short = SyntheticMarket(small_config(end_date=SHORT_END.date()))
    for start in (START, pd.Timestamp("2020-03-02")):
        a, b = all_frames(short, start, SHORT_END), all_frames(market, start, SHORT_END)
        for key in a:
            assert len(a[key]) > 0 or key.startswith(("corporate", "fundamentals/FX",
                                                      "issuers/FX")), key
            pd.testing.assert_frame_equal(a[key], b[key], obj=key)
    long_events = market.truth_distress_events()
    long_events = long_events[long_events["event_date"] <= SHORT_END].reset_index(drop=True)
    pd.testing.assert_frame_equal(short.truth_distress_events(), long_events)


def test_slicing_matches_the_full_range(market):
    full = market.prices("US_EQ", START, END)
    part = market.prices("US_EQ", "2020-02-03", "2020-02-28")
    expect = full[(full["date"] >= "2020-02-03") & (full["date"] <= "2020-02-28")]
    pd.testing.assert_frame_equal(part, expect.reset_index(drop=True))


# --- calendars, bars, corporate actions -----------------------------------------------------
def test_prices_only_on_sessions(market):
    for mid in market.market_ids:
        sessions = set(TradingCalendar(mid).sessions(START, END))
        dates = set(market.prices(mid, START, END)["date"])
        assert dates == sessions, mid
    us = set(market.prices("US_EQ", START, END)["date"])
    eu = set(market.prices("EU_EQ", START, END)["date"])
    assert pd.Timestamp("2019-07-04") not in us and pd.Timestamp("2019-07-04") in eu
    assert pd.Timestamp("2019-12-24") not in eu and pd.Timestamp("2019-12-24") in us


def test_ohlc_is_consistent_even_with_glitches(glitchy):
    for mid in glitchy.market_ids:
        p = glitchy.prices(mid, START, END)
        assert (p[["open", "high", "low", "close", "adjusted_close"]] > 0).all().all()
        assert (p["high"] >= p[["open", "close"]].max(axis=1)).all()
        assert (p["low"] <= p[["open", "close"]].min(axis=1)).all()
        assert (p["volume"] >= 0).all()
        flat = p["volume"] == 0  # only stale prints report no volume
        assert flat.sum() < 0.05 * len(p)
        assert (p.loc[flat, "open"] == p.loc[flat, "close"]).all()


def test_no_prices_after_delisting(market):
    n_delisted = 0
    for mid in EQUITY_MARKETS:
        p = market.prices(mid, START, END)
        last = p.groupby("instrument_id")["date"].max()
        ca = market.corporate_actions(mid, START, END)
        for row in ca[ca["action_type"] == "DELISTING"].itertuples():
            n_delisted += 1
            assert last[row.instrument_id] == row.date
    assert n_delisted > 0


def test_adjusted_close_is_total_return_of_raw_prices_and_actions(market):
    n_div = n_split = 0
    for mid in EQUITY_MARKETS:
        p = market.prices(mid, START, END)
        p = p[p["instrument_id"].str.startswith("EQUITY")].sort_values(["instrument_id", "date"])
        ca = market.corporate_actions(mid, START, END)
        div = ca[ca["action_type"] == "DIVIDEND"].set_index(["instrument_id", "date"])["value"]
        split = ca[ca["action_type"] == "SPLIT"].set_index(["instrument_id", "date"])["value"]
        n_div, n_split = n_div + len(div), n_split + len(split)
        key = pd.MultiIndex.from_frame(p[["instrument_id", "date"]])
        d = div.reindex(key).fillna(0.0).to_numpy()
        s = split.reindex(key).fillna(1.0).to_numpy()
        prev = p.groupby("instrument_id")["close"].shift()
        prev_adj = p.groupby("instrument_id")["adjusted_close"].shift()
        implied = (p["close"] * s + d) / prev
        actual = p["adjusted_close"] / prev_adj
        ok = prev.notna() & (prev > 1.0)
        np.testing.assert_allclose(actual[ok], implied[ok], rtol=2e-3)
        first = p.groupby("instrument_id").head(1)
        np.testing.assert_allclose(first["adjusted_close"], first["close"], rtol=1e-4)
        # a split day's raw close drops by about the ratio
        for (iid, date), ratio in split.items():
            rows = p[p["instrument_id"] == iid].set_index("date")["close"]
            before = rows[rows.index < date].iloc[-1]
            assert rows[date] < before / ratio * 1.5
    assert n_div > 100 and n_split >= 1


def test_index_is_cap_weighted_and_complete(market):
    p = market.prices("US_EQ", START, END)
    idx = p[p["instrument_id"] == "INDEX:US_EQ"]
    assert len(idx) == len(TradingCalendar("US_EQ").sessions(START, END))
    assert idx["close"].iloc[0] == pytest.approx(1000.0)
    inst = market.instruments("US_EQ").set_index("instrument_id")
    assert inst.loc["INDEX:US_EQ", "asset_class"] == "INDEX"


def test_bad_data_rates_and_truth_continues(market, glitchy):
    clean = market.prices("US_EQ", START, END).set_index(["instrument_id", "date"])
    dirty = glitchy.prices("US_EQ", START, END).set_index(["instrument_id", "date"])
    clean = clean[clean.index.get_level_values(0).str.startswith("EQUITY")]
    dirty = dirty[dirty.index.get_level_values(0).str.startswith("EQUITY")]
    n = len(clean)
    missing = clean.index.difference(dirty.index)
    clean = clean.assign(prev_close=clean.groupby(level=0)["close"].shift())
    both = clean.join(dirty, rsuffix="_d", how="inner")
    spike = (np.abs(np.log(both["close_d"] / both["close"])) > 0.15)
    prev_close = both["prev_close"]
    stale = ~spike & (both["close_d"] != both["close"]) & (both["close_d"] == prev_close)
    touched = spike | stale
    for name, count in (("missing", len(missing)), ("spike", spike.sum()),
                        ("stale", stale.sum())):
        assert 0.5 * 0.01 * n < count < 1.6 * 0.01 * n, (name, count, n)
    # untouched rows are identical: glitches never leak into later adjusted closes
    same = both[~touched]
    np.testing.assert_array_equal(same["adjusted_close_d"], same["adjusted_close"])
    np.testing.assert_array_equal(same["close_d"], same["close"])
    assert (both.loc[~touched, "close_d"] == both.loc[~touched, "close"]).all()


# --- stylised facts -------------------------------------------------------------------------
def test_fat_tails_and_volatility_clustering(market):
    r = equity_returns(market, "US_EQ")
    eq = r[[c for c in r.columns if c.startswith("EQUITY")]]
    assert eq.kurt().mean() > 1.0
    acf = eq.abs().apply(lambda s: s.autocorr(1))
    assert acf.mean() > 0.1


def test_risk_off_regimes_are_volatile_and_correlated(market):
    r = equity_returns(market, "US_EQ")
    regime = regimes_of(market, "US_EQ").reindex(r.index)
    index_ret = r["INDEX:US_EQ"]
    eq = r[[c for c in r.columns if c.startswith("EQUITY")]]
    calm_vol = index_ret[regime == "CALM"].std()

    def mean_corr(mask: pd.Series) -> float:
        c = eq[mask].corr().to_numpy()
        return float(np.nanmean(c[~np.eye(len(c), dtype=bool)]))

    calm_corr = mean_corr(regime == "CALM")
    for reg in RISK_OFF:
        assert (regime == reg).sum() >= 10, reg
        assert index_ret[regime == reg].std() >= 2 * calm_vol, reg
        assert mean_corr(regime == reg) > calm_corr, reg


def test_regime_persistence_and_default_seed_episodes():
    m = SyntheticMarket()  # the demo config: seed 42, 2019-2024
    g = m.truth_regimes()
    g = g[g["market_id"] == "GLOBAL"]["regime"].tolist()
    runs = [(k, len(list(v))) for k, v in itertools.groupby(g)]
    lengths = pd.DataFrame(runs, columns=["regime", "days"]).groupby("regime")["days"].mean()
    assert lengths["CALM"] >= 20
    assert lengths.get("CRASH", 0) < lengths["CALM"]
    risk_off_episodes = sum(1 for i, (k, _) in enumerate(runs)
                            if k in RISK_OFF and (i == 0 or runs[i - 1][0] not in RISK_OFF))
    assert risk_off_episodes >= 3
    assert set(g) <= {"CALM", "HIGH_VOL", "GRINDING", "CRASH", "RECOVERY"}


def test_macro_series_follow_regimes(market):
    macro = market.macro(START, END)
    daily = macro[macro["frequency"] == "D"]
    weekdays = pd.bdate_range(START, END)
    for sid, rows in daily.groupby("series_id"):
        assert list(rows["date"]) == list(weekdays), sid
    regime = regimes_of(market, "US_EQ")
    for sid in ("US_CREDIT_SPREAD_IG", "US_CREDIT_SPREAD_HY", "US_IMPLIED_VOL"):
        s = daily[daily["series_id"] == sid].set_index("date")["value"]
        reg = regime.reindex(s.index)
        assert s[reg.isin(RISK_OFF)].mean() > s[reg == "CALM"].mean() * 1.3, sid
    monthly = macro[macro["frequency"] == "M"]
    assert set(monthly["series_id"]) == {"US_CPI_YOY", "US_UNEMPLOYMENT"}
    assert (monthly["date"].dt.dayofweek < 5).all()
    assert (monthly["date"].dt.day > 1).all()  # released after the month ends, with a lag


# --- fundamentals and distress --------------------------------------------------------------
def test_fundamentals_are_lagged_and_reported_on_sessions(market):
    for mid in EQUITY_MARKETS:
        f = market.fundamentals(mid, "2018-01-01", END)
        assert ((f["report_date"] - f["period_end"]).dt.days >= 20).all()
        assert ((f["report_date"] - f["period_end"]).dt.days <= 65).all()
        sessions = set(TradingCalendar(mid).sessions("2018-01-01", END))
        assert f["report_date"].isin(sessions).all()
        items = get_schema("fundamentals").column_names[4:-1]
        assert f[items].notna().all().all()
        assert (f["period_end"].dt.is_quarter_end).all()
        per_issuer = f.groupby("issuer_id").size()
        assert per_issuer.max() == f["period_end"].nunique() >= 16


def test_distress_is_frequent_deteriorates_first_and_shows_in_prices(market):
    events = market.truth_distress_events()
    n_issuers = sum(len(market.issuers(m)) for m in EQUITY_MARKETS)
    assert events["issuer_id"].nunique() / n_issuers >= 0.05
    assert set(events["event_type"]) <= {"CRASH", "DEFAULT_DELISTING"}
    assert ((events["event_date"] - events["onset_date"]).dt.days >= 60).all()
    assert (events["peak_to_trough"] <= -0.5).all()
    for e in events.itertuples():
        p = market.prices(e.market_id, e.onset_date - pd.Timedelta(days=45), e.event_date)
        path = p[p["instrument_id"] == e.instrument_id].set_index("date")["adjusted_close"]
        drawdown = (path / path.cummax()).min() - 1
        ca = market.corporate_actions(e.market_id, e.event_date, e.event_date)
        delisted = ((ca["instrument_id"] == e.instrument_id)
                    & (ca["action_type"] == "DELISTING")).any()
        assert drawdown <= -0.5 or delisted
        assert delisted == (e.event_type == "DEFAULT_DELISTING")
        # fundamentals reported during the phase deteriorate: leverage up, coverage down
        f = market.fundamentals(e.market_id, "2018-01-01", e.event_date)
        f = f[f["issuer_id"] == e.issuer_id]
        before = f[f["period_end"] <= e.onset_date].tail(1)
        during = f[f["period_end"] > e.onset_date + pd.Timedelta(days=45)].tail(1)
        if len(before) and len(during):
            lev = lambda x: float((x["total_liabilities"] / x["total_assets"]).iloc[0])  # noqa: E731
            cov = lambda x: float((x["ebitda"] / x["interest_expense"]).iloc[0])  # noqa: E731
            assert lev(during) > lev(before) and cov(during) < cov(before)


# --- news -----------------------------------------------------------------------------------
def test_news_is_tied_to_events(market):
    articles, links = market.news("US_EQ", START, END)
    assert articles["article_id"].is_unique
    assert list(links["article_id"]) == list(articles["article_id"])
    wraps = links["article_id"].str.contains("-WRAP")
    assert links.loc[wraps, "issuer_id"].isna().all()
    assert links.loc[~wraps, "issuer_id"].notna().all()
    assert (articles["language"] == "en").all()
    sessions = TradingCalendar("US_EQ").sessions_frame(START, END).set_index("date")
    opens = sessions["open_utc"].reindex(articles["date"]).to_numpy()
    assert (articles["timestamp"].to_numpy() >= opens).all()
    # an earnings article on every report date, with beat/miss wording
    f = market.fundamentals("US_EQ", START, END)
    earn = articles[articles["article_id"].str.contains("-EARN-")]
    assert len(earn) == len(f)
    assert earn["headline"].str.contains("beats|misses").all()
    # distress wording during deterioration, and an event article
    events = market.truth_distress_events()
    e = events[events["market_id"] == "US_EQ"].iloc[0]
    mine = articles[links["issuer_id"] == e["issuer_id"]]
    in_phase = mine[(mine["date"] > e["onset_date"]) & (mine["date"] < e["event_date"])]
    assert in_phase["article_id"].str.contains("-DIST-").sum() >= 2
    kind = "DEFAULT" if e["event_type"] == "DEFAULT_DELISTING" else "CRASH"
    assert (mine["article_id"].str.contains(f"-{kind}-") & (mine["date"] == e["event_date"])).any()


def test_a_market_kept_on_disk_gives_the_same_frames(tmp_path):
    cfg = small_config(end_date=SHORT_END.date())
    first = SyntheticMarket(cfg, cache_dir=tmp_path)
    simulated = all_frames(first, START, SHORT_END)
    stored = sorted(p.name for p in tmp_path.glob("*.pkl"))
    assert len(stored) == len(EQUITY_MARKETS)
    # a new process: the equity markets come from the files, news included
    loaded = all_frames(SyntheticMarket(cfg, cache_dir=tmp_path), START, SHORT_END)
    for name, frame in simulated.items():
        pd.testing.assert_frame_equal(loaded[name], frame, obj=name)
    # another config is another simulation, never the stored one
    SyntheticMarket(small_config(end_date=SHORT_END.date(), seed=2),
                    cache_dir=tmp_path).prices("US_EQ", START, SHORT_END)
    assert len(list(tmp_path.glob("*.pkl"))) == len(stored) + 1
