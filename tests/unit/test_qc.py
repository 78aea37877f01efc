"""Pre-open checks as pure functions."""

import json

import pandas as pd

from prometheus_dagster.engines.qc import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    QcLimits,
    check_decisions,
    check_exposures,
    check_ingestion,
    check_outputs,
)


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
