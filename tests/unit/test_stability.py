"""Stability vectors: components in [0, 1] with the monotonicity they promise, the weighted
score, regime awareness, stress contagion, the entity rows, look-ahead invariance, backfill
equality, the table schema and the config."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_dagster.core.config import load_engine_config, validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.profiles.flags import profile_weakness
from prometheus_dagster.engines.stability import (
    COMPONENTS,
    StabilityConfig,
    StabilityInputs,
    comovement_component,
    compute_stability,
    hill,
    liquidity_component,
    origin_slope,
    stability_score,
    stress_days,
)

CFG = StabilityConfig()
PROFILES_CFG = load_engine_config("profiles").config
MARKET = "TEST_EQ"
SESSIONS = 400
SECTORS = ("TECH", "UTIL")
PER_SECTOR = 6
DELIST_AT = 330  # TECH3 stops trading here
RISING_VOL_FROM = SESSIONS - 80  # the idiosyncratic vol of TECH2 and UTIL2 triples
FLAGS = ("leverage_score", "earnings_quality_score", "liquidity_risk", "governance_risk_score")


def _long(wide: pd.DataFrame, name: str) -> pd.DataFrame:
    out = wide.stack(future_stack=True).rename(name).reset_index()
    return out.set_axis(["date", "instrument_id", name], axis=1)


def build_market(seed: int = 7) -> tuple[StabilityInputs, pd.DatetimeIndex]:
    """Two sectors of six issuers and three FX rates over 400 sessions, with a stress
    episode. Per sector: name 0 is defensive (low beta, no stress loading), name 5 falls
    hard with the market on its worst days, name 2 has rising vol, TECH3 delists and UTIL5
    has no profile."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2022-01-03", periods=SESSIONS)
    m = rng.normal(0.0003, 0.01, SESSIONS)
    m[150:170] = rng.normal(-0.01, 0.03, 20)
    worst = m <= np.quantile(m, 0.15)
    rets, instruments, issuers = {}, [], []
    for sector in SECTORS:
        f = rng.normal(0, 0.006, SESSIONS)
        for j in range(PER_SECTOR):
            iid = f"{sector}{j}"
            beta, stress_loading = 0.6 + 0.15 * j, 0.0
            if j == 0:
                beta = 0.2
            if j == PER_SECTOR - 1:
                stress_loading = 1.5
            idio = rng.normal(0, 0.012, SESSIONS)
            if j == 2:
                idio[RISING_VOL_FROM:] *= 3.0
            rets[f"EQ:{iid}"] = beta * m + stress_loading * m * worst + f + idio
            instruments.append({"instrument_id": f"EQ:{iid}", "issuer_id": iid,
                                "asset_class": "EQUITY"})
            issuers.append({"issuer_id": iid, "issuer_type": "COMPANY", "sector": sector})
    for k in range(3):
        rets[f"FX:C{k}"] = 0.3 * (k - 1) * m + rng.normal(0, 0.005, SESSIONS)
        instruments.append({"instrument_id": f"FX:C{k}", "issuer_id": None,
                            "asset_class": "FX"})
    ret = pd.DataFrame(rets, index=dates)
    ret.loc[dates[DELIST_AT]:, "EQ:TECH3"] = np.nan
    priced = ret.notna()
    vol = _long(ret.rolling(21, min_periods=17).std() * np.sqrt(252), "vol_21d")
    vol["vol_63d"] = _long(ret.rolling(63, min_periods=51).std() * np.sqrt(252),
                           "vol_63d")["vol_63d"]
    vol = vol[priced.stack(future_stack=True).to_numpy()]
    eq = [c for c in ret.columns if c.startswith("EQ:")]
    level = rng.normal(16, 1, len(eq))
    traded = pd.DataFrame(np.exp(level[None, :] + rng.normal(0, 0.3, (SESSIONS, len(eq)))),
                          index=dates, columns=eq)
    adv = traded.rolling(21, min_periods=1).mean()
    amihud = (ret[eq].abs() / traded).rolling(21, min_periods=5).mean()
    liq = _long(adv, "adv_21d")
    liq["amihud_21d"] = _long(amihud, "amihud_21d")["amihud_21d"]
    liq = liq[priced[eq].stack(future_stack=True).to_numpy()]
    profiles = []
    for n, row in enumerate(issuers):
        if row["issuer_id"] == "UTIL5":
            continue
        for d in dates[::21]:
            flags = {"leverage_score": 0.1 + 0.07 * n,
                     "earnings_quality_score": 0.2 + 0.05 * (n % 4),
                     "liquidity_risk": 0.1 * (n % 3), "governance_risk_score": np.nan}
            profiles.append({"issuer_id": row["issuer_id"], "as_of_date": d, **flags,
                             "profile_weakness": _weakness(flags)})
    labels = pd.Series("RISK_ON_LOW_VOL", index=dates, dtype=object)
    labels.iloc[150:200] = "RISK_OFF_PANIC"
    returns = _long(ret, "ret_1d")
    inputs = StabilityInputs(
        returns=returns[priced.stack(future_stack=True).to_numpy()], volatility=vol,
        liquidity=liq, instruments=pd.DataFrame(instruments), issuers=pd.DataFrame(issuers),
        profiles=pd.DataFrame(profiles), index_returns=pd.Series(m, index=dates),
        regime_labels=labels)
    return inputs, dates


def _weakness(flags: dict) -> float:
    return float(profile_weakness({k: np.asarray(flags[k], float) for k in FLAGS},
                                  PROFILES_CFG))


INPUTS, DATES = build_market()
D = DATES[-1]
BASE = compute_stability(MARKET, INPUTS, [D], CFG, "stability@test")


def _row(out: pd.DataFrame, entity_id: str, entity_type: str = "ISSUER") -> pd.Series:
    sel = out[(out["entity_type"] == entity_type) & (out["entity_id"] == entity_id)]
    assert len(sel) == 1, (entity_type, entity_id, len(sel))
    return sel.iloc[0]


def _between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
             col: str = "date") -> pd.DataFrame:
    dates = pd.to_datetime(frame[col])
    return frame[(dates >= start) & (dates <= end)]


def _until(inputs: StabilityInputs, day: pd.Timestamp) -> StabilityInputs:
    start = pd.Timestamp.min
    return replace(inputs, returns=_between(inputs.returns, start, day),
                   volatility=_between(inputs.volatility, start, day),
                   liquidity=_between(inputs.liquidity, start, day),
                   profiles=_between(inputs.profiles, start, day, "as_of_date"),
                   index_returns=inputs.index_returns[:day],
                   regime_labels=inputs.regime_labels[:day])


# --- the maps and the score -------------------------------------------------------------------

def test_hill_is_a_decreasing_map_to_the_unit_interval():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 10.0, np.nan])
    y = hill(x, 1.0, 2.0)
    assert y[:2].tolist() == [1.0, 1.0]
    assert y[3] == pytest.approx(0.5)
    assert y[4] == pytest.approx(0.2)
    assert np.all(np.diff(y[:6]) <= 0) and np.isnan(y[6])


def test_score_is_the_weighted_mean_of_present_components_by_hand():
    comps = pd.DataFrame({"liquidity": [0.5, 0.5, np.nan, np.nan],
                          "volatility": [1.0, 1.0, 0.4, np.nan],
                          "contagion": [0.0, 0.0, np.nan, np.nan],
                          "fundamental": [1.0, np.nan, np.nan, np.nan]})
    w = CFG.weights.model_dump()
    s = stability_score(comps, w)
    assert s.iloc[0] == pytest.approx(0.3 * 0.5 + 0.3 * 1.0 + 0.2 * 0.0 + 0.2 * 1.0)
    assert s.iloc[1] == pytest.approx((0.3 * 0.5 + 0.3 * 1.0) / 0.8)
    assert s.iloc[2] == pytest.approx(0.4)
    assert np.isnan(s.iloc[3])
    # a component column that is absent counts as missing
    assert stability_score(comps.drop(columns="fundamental"), w).iloc[0] == pytest.approx(
        (0.3 * 0.5 + 0.3 * 1.0) / 0.8)


def test_liquidity_cross_section_by_hand():
    idx = pd.bdate_range("2024-01-01", periods=1)
    amihud = pd.DataFrame([[1e-9, 4e-9, 2e-9, np.nan]], index=idx, columns=list("abcd"))
    adv = pd.DataFrame([[1e6, 1e6, 1e6, 1e6]], index=idx, columns=list("abcd"))
    parts = liquidity_component(amihud, adv, CFG)
    assert parts.cross_section.iloc[0, :3].tolist() == pytest.approx(
        [1 - 0.5 / 3, 1 - 2.5 / 3, 1 - 1.5 / 3])
    assert np.isnan(parts.cross_section.iloc[0, 3])
    assert parts.own_history.isna().all().all()  # one session < min_history_sessions
    assert parts.component.iloc[0, :3].tolist() == pytest.approx(
        parts.cross_section.iloc[0, :3].tolist())
    assert np.isnan(parts.component.iloc[0, 3])


def test_stress_slope_through_the_origin_by_hand():
    x = np.array([-0.05, -0.04, 0.01, 0.02, -0.03, 0.0, np.nan, 0.01, 0.02, 0.03])
    mask = stress_days(x, 0.3)
    assert mask.tolist() == [True, True, False, False, True, False, False, False, False,
                             False]
    y = np.column_stack([2 * x, -x, np.where(mask, np.nan, x)])
    beta, n = origin_slope(y, x, mask)
    assert beta[:2] == pytest.approx([2.0, -1.0])
    assert np.isnan(beta[2]) and n.tolist() == [3, 3, 0]


def test_market_comovement_map():
    assert comovement_component(1.0, 0.3, CFG) == pytest.approx(0.0)
    assert comovement_component(0.3, 0.3, CFG) == pytest.approx(1 - 0.5 * 0.3)
    assert comovement_component(0.7, 0.3, CFG) < comovement_component(0.5, 0.3, CFG)


# --- the rows ---------------------------------------------------------------------------------

def test_components_are_in_the_unit_interval_and_score_is_their_weighted_mean():
    out = compute_stability(MARKET, INPUTS, list(DATES[-60::10]), CFG, "stability@test")
    for c in (*COMPONENTS, "stability_score"):
        v = out[c].dropna()
        assert len(v) and ((v >= 0) & (v <= 1)).all(), c
    w = np.array([CFG.weights.model_dump()[c] for c in COMPONENTS])
    comps = out[list(COMPONENTS)].to_numpy()
    present = ~np.isnan(comps)
    expected = (np.nan_to_num(comps) * w).sum(1) / (present * w).sum(1)
    assert np.allclose(out["stability_score"], expected)


def test_entity_rows():
    out = BASE
    assert out["as_of_date"].eq(D).all()
    issuers = set(out.loc[out["entity_type"] == "ISSUER", "entity_id"])
    everyone = {f"{s}{j}" for s in SECTORS for j in range(PER_SECTOR)}
    assert issuers == everyone - {"TECH3"}  # delisted: no price on D, no row
    sectors = out[out["entity_type"] == "SECTOR"].set_index("entity_id")
    assert sectors["members"].to_dict() == {f"{MARKET}:TECH": 5, f"{MARKET}:UTIL": 6}
    market = _row(out, MARKET, "MARKET")
    assert market["members"] == 11
    assert set(out.loc[out["entity_type"] == "FX", "entity_id"]) == {"FX:C0", "FX:C1", "FX:C2"}
    assert out.loc[out["entity_type"].isin(["ISSUER", "FX"]), "members"].isna().all()
    fx = out[out["entity_type"] == "FX"]
    assert fx["liquidity"].isna().all() and fx["fundamental"].isna().all()
    assert fx[["volatility", "contagion", "market_stress_beta"]].notna().all().all()
    assert out["regime_label"].eq("RISK_ON_LOW_VOL").all()
    # the sector mean of its members' liquidity and fundamental values
    tech = out[(out["entity_type"] == "ISSUER") & out["entity_id"].str.startswith("TECH")]
    assert sectors.at[f"{MARKET}:TECH", "liquidity"] == pytest.approx(tech["liquidity"].mean())
    assert sectors.at[f"{MARKET}:TECH", "fundamental"] == pytest.approx(
        tech["fundamental"].mean())
    # the delisted issuer still has rows while it trades
    before = compute_stability(MARKET, INPUTS, [DATES[DELIST_AT - 1]], CFG, "stability@test")
    assert _row(before, "TECH3")["stability_score"] > 0
    assert _row(before, f"{MARKET}:TECH", "SECTOR")["members"] == 6
    assert list(out.columns) == list(validate_frame("stability_vectors", out).columns)


def test_output_is_sorted_and_validates():
    out = compute_stability(MARKET, INPUTS, list(DATES[-3:]), CFG, "stability@test")
    keys = out[["as_of_date", "entity_type", "entity_id"]]
    assert keys.equals(keys.sort_values(list(keys.columns)).reset_index(drop=True))
    stored = validate_frame("stability_vectors", out)
    assert json.loads(stored["diagnostics"].iloc[0])["missing"] == out["diagnostics"].iloc[0][
        "missing"]
    assert compute_stability(MARKET, INPUTS, [pd.Timestamp("1990-01-02")], CFG, "x").empty


def test_missing_profile_gives_nan_fundamental_with_a_note_and_a_score_from_the_rest():
    row = _row(BASE, "UTIL5")
    assert np.isnan(row["fundamental"])
    assert "fundamental" in row["diagnostics"]["missing"]
    assert any("no profile" in n for n in row["diagnostics"]["notes"])
    w = CFG.weights
    expected = ((w.liquidity * row["liquidity"] + w.volatility * row["volatility"]
                 + w.contagion * row["contagion"]) / (w.liquidity + w.volatility + w.contagion))
    assert row["stability_score"] == pytest.approx(expected)
    assert not np.isnan(_row(BASE, "UTIL4")["fundamental"])


def test_short_own_history_falls_back_on_the_cross_section_with_a_note():
    start = DATES[SESSIONS - 30]
    new = INPUTS.volatility["instrument_id"].eq("EQ:UTIL3") & (INPUTS.volatility["date"] < start)
    out = compute_stability(MARKET, replace(INPUTS, volatility=INPUTS.volatility[~new]), [D],
                            CFG, "stability@test")
    diag = _row(out, "UTIL3")["diagnostics"]
    assert diag["reference_source"] == "cross_section"
    assert any("reference_vol is the cross-sectional median" in n for n in diag["notes"])
    assert _row(BASE, "UTIL3")["diagnostics"]["reference_source"] == "own_history"


def test_missing_regime_label_uses_multiplier_one_with_a_note():
    labels = INPUTS.regime_labels[INPUTS.regime_labels.index < D - pd.Timedelta(days=30)]
    out = compute_stability(MARKET, replace(INPUTS, regime_labels=labels), [D], CFG, "x")
    row = _row(out, "TECH1")
    assert row["regime_label"] is None and row["diagnostics"]["regime_multiplier"] == 1.0
    assert any(n.startswith("regime: no label") for n in row["diagnostics"]["notes"])


def test_equal_weighted_index_and_index_only_market():
    out = compute_stability(MARKET, replace(INPUTS, index_returns=None), [D], CFG, "x")
    assert _row(out, "TECH5")["diagnostics"]["index"] == "equal_weighted"
    assert _row(out, "TECH5")["market_stress_beta"] > _row(out, "TECH0")["market_stress_beta"]
    idx = pd.DataFrame({"instrument_id": "INDEX:T", "date": DATES, "ret_1d": INPUTS.index_returns
                        .to_numpy()})
    fx = INPUTS.returns["instrument_id"].str.startswith("FX:")
    only = StabilityInputs(
        returns=pd.concat([INPUTS.returns[fx], idx]),
        volatility=INPUTS.volatility[INPUTS.volatility["instrument_id"].str.startswith("FX:")],
        liquidity=INPUTS.liquidity.iloc[:0],
        instruments=pd.DataFrame([{"instrument_id": "INDEX:T", "issuer_id": None,
                                   "asset_class": "INDEX"},
                                  *INPUTS.instruments[INPUTS.instruments["asset_class"] == "FX"]
                                  .to_dict("records")]),
        issuers=INPUTS.issuers.iloc[:0], profiles=INPUTS.profiles.iloc[:0])
    out = compute_stability("IDX", only, [D], CFG, "x")
    assert set(out["entity_type"]) == {"MARKET", "FX"}
    market = _row(out, "IDX", "MARKET")
    assert market["members"] == 1 and market["diagnostics"]["basis"] == "index:instrument:INDEX:T"
    assert 0 < market["volatility"] <= 1 and 0 < market["stability_score"] <= 1
    assert np.isnan(market["liquidity"]) and np.isnan(market["contagion"])
    assert out.loc[out["entity_type"] == "FX", "contagion"].notna().all()
    validate_frame("stability_vectors", out)


# --- regime awareness and contagion -----------------------------------------------------------

def test_the_same_vol_ratio_is_more_stable_in_a_panic_than_in_calm():
    def with_label(label: str) -> pd.DataFrame:
        labels = INPUTS.regime_labels.copy()
        labels[D] = label
        out = compute_stability(MARKET, replace(INPUTS, regime_labels=labels), [D], CFG, "x")
        return out[out["entity_type"] == "ISSUER"].set_index("entity_id")

    calm, panic = with_label("RISK_ON_LOW_VOL"), with_label("RISK_OFF_PANIC")
    assert np.allclose(panic["vol_ratio"] * 2.0, calm["vol_ratio"])
    assert (panic["volatility"] > calm["volatility"]).all()
    assert (panic["stability_score"] > calm["stability_score"]).all()
    assert panic["regime_label"].eq("RISK_OFF_PANIC").all()


def test_names_that_fall_with_the_market_on_stress_days_score_lower_on_contagion():
    for sector in SECTORS:
        defensive, hit = _row(BASE, f"{sector}0"), _row(BASE, f"{sector}5")
        assert hit["market_stress_beta"] > defensive["market_stress_beta"] + 0.5
        assert hit["contagion"] < defensive["contagion"] - 0.3
        assert np.isfinite(hit["sector_stress_beta"])
    assert _row(BASE, "TECH1")["diagnostics"]["market_stress_days"] >= CFG.min_stress_days


def test_rising_vol_lowers_the_volatility_component():
    early = compute_stability(MARKET, INPUTS, [DATES[RISING_VOL_FROM - 1]], CFG, "x")
    for name in ("TECH2", "UTIL2"):
        assert _row(BASE, name)["vol_ratio"] > 1.3
        assert _row(BASE, name)["volatility"] < _row(early, name)["volatility"] - 0.2


# --- monotonicity -----------------------------------------------------------------------------

NAMES = [f"{s}{j}" for s in SECTORS for j in range(PER_SECTOR) if f"{s}{j}" != "TECH3"]
PROPERTY = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(name=st.sampled_from([n for n in NAMES if n != "UTIL5"]),
       bump=st.floats(0.01, 1.0))
def test_worse_leverage_never_raises_the_score(name, bump):
    prof = INPUTS.profiles.copy()
    sel = prof["issuer_id"] == name
    prof.loc[sel, "leverage_score"] = np.minimum(prof.loc[sel, "leverage_score"] + bump, 1.0)
    prof.loc[sel, "profile_weakness"] = profile_weakness(
        {k: prof.loc[sel, k].to_numpy(float) for k in FLAGS}, PROFILES_CFG)
    out = compute_stability(MARKET, replace(INPUTS, profiles=prof), [D], CFG, "x")
    before, after = _row(BASE, name), _row(out, name)
    assert after["fundamental"] <= before["fundamental"] + 1e-12
    assert after["stability_score"] <= before["stability_score"] + 1e-12


@PROPERTY
@given(name=st.sampled_from(NAMES), scale=st.floats(1.0, 4.0),
       recent=st.integers(1, 120))
def test_higher_volatility_never_raises_the_volatility_component_or_score(name, scale, recent):
    inst = f"EQ:{name}"
    vol = INPUTS.volatility.copy()
    sel = vol["instrument_id"].eq(inst) & (vol["date"] > DATES[-recent - 1])
    vol.loc[sel, "vol_21d"] *= scale
    ret = INPUTS.returns.copy()
    ret.loc[ret["instrument_id"] == inst, "ret_1d"] *= scale
    out = compute_stability(MARKET, replace(INPUTS, volatility=vol, returns=ret), [D], CFG, "x")
    before, after = _row(BASE, name), _row(out, name)
    assert after["volatility"] <= before["volatility"] + 1e-12
    assert after["contagion"] <= before["contagion"] + 1e-12
    assert after["stability_score"] <= before["stability_score"] + 1e-12


@PROPERTY
@given(name=st.sampled_from(NAMES), scale=st.floats(1.0, 50.0))
def test_higher_amihud_never_raises_liquidity(name, scale):
    liq = INPUTS.liquidity.copy()
    liq.loc[liq["instrument_id"] == f"EQ:{name}", "amihud_21d"] *= scale
    out = compute_stability(MARKET, replace(INPUTS, liquidity=liq), [D], CFG, "x")
    assert _row(out, name)["liquidity"] <= _row(BASE, name)["liquidity"] + 1e-12
    assert _row(out, name)["stability_score"] <= _row(BASE, name)["stability_score"] + 1e-12


@PROPERTY
@given(name=st.sampled_from(NAMES), scale=st.floats(1.0, 20.0), recent=st.integers(1, 200))
def test_higher_adv_never_lowers_liquidity(name, scale, recent):
    liq = INPUTS.liquidity.copy()
    sel = liq["instrument_id"].eq(f"EQ:{name}") & (liq["date"] > DATES[-recent - 1])
    liq.loc[sel, "adv_21d"] *= scale
    out = compute_stability(MARKET, replace(INPUTS, liquidity=liq), [D], CFG, "x")
    assert _row(out, name)["liquidity"] >= _row(BASE, name)["liquidity"] - 1e-12


# --- point in time ----------------------------------------------------------------------------

def test_data_after_the_date_does_not_change_its_rows():
    day = DATES[300]
    known = _until(INPUTS, day)
    later = DATES > day
    ret = INPUTS.returns.copy()
    ret.loc[ret["date"] > day, "ret_1d"] *= -5.0  # a wild future
    prof = INPUTS.profiles.copy()
    prof.loc[prof["as_of_date"] > day, ["leverage_score", "profile_weakness"]] = 1.0
    labels = INPUTS.regime_labels.copy()
    labels[later] = "RISK_OFF_PANIC"
    index = INPUTS.index_returns.copy()
    index[later] *= -5.0
    vol = INPUTS.volatility.copy()
    vol.loc[vol["date"] > day, "vol_21d"] *= 3.0
    appended = replace(INPUTS, returns=ret, profiles=prof, regime_labels=labels,
                       index_returns=index, volatility=vol)
    a = compute_stability(MARKET, known, [day], CFG, "x")
    b = compute_stability(MARKET, appended, [day], CFG, "x")
    assert len(a) == 2 * PER_SECTOR + 2 + 1 + 3
    pd.testing.assert_frame_equal(a, b)


def test_a_backfill_equals_per_date_calls():
    days = list(DATES[-40::8])
    together = compute_stability(MARKET, INPUTS, days, CFG, "x")
    one_by_one = pd.concat([compute_stability(MARKET, INPUTS, [d], CFG, "x") for d in days],
                           ignore_index=True)
    pd.testing.assert_frame_equal(together, one_by_one)


def test_per_date_calls_on_just_their_look_back_equal_a_backfill_exactly():
    cfg = StabilityConfig(contagion_window=120, vol_history_sessions=63,
                          liquidity_history_sessions=63, min_history_sessions=21,
                          min_stress_days=5)
    # what an asset reads for one date: its windows' sessions (a basket's reference vol is
    # the median of 63-session vols over vol_history_sessions) and nothing after it
    look_back = max(cfg.contagion_window, cfg.vol_history_sessions + 63) + 5
    days = [DATES[i] for i in (260, 300, SESSIONS - 1)]
    together = compute_stability(MARKET, INPUTS, days, cfg, "x")
    parts = []
    for day in days:
        first = DATES[DATES.get_loc(day) - look_back]
        known = replace(
            INPUTS, returns=_between(INPUTS.returns, first, day),
            volatility=_between(INPUTS.volatility, first, day),
            liquidity=_between(INPUTS.liquidity, first, day),
            profiles=_between(INPUTS.profiles, day - pd.Timedelta(days=100), day, "as_of_date"),
            index_returns=INPUTS.index_returns[first:day],
            regime_labels=INPUTS.regime_labels[first:day])
        parts.append(compute_stability(MARKET, known, [day], cfg, "x"))
    pd.testing.assert_frame_equal(together, pd.concat(parts, ignore_index=True),
                                  check_exact=True)
    assert together["contagion"].notna().any()


def test_output_is_deterministic():
    pd.testing.assert_frame_equal(
        BASE, compute_stability(MARKET, INPUTS, [D], CFG, "stability@test"))


# --- config -----------------------------------------------------------------------------------

def test_default_yaml_loads():
    loaded = load_engine_config("stability")
    assert loaded.config == StabilityConfig()
    assert loaded.config_id.startswith("stability@1-")
    assert loaded.config.regime_vol_multiplier["RISK_OFF_PANIC"] == 2.0


@pytest.mark.parametrize("change, field", [
    ({"stress_quantile": 0.7}, "field 'stress_quantile' = 0.7"),
    ({"weights": {"liquidity": -0.1}}, "weights.liquidity"),
    ({"weights": {"liquidity": 0, "volatility": 0, "contagion": 0, "fundamental": 0}},
     "weights"),
    ({"market_weight": 1.5}, "market_weight"),
    ({"regime_vol_multiplier": {"RISK_OFF_PANIC": 0.0}}, "regime_vol_multiplier"),
    ({"min_stress_days": 60}, "field 'min_stress_days' = 60"),
    ({"min_history_sessions": 300}, "field 'min_history_sessions' = 300"),
    ({"contagion_windw": 504}, "contagion_windw"),
])
def test_a_bad_config_value_raises_config_error_naming_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        validate_config({"engine": "stability", "version": "1", **change})


def test_step_range_in_chunks_equals_date_by_date_runs():
    """The step computes a range a chunk at a time, each chunk on the window a run of it
    would read; that equals running each date on its own."""
    from prometheus_dagster.steps.stability import stability_inputs, stability_vectors

    cfg = StabilityConfig(contagion_window=120, vol_history_sessions=63,
                          liquidity_history_sessions=63, min_history_sessions=21,
                          min_stress_days=5)
    declared = stability_inputs(cfg, with_profiles=True, with_regime=True)
    days = [pd.Timestamp(d) for d in DATES[-18:]]
    together = stability_vectors(INPUTS, "US_EQ", days, cfg, "x", declared, chunk=5)
    one_by_one = pd.concat([stability_vectors(INPUTS, "US_EQ", [d], cfg, "x", declared)
                            for d in days], ignore_index=True)
    assert set(together["as_of_date"]) == set(days)
    assert together["contagion"].notna().any() and together["fundamental"].notna().any()
    pd.testing.assert_frame_equal(together, one_by_one, check_exact=True)
