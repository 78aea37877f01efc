"""The data-quality gate: each ERROR and WARN rule triggers on a minimal frame and stays quiet on
clean data; messages name file, line, rule and values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.errors import DataQualityError
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.ingestion.quality import (
    GateLimits,
    QualityReport,
    check_staged,
    suite_rules,
)


def prices(n_days: int = 3, instruments: tuple[str, ...] = ("EQUITY:AAA", "EQUITY:BBB"),
           start: str = "2024-02-01", seed: int = 1) -> pd.DataFrame:
    """A clean prices frame: small random moves, consistent OHLC, positive volume."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n_days)
    rows = []
    for k, iid in enumerate(instruments):
        close = 10.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, n_days)))
        for d, c in zip(dates, close, strict=True):
            rows.append({"market_id": "US_EQ", "instrument_id": iid, "date": d,
                         "open": c * 0.995, "high": c * 1.01, "low": c * 0.98, "close": c,
                         "adjusted_close": c, "volume": 1000.0 + k, "currency": "USD"})
    return pd.DataFrame(rows, columns=get_schema("prices_daily").column_names)


def rules_hit(report: QualityReport, severity: str = "ERROR") -> set[str]:
    return {i.rule for i in (report.errors if severity == "ERROR" else report.warnings)}


def test_suite_is_generated_from_the_schema():
    rules = suite_rules("prices_daily")
    schema = get_schema("prices_daily")
    required = {r.columns[0] for r in rules if r.kind == "not_null" and r.rule == "required"}
    assert required == {c.name for c in schema.columns if not c.nullable}
    unique = [r for r in rules if r.kind == "unique"]
    assert len(unique) == 1 and unique[0].columns == ("instrument_id", "date")
    assert {r.columns[0] for r in rules if r.kind == "type"} == {
        c.name for c in schema.columns if c.dtype != "str"}
    names = {r.rule for r in rules}
    assert {"prices > 0", "high >= max(open, close)", "low <= min(open, close)",
            "volume >= 0", "high >= low"} <= names
    # every declared table gets a suite
    assert any(r.kind == "unique" for r in suite_rules("news_links"))
    assert {r.rule for r in suite_rules("fundamentals")} >= {"report_date >= period_end"}


def test_clean_prices_pass():
    report = check_staged("prices_daily", prices(30), expected_instruments=2,
                          history=prices(30, start="2023-12-01"))
    assert report.passed and not report.warnings, report.summary()
    assert "0 error(s), 0 warning(s): PASSED" in report.summary()
    assert check_staged("prices_daily", prices(0)).passed  # an empty batch


@pytest.mark.parametrize("column, value, rule, detail", [
    ("close", -1.0, "prices > 0", "close=-1 is not > 0"),
    ("open", 0.0, "prices > 0", "open=0 is not > 0"),
    ("high", 9.0, "high >= max(open, close)", "high=9 < "),
    ("low", 10.5, "low <= min(open, close)", "< low=10.5"),
    ("volume", -5.0, "volume >= 0", "volume=-5 is not >= 0"),
    ("close", None, "required", "column 'close' is empty"),
    ("currency", None, "required", "column 'currency' is empty"),
    ("close", "abc", "type", "column 'close' value 'abc' is not a number"),
    ("date", "2024-13-01", "type", "column 'date' value '2024-13-01' is not a date"),
    ("date", "2024-02-05T23:30:00-05:00", "type",
     "column 'date' value '2024-02-05T23:30:00-05:00' is a timestamp, not a date"),
])
def test_each_price_error_rule(column, value, rule, detail):
    df = prices(3, instruments=("EQUITY:AAA",))
    df = df.astype({column: object})
    df.loc[1, column] = value
    report = check_staged("prices_daily", df)
    assert not report.passed
    hits = [i for i in report.errors if i.rule == rule]
    assert hits, report.summary()
    assert hits[0].index == 1 and hits[0].row == 2 and hits[0].file is None
    assert detail in hits[0].message, hits[0].message
    assert hits[0].message.startswith(f"prices_daily row 2: rule {rule} failed: ")
    # the other rows are clean
    assert {i.index for i in report.errors} == {1}


def test_high_below_low():
    df = prices(2, instruments=("EQUITY:AAA",))
    df.loc[0, ["open", "close", "high", "low"]] = [None, None, 9.0, 9.5]
    report = check_staged("prices_daily", df)
    assert rules_hit(report) == {"high >= low", "required"}  # close is required
    [issue] = [i for i in report.errors if i.rule == "high >= low"]
    assert "high=9 < low=9.5" in issue.message


def test_duplicate_keys_are_reported_not_raised():
    df = prices(3)
    df = pd.concat([df, df.iloc[[4]]], ignore_index=True)
    df["_source_file"] = "data/prices.csv"
    df["_source_row"] = np.arange(1, len(df) + 1)
    report = check_staged("prices_daily", df)
    dups = [i for i in report.errors if i.rule == "unique (instrument_id, date)"]
    assert [i.row for i in dups] == [5, 7]
    assert dups[0].message == (
        "data/prices.csv line 6: rule unique (instrument_id, date) failed: duplicate key "
        "instrument_id=EQUITY:BBB, date=2024-02-02, also at data/prices.csv line 8")
    assert "also at data/prices.csv line 6" in dups[1].message


def test_missing_and_unknown_columns_are_batch_errors():
    df = prices(2).drop(columns=["close"]).assign(price=1.0)
    report = check_staged("prices_daily", df)
    msgs = {i.rule: i.message for i in report.errors}
    assert msgs["required"] == "prices_daily: missing required column(s) close"
    assert msgs["columns"].startswith("prices_daily: unexpected column(s) price")
    # optional columns may be absent
    assert check_staged("prices_daily", prices(2).drop(columns=["open", "volume"])).passed


def test_provenance_in_messages():
    df = prices(3, instruments=("EQUITY:AAA",))
    df.loc[1, ["open", "high", "close"]] = [9.0, 9.5, 10.1]
    df["_source_file"] = "prices.csv"
    df["_source_row"] = [10, 11, 12]
    df.index = [100, 101, 102]
    report = check_staged("prices_daily", df)
    issue = next(i for i in report.errors if i.rule == "high >= max(open, close)")
    assert issue.message == (
        "prices.csv line 12: rule high >= max(open, close) failed: high=9.5 < close=10.1 "
        f"(instrument_id EQUITY:AAA, date {df.loc[101, 'date']:%Y-%m-%d})")
    assert (issue.file, issue.row, issue.index, issue.column) == ("prices.csv", 11, 101, "high")
    # Parquet and other files count rows, not lines
    df["_source_file"] = "prices.parquet"
    issue = check_staged("prices_daily", df).errors[0]
    assert issue.message.startswith("prices.parquet row 11: ")


def test_corporate_action_rules():
    df = pd.DataFrame({
        "market_id": "US_EQ", "instrument_id": ["E:A", "E:B", "E:C", "E:D", "E:E", "E:F"],
        "date": pd.to_datetime(["2024-02-01"] * 6),
        "action_type": ["SPLIT", "SPLIT", "DIVIDEND", "DIVIDEND", "MERGER", "DELISTING"],
        "value": [2.0, 0.0, 0.5, -0.1, 1.0, None], "details": None,
    })
    report = check_staged("corporate_actions", df)
    by_row = {i.index: i.rule for i in report.errors}
    assert by_row == {1: "value > 0 for SPLIT", 3: "value >= 0 for DIVIDEND",
                      4: "action_type in (SPLIT, DIVIDEND, DELISTING)"}
    df.loc[1, "value"] = None
    report = check_staged("corporate_actions", df)
    assert any(i.rule == "value > 0 for SPLIT" and i.index == 1 for i in report.errors)
    assert check_staged("corporate_actions", df.iloc[[0, 2, 5]]).passed


def fundamentals(assets: list[float], start_year: int = 2023) -> pd.DataFrame:
    periods = pd.date_range(f"{start_year}-03-31", periods=len(assets), freq="QE")
    return pd.DataFrame({
        "market_id": "US_EQ", "issuer_id": "ISS:A", "period_end": periods,
        "report_date": periods + pd.Timedelta(days=35), "total_assets": assets,
        "revenue": 10.0, "currency": "USD",
    })


def test_fundamentals_report_date_rule():
    df = fundamentals([100.0, 101.0])
    assert check_staged("fundamentals", df).passed
    df.loc[1, "report_date"] = df.loc[1, "period_end"] - pd.Timedelta(days=1)
    report = check_staged("fundamentals", df)
    assert rules_hit(report) == {"report_date >= period_end"}
    assert "report_date=2023-06-29 < period_end=2023-06-30" in report.errors[0].message


def test_macro_frequency_rule():
    df = pd.DataFrame({"series_id": "VIX", "date": pd.bdate_range("2024-01-02", periods=3),
                       "value": [13.0, 14.0, 15.0], "frequency": ["D", "D", "daily"]})
    report = check_staged("macro_time_series", df)
    assert [(i.rule, i.index) for i in report.errors] == [("frequency in (D, W, M, Q)", 2)]


# --- warnings ------------------------------------------------------------------------------------
def test_return_outlier_against_history():
    hist = prices(40, instruments=("EQUITY:AAA",), start="2023-12-01")
    staged = prices(2, instruments=("EQUITY:AAA",), start="2024-02-01")
    last = hist["close"].iloc[-1]
    staged.loc[:, ["open", "high", "low", "close", "adjusted_close"]] = last
    staged.loc[1, ["open", "high", "low", "close", "adjusted_close"]] = last * 1.8
    report = check_staged("prices_daily", staged, history=hist)
    assert report.passed  # a warning never blocks
    [w] = report.warnings
    assert w.rule == "|return| <= 10 sigma" and w.severity == "WARN" and w.index == 1
    assert "return +80.00% is" in w.message
    assert check_staged("prices_daily", staged.iloc[:1], history=hist).warnings == []
    # without history, a single day has nothing to compare with
    assert check_staged("prices_daily", staged).warnings == []


def test_split_with_adjusted_close_is_not_an_outlier():
    df = prices(40, instruments=("EQUITY:AAA",))
    df.loc[30:, ["open", "high", "low", "close"]] /= 2  # 2-for-1 split, adjusted series intact
    assert check_staged("prices_daily", df).warnings == []
    df["adjusted_close"] = None  # without it the split looks like an outlier
    assert rules_hit(check_staged("prices_daily", df), "WARN") == {"|return| <= 10 sigma"}


def test_stale_prices():
    df = prices(5, instruments=("EQUITY:AAA",))
    df.loc[1, ["close", "volume"]] = [df.loc[0, "close"], 0.0]  # unchanged, no volume
    report = check_staged("prices_daily", df)
    assert [(w.rule, w.index) for w in report.warnings] == [("stale price", 1)]
    assert "unchanged from the previous close with volume 0" in report.warnings[0].message
    df = prices(5, instruments=("EQUITY:AAA",))
    df["close"] = df["open"] = df["high"] = df["low"] = 10.0  # repeated, volume traded
    report = check_staged("prices_daily", df)
    assert [w.index for w in report.warnings] == [2, 3, 4]
    assert "close=10 unchanged for 3 sessions" in report.warnings[0].message
    # the repeats may start in the history
    hist = prices(2, instruments=("EQUITY:AAA",), start="2024-01-25").assign(close=10.0)
    staged = df.iloc[[0]]
    assert [w.index for w in check_staged("prices_daily", staged, history=hist).warnings] == [0]


def test_coverage():
    df = prices(2, instruments=("EQUITY:AAA", "EQUITY:BBB")).drop(index=[3])
    report = check_staged("prices_daily", df, expected_instruments=2)
    [w] = report.warnings
    assert w.rule == "coverage" and w.index == 1
    assert w.message == "prices_daily 2024-02-02: rule coverage flagged: 1 of 2 expected " \
                        "instruments have rows"
    assert check_staged("prices_daily", df, expected_instruments=1).warnings == []
    assert rules_hit(check_staged("prices_daily", prices(0), expected_instruments=3),
                     "WARN") == {"coverage"}


def test_fundamentals_continuity():
    hist = fundamentals([100.0, 102.0, 104.0])
    staged = fundamentals([100.0, 102.0, 104.0, 600.0]).iloc[[3]]
    report = check_staged("fundamentals", staged, history=hist)
    assert report.passed
    [w] = report.warnings
    assert w.rule == "fundamentals continuity" and w.column == "total_assets"
    assert "total_assets 104 -> 600 (x5.77) since period_end 2023-09-30" in w.message
    assert check_staged("fundamentals", fundamentals([100.0, 130.0, 90.0])).warnings == []
    # within one batch too
    assert len(check_staged("fundamentals", fundamentals([100.0, 10.0])).warnings) == 1


def test_warnings_only_for_staged_rows():
    hist = prices(30, instruments=("EQUITY:AAA",), start="2023-12-01")
    hist.loc[10, "close"] = hist.loc[10, "close"] * 3  # an old outlier, not this batch's
    staged = prices(2, instruments=("EQUITY:AAA",), start="2024-02-01")
    report = check_staged("prices_daily", staged, history=hist)
    assert all(w.index in staged.index for w in report.warnings)
    assert not any(w.index == 10 for w in report.warnings)


# --- plausibility bounds (configurable) ---------------------------------------------------------
PRICES = ["open", "high", "low", "close", "adjusted_close"]


def test_absurd_price_fails_its_date_only():
    df = prices(3)
    df.loc[1, PRICES] = 1e308  # a consistent bar: every other rule holds
    report = check_staged("prices_daily", df)
    assert {i.index for i in report.errors} == {1}
    bound = [i for i in report.errors if i.rule == "prices <= 1e+09"]
    assert bound and "close=1e+308 is not <= 1e+09" in bound[0].message, report.summary()
    assert bound[0].message.startswith("prices_daily row 2: rule prices <= 1e+09 failed: ")
    # the bound is configurable
    df.loc[1, PRICES] = 5e5
    assert rules_hit(check_staged("prices_daily", df, limits=GateLimits(max_price=1e5))) >= {
        "prices <= 100000"}
    assert "prices <= 1e+09" not in rules_hit(check_staged("prices_daily", df))


def test_1000x_jump_without_split_fails_with_history():
    hist = prices(20, instruments=("EQUITY:AAA",), start="2024-01-01")
    staged = prices(3, instruments=("EQUITY:AAA",), start="2024-02-01")
    staged[PRICES] = hist["close"].iloc[-1]
    staged.loc[0, ["high", "close", "adjusted_close"]] = hist["close"].iloc[-1] * 1000
    report = check_staged("prices_daily", staged, history=hist)
    [issue] = report.errors
    assert issue.rule == "daily move <= 50x" and issue.index == 0 and issue.column == \
        "adjusted_close"
    assert "(x1000) since 2024-01-26, with no SPLIT of the instrument on this date" in \
        issue.message
    # the day after compares with the last plausible price, so it is not blamed as well
    assert not [i for i in report.errors if i.index == 1]
    # a looser bound lets it through (only the outlier warning remains)
    loose = check_staged("prices_daily", staged, history=hist,
                         limits=GateLimits(max_daily_move=2000))
    assert loose.passed and rules_hit(loose, "WARN") == {"|return| <= 10 sigma"}


def test_large_move_on_a_split_date_passes():
    df = prices(4, instruments=("EQUITY:AAA",))
    df.loc[2:, ["open", "high", "low", "close"]] /= 100  # 100-for-1 split, no adjusted series
    df["adjusted_close"] = None
    assert rules_hit(check_staged("prices_daily", df)) == {"daily move <= 50x"}
    split = pd.DataFrame({"instrument_id": ["EQUITY:AAA"], "date": [df.loc[2, "date"]],
                          "action_type": ["SPLIT"], "value": [100.0]})
    assert check_staged("prices_daily", df, corporate_actions=split).passed


# --- deliveries that would delete stored rows -----------------------------------------------------
def stored_keys(df: pd.DataFrame) -> pd.DataFrame:
    return df[["date", "instrument_id"]].reset_index(drop=True)


def test_empty_delivery_for_a_stored_date_fails_that_date():
    stored = prices(3)
    staged = stored[stored["date"] != stored["date"].iloc[1]]  # 2024-02-02 delivered empty
    report = check_staged("prices_daily", staged, stored=stored_keys(stored))
    [issue] = report.errors
    assert issue.rule == "stored rows kept" and issue.date == pd.Timestamp("2024-02-02")
    assert issue.index is None and issue.row is None
    assert issue.message.startswith(
        "prices_daily 2024-02-02: rule stored rows kept failed: the delivery has no rows for "
        "this date; writing it would delete its 2 stored row(s)")
    assert "quality.allow_row_loss: true" in issue.message
    assert "prometheus/allow_row_loss=true" in issue.message
    # an empty batch for a date nothing is stored for is fine
    assert check_staged("prices_daily", prices(0), stored=stored_keys(prices(0))).passed
    # explicitly allowed: a warning, not an error
    allowed = check_staged("prices_daily", staged, stored=stored_keys(stored),
                           limits=GateLimits(allow_row_loss=True))
    assert allowed.passed and rules_hit(allowed, "WARN") == {"stored rows kept"}
    assert allowed.warnings[0].date == pd.Timestamp("2024-02-02")


def test_losing_most_instruments_fails_a_few_warns():
    ids = tuple(f"EQUITY:I{k}" for k in range(4))
    stored = prices(1, instruments=ids)
    two_left = check_staged("prices_daily", stored.iloc[:2], stored=stored_keys(stored))
    assert two_left.passed  # half of them: not most
    [w] = two_left.warnings
    assert "2 of 4 stored instrument(s) have no row in the delivery (EQUITY:I2, EQUITY:I3)" in \
        w.message
    one_left = check_staged("prices_daily", stored.iloc[:1], stored=stored_keys(stored))
    assert rules_hit(one_left) == {"stored rows kept"}
    assert "3 of 4 stored instrument(s)" in one_left.errors[0].message
    strict = check_staged("prices_daily", stored.iloc[:3], stored=stored_keys(stored),
                          limits=GateLimits(max_instrument_loss=0.0))
    assert rules_hit(strict) == {"stored rows kept"}


def test_delisted_instruments_may_leave():
    ids = ("EQUITY:I0", "EQUITY:I1", "EQUITY:I2")
    stored = prices(2, instruments=ids)
    staged = stored[stored["instrument_id"] == "EQUITY:I0"]
    delist = pd.DataFrame({"instrument_id": ["EQUITY:I1", "EQUITY:I2"],
                           "date": [pd.Timestamp("2024-01-15")] * 2,
                           "action_type": ["DELISTING"] * 2})
    assert check_staged("prices_daily", staged, stored=stored_keys(stored),
                        corporate_actions=delist).passed
    assert not check_staged("prices_daily", staged, stored=stored_keys(stored)).passed
    # a delisting after the date does not excuse the loss
    later = delist.assign(date=pd.Timestamp("2024-03-01"))
    assert not check_staged("prices_daily", staged, stored=stored_keys(stored),
                            corporate_actions=later).passed


def test_row_loss_of_a_table_without_instruments():
    macro = pd.DataFrame({"series_id": ["RATE", "RATE"], "value": [1.0, 1.1],
                          "date": pd.to_datetime(["2024-02-01", "2024-02-02"]),
                          "frequency": ["D", "D"]})
    report = check_staged("macro_time_series", macro.iloc[[0]],
                          stored=macro[["date", "series_id"]])
    assert [(i.rule, i.date) for i in report.errors] == [
        ("stored rows kept", pd.Timestamp("2024-02-02"))]


def test_raise_for_errors():
    df = prices(2)
    df.loc[0, "close"] = -1.0
    report = check_staged("prices_daily", df)
    with pytest.raises(DataQualityError, match="prices > 0"):
        report.raise_for_errors()
    check_staged("prices_daily", prices(2)).raise_for_errors()


def test_canonical_and_raw_frames_agree():
    df = prices(3)
    raw = df.astype(str)
    raw.loc[2, "close"] = "-1"
    a = check_staged("prices_daily", raw)
    df.loc[2, "close"] = -1.0
    b = check_staged("prices_daily", df)
    assert [(i.rule, i.index) for i in a.errors] == [(i.rule, i.index) for i in b.errors]


def test_100k_rows():
    n_inst, n_days = 400, 250
    rng = np.random.default_rng(0)
    close = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_inst, n_days)), axis=1))).ravel()
    df = pd.DataFrame({
        "market_id": "US_EQ",
        "instrument_id": np.repeat([f"EQUITY:I{i:04d}" for i in range(n_inst)], n_days),
        "date": np.tile(pd.bdate_range("2023-01-02", periods=n_days), n_inst),
        "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
        "adjusted_close": close, "volume": rng.integers(1, 1000, close.size).astype(float),
        "currency": "USD",
    })
    df.loc[12345, "high"] = df.loc[12345, "low"] / 2
    report = check_staged("prices_daily", df, expected_instruments=n_inst)
    assert report.n_rows == 100_000
    assert {i.index for i in report.errors} == {12345}
    assert not report.warnings



def test_gate_limits_come_from_the_ingestion_config(tmp_path, monkeypatch):
    import shutil

    import yaml

    from prometheus_dagster.assets.ingestion import gate_limits
    from prometheus_dagster.core import config as core_config
    from prometheus_dagster.core.errors import ConfigError

    assert gate_limits() == GateLimits()  # the shipped config holds the defaults
    configs = tmp_path / "configs"
    shutil.copytree(core_config.CONFIG_DIR, configs)
    path = configs / "engines" / "ingestion.yaml"
    body = yaml.safe_load(path.read_text())
    body["quality"] = {"max_price": 1e6, "max_daily_move": 10, "allow_row_loss": True}
    path.write_text(yaml.safe_dump(body))
    monkeypatch.setattr(core_config, "CONFIG_DIR", configs)
    assert gate_limits() == GateLimits(max_price=1e6, max_daily_move=10.0,
                                       allow_row_loss=True)
    body["quality"] = {"max_daily_move": 0.5}
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError, match="quality.max_daily_move"):
        gate_limits()
