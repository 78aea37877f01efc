"""Pre-open checks as pure functions."""

import json

import pandas as pd

from prometheus_dagster.engines.qc import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Age,
    QcLimits,
    check_decisions,
    check_exposures,
    check_freshness,
    check_ingestion,
    check_missing_prices,
    check_outputs,
)
from prometheus_dagster.engines.qc.config import Freshness, QcConfig
from prometheus_dagster.steps.qc import _macro_ages, _missing_prices, _table_ages, qc_config


def run(table: str, status: str, at: str, warnings=None) -> dict:
    return {"table_name": table, "status": status, "row_count": 10, "error": "bad row 3",
            "warnings": json.dumps(warnings or []), "finished_at": pd.Timestamp(at)}


def statuses(rows: list[dict]) -> dict:
    return {r["subject"]: r["status"] for r in rows}


def test_ingestion_uses_the_latest_unit_per_table():
    runs = pd.DataFrame([run("prices_daily", "FAILED", "2024-01-02 22:00"),
                         run("prices_daily", "SUCCESS", "2024-01-02 23:00"),
                         run("news_articles", "SUCCESS", "2024-01-02 22:00", ["stale price"]),
                         run("fundamentals", "SUCCESS", "2024-01-02 21:00"),
                         run("fundamentals", "FAILED", "2024-01-02 22:30")])
    got = statuses(check_ingestion(runs, ["prices_daily", "news_articles", "fundamentals",
                                          "news_links"]))
    assert got == {"prices_daily": PASS, "news_articles": WARN, "fundamentals": FAIL,
                   "news_links": FAIL}


def test_outputs_required_fail_optional_warn():
    got = statuses(check_outputs({"returns_daily": 0, "text_embeddings": 0, "profiles": 5},
                                 required={"returns_daily"}))
    assert got == {"returns_daily": FAIL, "text_embeddings": WARN, "profiles": PASS}


def test_decisions_must_accompany_outputs():
    got = statuses(check_decisions({"regimes": 4, "instrument_scores": 0}, {"assessment": 0},
                                   {"regime": "regimes", "assessment": "instrument_scores",
                                    "portfolio": "target_portfolios"}))
    assert got == {"regime": FAIL, "assessment": PASS, "portfolio": SKIP}


def test_exposures_against_limits():
    assert check_exposures(None, QcLimits())[0]["status"] == SKIP
    w = pd.DataFrame({"portfolio_id": ["A", "A", "B", "B"], "instrument_id": list("xyxy"),
                      "weight": [0.05, 0.05, 0.3, 0.1]})
    got = statuses(check_exposures(w, QcLimits(max_weight=0.1, max_gross=1.0)))
    assert got == {"A": PASS, "B": FAIL}


def test_exposures_at_a_limit_within_solver_tolerance_pass():
    # an optimiser meets its limits to ~1e-9: a book at the limit is not a breach
    at = pd.DataFrame({"portfolio_id": ["A"] * 2, "instrument_id": list("xy"),
                       "weight": [0.08 + 8e-11, 0.92 + 1.5e-9]})
    assert statuses(check_exposures(at, QcLimits(max_weight=0.92, max_gross=1.0))) == \
        {"A": PASS}
    over = at.assign(weight=[0.08, 0.92 + 1e-4])
    assert statuses(check_exposures(over, QcLimits(max_weight=0.92, max_gross=1.0))) == \
        {"A": FAIL}


def test_exposures_against_each_portfolios_own_limits():
    w = pd.DataFrame({"portfolio_id": ["LS", "LS", "LO", "LO"], "instrument_id": list("xyxy"),
                      "weight": [0.8, -0.8, 0.6, 0.4]})
    limits = {"LS": QcLimits(max_weight=1.0, max_gross=2.0),
              "LO": QcLimits(max_weight=0.5, max_gross=1.0)}
    assert statuses(check_exposures(w, limits)) == {"LS": PASS, "LO": FAIL}
    # a portfolio without its own limits is held to the defaults
    assert statuses(check_exposures(w, {"LO": QcLimits(max_weight=0.6)})) == {"LS": FAIL,
                                                                             "LO": PASS}


def test_strategy_limits_follow_the_shipped_strategies():
    from prometheus_dagster.assets.qc import strategy_limits

    limits = strategy_limits("US_EQ")
    assert limits["core_equity_long_only:US_EQ"].max_gross == 1.0
    assert limits["market_neutral_long_short:US_EQ"].max_gross == 2.0
    assert limits["market_neutral_long_short:US_EQ"].max_weight == 0.05


def test_freshness_fails_past_its_limit_and_skips_what_never_came():
    got = statuses(check_freshness([
        Age("prices_daily", pd.Timestamp("2024-01-04"), 1, 0, "sessions"),
        Age("fundamentals", pd.Timestamp("2023-12-01"), 20, 130, "sessions"),
        Age("macro/credit_spread", None, 0, 0, "days")]))
    assert got == {"prices_daily": FAIL, "fundamentals": PASS, "macro/credit_spread": SKIP}


def test_missing_prices_share_against_its_limit():
    assert check_missing_prices([], 0, 0.05)[0]["status"] == SKIP
    assert check_missing_prices([], 40, 0.05)[0]["status"] == PASS
    assert check_missing_prices(["A"], 40, 0.05)[0]["status"] == WARN  # 2.5%
    row = check_missing_prices(["A", "B", "C"], 40, 0.05)[0]  # 7.5%
    assert row["status"] == FAIL and "3 of 40" in row["detail"] and "A, B, C" in row["detail"]


def unit(table, day, status="SUCCESS", rows=5, at="2024-01-10 23:00"):
    return {"table_name": table, "date": pd.Timestamp(day), "status": status, "row_count": rows,
            "finished_at": pd.Timestamp(at)}


def test_table_age_counts_sessions_to_the_newest_delivered_date():
    fresh = Freshness(max_age_sessions={"prices_daily": 0, "fundamentals": 130})
    runs = pd.DataFrame([
        unit("prices_daily", "2024-01-05"),
        unit("prices_daily", "2024-01-08", rows=0),  # delivered nothing
        unit("prices_daily", "2024-01-09", status="FAILED"),
        unit("prices_daily", "2024-01-11"),  # after the session checked: never looked at
        unit("prices_daily", "2024-01-10", at="2024-01-10 22:00"),
        unit("prices_daily", "2024-01-10", status="FAILED", at="2024-01-10 23:30")])
    ages = {a.subject: a for a in _table_ages(runs, "US_EQ", pd.Timestamp("2024-01-10"), fresh)}
    # the latest unit of 2024-01-10 failed: the newest delivered session is 2024-01-05
    assert ages["prices_daily"].newest == pd.Timestamp("2024-01-05")
    assert ages["prices_daily"].age == 3  # 01-08, 01-09, 01-10
    assert ages["fundamentals"].newest is None


def test_missing_prices_ignore_delisted_and_new_names():
    fresh = Freshness(active_sessions=2)
    prices = pd.DataFrame({"instrument_id": ["A", "B", "C", "A", "D"],
                           "date": pd.to_datetime(["2024-01-08", "2024-01-09", "2024-01-09",
                                                   "2024-01-10", "2024-01-10"])})
    missing, active = _missing_prices(prices, {"C"}, "US_EQ", pd.Timestamp("2024-01-10"), fresh)
    assert missing == ["B"] and active == 2  # C delisted, D new on the day


def test_macro_age_uses_the_series_the_regimes_use_with_its_frequency_limit():
    fresh = Freshness(max_age_days={"D": 5, "M": 65})
    macro = pd.DataFrame({
        "series_id": ["BAA_AAA", "BAA_AAA", "VIX"],
        "date": pd.to_datetime(["2023-10-01", "2023-11-01", "2024-01-02"]),
        "value": [1.0, 1.1, 13.0], "frequency": ["M", "M", "D"]})
    roles = {"credit_spread": ["US_CREDIT_SPREAD_IG", "BAA_AAA"], "implied_vol": ["VIX"],
             "haven": ["GOLD"]}
    got = {a.subject: a for a in _macro_ages(macro, roles, pd.Timestamp("2024-01-10"), fresh)}
    assert got["macro/credit_spread (BAA_AAA)"].age == 70
    assert got["macro/implied_vol (VIX)"].age == 8
    assert got["macro/haven"].newest is None
    assert statuses(check_freshness(list(got.values()))) == {
        "macro/credit_spread (BAA_AAA)": FAIL, "macro/implied_vol (VIX)": FAIL,
        "macro/haven": SKIP}


def test_shipped_qc_config_loads_with_its_tolerance():
    cfg = qc_config().typed(QcConfig)
    assert cfg.limit_tolerance == 1e-6
    assert cfg.freshness.deadlines.ingestion == 180
