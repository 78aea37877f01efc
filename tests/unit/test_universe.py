"""Universe engine: hard filters, screens, soft targets, caps, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.universe import UniverseRules, select_universe, select_universes

DATE = pd.Timestamp("2024-03-29")
KW = dict(market_id="US", strategy_id="S1", as_of_date=DATE, config_id="strategy@1-abc")


def _cand(iid: str, **over: object) -> dict:
    base = dict(instrument_id=iid, issuer_id=f"ISS_{iid}", asset_class="EQUITY", status="ACTIVE",
                sector="Tech", close=50.0, adv_21d=5e6, history_sessions=500, has_profile=True,
                leverage_score=0.2, earnings_quality_score=0.2, liquidity_risk=0.2,
                soft_target_class="NONE", score=0.5)
    base.update(over)
    return base


def _by_id(out: pd.DataFrame) -> dict[str, dict]:
    recs = out.to_dict("records")
    return {r["instrument_id"]: {**r, "reasons": json.loads(r["reasons"])} for r in recs}


def test_hand_example_filters_and_screens() -> None:
    rules = UniverseRules(exclusion_list=("I_EXC", "ISS_I_ISS"), max_per_sector=2, max_size=4,
                          core_size=2)
    cands = pd.DataFrame([
        _cand("A", score=0.9), _cand("B", score=0.8, sector="Energy"),
        _cand("C", score=0.7), _cand("D", score=0.6),            # D: Tech full
        _cand("E", score=0.55, sector="Health", leverage_score=np.nan),
        _cand("F", score=0.5, sector="Health"),                  # beyond max_size 4
        _cand("I_BOND", asset_class="BOND"), _cand("I_DEL", status="DELISTED"),
        _cand("I_ADV", adv_21d=1e5), _cand("I_PX", close=0.5),
        _cand("I_HIST", history_sessions=50), _cand("I_PROF", has_profile=False),
        _cand("I_EXC"), _cand("I_ISS"), _cand("I_LEV", leverage_score=0.95),
        _cand("I_EQ", earnings_quality_score=0.93), _cand("I_LIQ", liquidity_risk=0.99),
        _cand("I_SCORE", score=np.nan), _cand("I_SOFT", soft_target_class="SOFT_TARGET"),
    ])
    r = _by_id(select_universe(cands, rules, **KW))
    assert len(r) == len(cands)
    assert [r[i]["tier"] for i in "ABCE"] == ["CORE", "CORE", "SATELLITE", "SATELLITE"]
    assert r["A"]["side_allowed"] == "LONG" and r["A"]["rank"] == 1
    assert r["E"]["reasons"] == ["leverage_score missing"]
    assert r["D"]["tier"] == "EXCLUDED" and r["D"]["reasons"] == ["sector cap (Tech: 2)"]
    assert r["F"]["tier"] == "EXCLUDED" and r["F"]["reasons"] == ["beyond max_size 4"]
    expected = {
        "I_BOND": "asset class BOND not in EQUITY",
        "I_DEL": "status DELISTED is not ACTIVE",
        "I_ADV": "adv_21d 100000 below min_adv 1e+06",
        "I_PX": "price 0.5 below min_price 1",
        "I_HIST": "history 50 sessions below min_history_sessions 126",
        "I_PROF": "no profile",
        "I_EXC": "on exclusion list (I_EXC)",
        "I_ISS": "on exclusion list (ISS_I_ISS)",
        "I_LEV": "leverage_score 0.95 above max 0.9",
        "I_EQ": "earnings_quality_score 0.93 above max 0.9",
        "I_LIQ": "liquidity_risk 0.99 above max 0.95",
        "I_SCORE": "no assessment score",
        "I_SOFT": "soft target (long-only book)",
    }
    for iid, reason in expected.items():
        assert r[iid]["tier"] == "EXCLUDED", iid
        assert r[iid]["reasons"] == [reason], iid
        assert r[iid]["side_allowed"] == "NONE" and pd.isna(r[iid]["rank"])


def test_soft_target_policies_and_watchlist() -> None:
    cands = pd.DataFrame([_cand("A", score=0.9, soft_target_class="WATCHLIST"),
                          _cand("B", score=0.8, soft_target_class="SOFT_TARGET"),
                          _cand("C", score=0.7, soft_target_class=np.nan)])
    ex = _by_id(select_universe(cands, UniverseRules(core_size=1), **KW))
    assert ex["A"]["tier"] == "SATELLITE" and "watchlist: at most SATELLITE" in ex["A"]["reasons"]
    assert ex["B"]["tier"] == "EXCLUDED"
    assert ex["C"]["tier"] == "CORE" and ex["C"]["side_allowed"] == "LONG"
    ls = _by_id(select_universe(cands, UniverseRules(core_size=3,
                                                     soft_target_policy="SHORT_ONLY"), **KW))
    assert ls["A"]["tier"] == "SATELLITE" and ls["A"]["side_allowed"] == "BOTH"
    assert ls["B"]["tier"] == "CORE" and ls["B"]["side_allowed"] == "SHORT"
    assert ls["B"]["reasons"] == ["soft target: short side only"]
    assert ls["C"]["side_allowed"] == "BOTH"


def test_bad_rules_name_the_field() -> None:
    with pytest.raises(ValidationError, match="core_size"):
        UniverseRules(core_size=20, max_size=10)
    with pytest.raises(ValidationError, match="max_per_sector"):
        UniverseRules(max_per_sector=0)
    with pytest.raises(ValidationError, match="soft_target_policy"):
        UniverseRules(soft_target_policy="MAYBE")
    with pytest.raises(ValidationError, match="asset_classes"):
        UniverseRules(asset_classes=())
    with pytest.raises(ValidationError, match="min_adv"):
        UniverseRules(min_adv=-1)
    with pytest.raises(ValidationError, match="unknown_key"):
        UniverseRules(unknown_key=1)


def _random_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def nanify(x: np.ndarray, p: float = 0.1) -> np.ndarray:
        return np.where(rng.random(len(x)) < p, np.nan, x)

    return pd.DataFrame({
        "instrument_id": [f"I{i:03d}" for i in rng.permutation(n)],
        "issuer_id": [f"ISS{i % 7}" for i in range(n)],
        "asset_class": rng.choice(["EQUITY", "EQUITY", "EQUITY", "ETF"], n),
        "status": rng.choice(["ACTIVE"] * 5 + ["DELISTED"], n),
        "sector": rng.choice(["Tech", "Energy", "Health", None], n),
        "close": nanify(rng.uniform(0.1, 100, n), 0.03),
        "adv_21d": rng.uniform(1e4, 1e7, n),
        "history_sessions": rng.integers(0, 400, n),
        "has_profile": rng.random(n) < 0.9,
        "leverage_score": nanify(rng.random(n)),
        "earnings_quality_score": nanify(rng.random(n)),
        "liquidity_risk": nanify(rng.random(n)),
        "soft_target_class": rng.choice(["NONE", "NONE", "WATCHLIST", "SOFT_TARGET", None], n),
        "score": nanify(np.round(rng.random(n), 1), 0.1),  # rounded: ties happen
    })


def _eligible(row: dict, rules: UniverseRules) -> bool:
    def bad(v: object) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    screens_ok = all(bad(row[f]) or row[f] <= lim for f, lim in rules.screen_limits().items())
    return (row["asset_class"] in rules.asset_classes
            and (not rules.require_active or row["status"] == "ACTIVE")
            and not bad(row["close"]) and row["close"] >= rules.min_price
            and row["adv_21d"] >= rules.min_adv
            and row["history_sessions"] >= rules.min_history_sessions
            and (not rules.require_profile or bool(row["has_profile"]))
            and row["instrument_id"] not in rules.exclusion_list
            and row["issuer_id"] not in rules.exclusion_list
            and screens_ok and not bad(row["score"])
            and not (row["soft_target_class"] == "SOFT_TARGET"
                     and rules.soft_target_policy == "EXCLUDE"))


rules_st = st.builds(
    lambda size, core, sector, adv, hist, policy, lev, excl: UniverseRules(
        max_size=size, core_size=min(core, size), max_per_sector=sector, min_adv=adv,
        min_history_sessions=hist, soft_target_policy=policy, max_leverage_score=lev,
        exclusion_list=excl),
    st.integers(1, 40), st.integers(0, 40), st.integers(1, 15),
    st.sampled_from([0.0, 1e5, 1e6, 5e6]), st.integers(0, 300),
    st.sampled_from(["EXCLUDE", "SHORT_ONLY"]), st.floats(0.1, 1.0),
    st.sampled_from([(), ("ISS3",), ("I001", "ISS5")]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(10, 80), rules=rules_st)
def test_property_hard_constraints(seed: int, n: int, rules: UniverseRules) -> None:
    cands = _random_frame(seed, n)
    out = select_universe(cands, rules, **KW)
    validate_frame("universes", out)
    assert len(out) == n and set(out["instrument_id"]) == set(cands["instrument_id"])
    c = cands.assign(sector=cands["sector"].fillna("UNKNOWN")).set_index("instrument_id")
    m = out.set_index("instrument_id").join(c[["sector", "soft_target_class", "score"]])
    sel = m[m["tier"].isin(["CORE", "SATELLITE"])]
    rows = {r["instrument_id"]: r for r in cands.to_dict("records")}
    eligible = {i for i, r in rows.items() if _eligible(r, rules)}
    assert set(sel.index) <= eligible
    assert (sel.groupby("sector").size() <= rules.max_per_sector).all()
    assert len(sel) <= rules.max_size
    assert (m["tier"] == "CORE").sum() <= rules.core_size
    assert not ((m["tier"] == "CORE") & (m["soft_target_class"] == "WATCHLIST")).any()
    excl = m[m["tier"] == "EXCLUDED"]
    assert all(len(json.loads(x)) > 0 for x in excl["reasons"])
    assert (excl["side_allowed"] == "NONE").all()
    assert (sel.loc[sel["soft_target_class"] == "SOFT_TARGET", "side_allowed"] == "SHORT").all()
    # the selection is the top of the ranking subject to the caps
    order = sorted(eligible, key=lambda i: (-rows[i]["score"], i))
    assert list(m.loc[order, "rank"]) == list(range(1, len(order) + 1))
    for pos, iid in enumerate(order):
        if iid in sel.index:
            continue
        better = [j for j in order[:pos] if j in sel.index]
        same = [j for j in better if m.loc[j, "sector"] == m.loc[iid, "sector"]]
        assert len(same) == rules.max_per_sector or len(better) == rules.max_size, iid
    # CORE names are the best-ranked selected non-watchlist names
    non_wl = sel[sel["soft_target_class"] != "WATCHLIST"].sort_values("rank")
    assert (non_wl["tier"].iloc[: rules.core_size] == "CORE").all()
    assert (non_wl["tier"].iloc[rules.core_size:] == "SATELLITE").all()


def test_determinism_and_shuffle() -> None:
    rules = UniverseRules(max_size=15, core_size=5, max_per_sector=6, min_history_sessions=50)
    cands = _random_frame(3, 60)
    a = select_universe(cands, rules, **KW)
    pd.testing.assert_frame_equal(a, select_universe(cands, rules, **KW))
    shuffled = cands.sample(frac=1.0, random_state=11).reset_index(drop=True)
    b = select_universe(shuffled, rules, **KW)
    pd.testing.assert_frame_equal(a, b)
    assert (a["tier"] != "EXCLUDED").sum() > 0


def test_select_universes_concatenates_dates() -> None:
    rules = UniverseRules(min_history_sessions=0)
    d1, d2 = pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")
    frames = {d2: pd.DataFrame([_cand("A"), _cand("B")]), d1: pd.DataFrame([_cand("A")])}
    out = select_universes(frames, rules, market_id="US", strategy_id="S1", config_id="c")
    assert list(out["as_of_date"]) == [d1, d2, d2]
    assert list(out["instrument_id"]) == ["A", "A", "B"]
    empty = select_universes({}, rules, market_id="US", strategy_id="S1", config_id="c")
    assert empty.empty and "tier" in empty.columns


def _stored_tables() -> dict[str, pd.DataFrame]:
    days = pd.bdate_range("2024-01-01", DATE)
    names = ["A", "B", "C"]
    prices = pd.DataFrame([(i, d, 10.0) for i in names for d in days],
                          columns=["instrument_id", "date", "close"])
    prices = prices[~((prices["instrument_id"] == "C") & (prices["date"] > "2024-02-15"))]
    return dict(
        instruments=pd.DataFrame({"instrument_id": names, "issuer_id": ["IA", "IB", "IC"],
                                  "asset_class": "EQUITY", "status": "ACTIVE",
                                  "listed_date": pd.to_datetime(["2000-01-03", "2024-04-01",
                                                                 "2000-01-03"])}),
        issuers=pd.DataFrame({"issuer_id": ["IA", "IB", "IC"], "sector": ["Tech", None, "X"]}),
        delistings=pd.DataFrame({"instrument_id": ["C"], "date": [pd.Timestamp("2024-02-16")],
                                 "action_type": ["DELISTING"]}),
        prices=prices,
        liquidity=pd.DataFrame({"instrument_id": names, "date": DATE, "adv_21d": 2e7}),
        profiles=pd.DataFrame({"issuer_id": ["IA", "IB"],
                               "as_of_date": [DATE, DATE - pd.Timedelta(days=200)],
                               "leverage_score": [0.1, 0.2], "earnings_quality_score": 0.3,
                               "liquidity_risk": 0.4}),
        soft_targets=pd.DataFrame({"entity_type": "ISSUER", "entity_id": ["IA"],
                                   "as_of_date": [DATE], "soft_target_class": ["WATCHLIST"]}),
        scores=pd.DataFrame({"instrument_id": ["A", "B"], "as_of_date": DATE,
                             "score": [0.9, 0.1]}))


def test_candidates_are_point_in_time():
    from prometheus_dagster.engines.universe import status_on, universe_candidates

    t = _stored_tables()
    status = status_on(t["instruments"], t["delistings"], DATE)
    assert status.to_dict() == {"A": "ACTIVE", "B": "NOT_LISTED", "C": "DELISTED"}
    # before its delisting C was active
    assert status_on(t["instruments"], t["delistings"], pd.Timestamp("2024-02-15"))["C"] \
        == "ACTIVE"
    window = DATE - pd.Timedelta(days=30)
    c = universe_candidates(DATE, **t, history_start=window, max_profile_age_days=120)
    c = c.set_index("instrument_id")
    assert c.loc["A", "history_sessions"] == len(pd.bdate_range(window, DATE))
    assert c.loc["C", "history_sessions"] == 0 and math.isnan(c.loc["C", "close"])
    assert bool(c.loc["A", "has_profile"]) and not bool(c.loc["B", "has_profile"])  # too old
    assert c.loc["A", "soft_target_class"] == "WATCHLIST"
    assert c.loc["A", "score"] == 0.9 and math.isnan(c.loc["C", "score"])
    # rows dated after the day change nothing
    later = {**t, "prices": pd.concat([t["prices"], pd.DataFrame(
        {"instrument_id": ["A"], "date": [DATE + pd.Timedelta(days=3)], "close": [99.0]})])}
    again = universe_candidates(DATE, **later, history_start=window, max_profile_age_days=120)
    pd.testing.assert_frame_equal(again.set_index("instrument_id"), c)
    out = select_universe(again, UniverseRules(min_history_sessions=5, min_adv=1e6), **KW)
    reasons = out.set_index("instrument_id")["reasons"]
    assert "status NOT_LISTED is not ACTIVE" in reasons["B"] and "no profile" in reasons["B"]
    assert "status DELISTED is not ACTIVE" in reasons["C"]


def test_universe_changes_name_the_reasons_of_stored_and_in_memory_rows():
    from prometheus_dagster.steps.universe import reason_list, universe_changes

    before = pd.DataFrame({"instrument_id": ["A", "B", "C"], "tier": ["CORE"] * 3,
                           "reasons": [[], [], []]})
    # as read back from the warehouse, reasons are JSON text
    today = pd.DataFrame({"instrument_id": ["A", "B", "C", "D"],
                          "tier": ["CORE", "EXCLUDED", "EXCLUDED", "SATELLITE"],
                          "reasons": ["[]", json.dumps(["adv_21d 4.9e+06 below min_adv 5e+06"]),
                                      ["beyond max_size 60"], None]})
    got = universe_changes(today, before)
    assert got == {"added": ["D"],
                   "removed": {"B": ["adv_21d 4.9e+06 below min_adv 5e+06"],
                               "C": ["beyond max_size 60"]}}
    assert reason_list(None) == [] and reason_list("plain text") == ["plain text"]


def _synthetic_universe_inputs() -> tuple[list[pd.Timestamp], dict[str, pd.DataFrame]]:
    """A year of the embedded market's US_EQ listings, prices and delistings, with liquidity,
    profiles and soft-target classes drawn for it (profiles every few weeks, some missing)."""
    from prometheus_dagster.engines.synthetic_market import SyntheticMarket

    market = SyntheticMarket()
    prices = market.prices("US_EQ", "2022-06-01", "2023-03-31")
    instruments = market.instruments("US_EQ")
    issuers = market.issuers("US_EQ")
    actions = market.corporate_actions("US_EQ", "2015-01-01", "2023-03-31")
    days = sorted(pd.to_datetime(prices["date"]).unique())
    dates = [pd.Timestamp(d) for d in days[-40:]]
    rng = np.random.default_rng(5)
    liquidity = prices.loc[pd.to_datetime(prices["date"]).isin(dates),
                           ["instrument_id", "date"]].assign(
        adv_21d=lambda f: rng.lognormal(15.5, 1.0, len(f)))
    ids = issuers["issuer_id"].tolist()
    stamps = pd.date_range("2022-06-03", "2023-03-31", freq="17D")
    profiles = pd.DataFrame([(i, d) for i in ids for d in stamps if rng.random() > 0.3],
                            columns=["issuer_id", "as_of_date"])
    for flag in ("leverage_score", "earnings_quality_score", "liquidity_risk"):
        profiles[flag] = np.where(rng.random(len(profiles)) < 0.05, np.nan,
                                  rng.random(len(profiles)))
    soft = pd.DataFrame([("ISSUER", i, d, rng.choice(["NONE", "WATCHLIST", "SOFT_TARGET"]))
                         for i in ids for d in dates if rng.random() > 0.2],
                        columns=["entity_type", "entity_id", "as_of_date",
                                 "soft_target_class"])
    return dates, dict(instruments=instruments, issuers=issuers,
                       delistings=actions[actions["action_type"] == "DELISTING"],
                       prices=prices[["instrument_id", "date", "close"]],
                       liquidity=liquidity, profiles=profiles, soft_targets=soft)


def test_candidates_of_a_range_equal_each_date_on_its_own():
    from prometheus_dagster.engines.universe import (
        universe_candidates,
        universe_candidates_range,
    )
    from prometheus_dagster.engines.universe.schemas import UNIVERSES
    from prometheus_dagster.steps.common import lookback_start

    dates, t = _synthetic_universe_inputs()
    starts = [lookback_start(d, 131) for d in dates]
    ranged = universe_candidates_range(dates, **t, history_starts=starts,
                                       max_profile_age_days=120)
    no_scores = pd.DataFrame({"instrument_id": [], "as_of_date": [], "score": []})
    rules = UniverseRules(min_adv=5e6, max_size=40, core_size=20, max_per_sector=6)
    each, unchecked = [], []
    for d, start in zip(dates, starts, strict=True):
        alone = universe_candidates(d, **t, scores=no_scores, history_start=start,
                                    max_profile_age_days=120)
        # an all-missing soft-target column is float on its own and object in the range
        pd.testing.assert_frame_equal(ranged[d], alone, check_dtype=False)
        scored = rng_scores(alone)
        each.append(select_universe(alone.assign(score=scored), rules,
                                    **{**KW, "as_of_date": d}))
        unchecked.append(select_universe(ranged[d].assign(score=scored), rules,
                                         **{**KW, "as_of_date": d}, validate=False))
    # the range is validated once: the same rows and types as each date validated alone
    pd.testing.assert_frame_equal(
        validate_frame(UNIVERSES, pd.concat(unchecked, ignore_index=True)),
        pd.concat(each, ignore_index=True))
    day = ranged[dates[-1]]
    assert (day["status"] == "DELISTED").any() or len(t["delistings"]) == 0
    assert day["has_profile"].any() and not day["has_profile"].all()
    assert day["history_sessions"].max() > 100


def rng_scores(frame: pd.DataFrame) -> np.ndarray:
    return np.random.default_rng(len(frame)).random(len(frame))


def test_universes_of_a_range_equal_each_date_and_strategy_on_its_own():
    from prometheus_dagster.engines.universe import universe_candidates_range
    from prometheus_dagster.steps.common import lookback_start
    from prometheus_dagster.steps.universe import select_universes_of, strategies_of

    dates, t = _synthetic_universe_inputs()
    dates = dates[-8:]
    strategies = strategies_of("US_EQ")
    ids = t["instruments"]["instrument_id"]
    rng = np.random.default_rng(9)
    scores = pd.concat([pd.DataFrame({"strategy_id": sid, "instrument_id": ids,
                                      "as_of_date": d, "horizon_days": h,
                                      "score": rng.random(len(ids))})
                        for sid in strategies for d in dates[1:] for h in (5, 21)])
    starts = [lookback_start(d, 131) for d in dates]
    ranged = universe_candidates_range(dates, **t, history_starts=starts,
                                       max_profile_age_days=120)
    out = select_universes_of(ranged, scores, strategies, "US_EQ")
    each = []
    for d in dates:
        for sid, (strategy, cid) in sorted(strategies.items()):
            mine = scores[(scores["strategy_id"] == sid) & (scores["as_of_date"] == d)
                          & (scores["horizon_days"] == strategy.horizon_days)]
            score = ranged[d]["instrument_id"].map(mine.set_index("instrument_id")["score"])
            each.append(select_universe(ranged[d].assign(score=score.astype(float)),
                                        strategy.universe, market_id="US_EQ", strategy_id=sid,
                                        as_of_date=d, config_id=cid))
    pd.testing.assert_frame_equal(out, pd.concat(each, ignore_index=True))
    first = out[out["as_of_date"] == dates[0]]
    assert (first["tier"] == "EXCLUDED").all()  # no scores on the first date
    assert (out["tier"] == "CORE").any()


def test_a_prices_only_market_has_candidates_without_profiles():
    from prometheus_dagster.engines.universe import universe_candidates_range
    from prometheus_dagster.steps.common import lookback_start

    dates, t = _synthetic_universe_inputs()
    dates = dates[-3:]
    t = {**t, "instruments": t["instruments"].assign(issuer_id=None),
         **{k: t[k].iloc[0:0] for k in ("issuers", "profiles", "soft_targets")}}
    ranged = universe_candidates_range(dates, **t,
                                       history_starts=[lookback_start(d, 131) for d in dates],
                                       max_profile_age_days=120)
    day = ranged[dates[-1]]
    assert len(day) == len(t["instruments"]) and day["close"].notna().any()
    assert not day["has_profile"].any() and day["soft_target_class"].isna().all()
