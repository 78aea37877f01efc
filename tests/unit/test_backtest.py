"""Backtest engine: the time machine's look-ahead gate, metrics and slices against hand
computations, the tear sheet, decision outcomes and the declared tables."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.errors import LookAheadError, PrometheusError, WarehouseError
from prometheus_dagster.core.schemas import get_schema, validate_frame
from prometheus_dagster.engines.backtest import (
    TimeMachine,
    TimeMachineAccessError,
    backtest_metrics,
    decision_outcomes,
    drawdown_stats,
    metrics_by_slice,
    sliced_metrics,
    tear_sheet_figure,
    tear_sheet_html,
    tear_sheet_png,
    with_returns_and_drawdown,
)
from prometheus_dagster.resources.warehouse import Warehouse, between

DATES = pd.bdate_range("2024-01-02", periods=8)  # Jan 2..11


# --- time machine -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wh(tmp_path_factory) -> Warehouse:
    w = Warehouse.from_url(f"duckdb:///{tmp_path_factory.mktemp('bt') / 'wh.duckdb'}")
    prices = pd.DataFrame([
        {"market_id": "US_EQ", "instrument_id": i, "date": d, "close": 100.0 + k,
         "currency": "USD"}
        for k, d in enumerate(DATES) for i in ("A", "B")
    ])
    w.write_partitions("prices_daily", prices, market_id="US_EQ")
    w.replace_all("instruments", pd.DataFrame([
        {"instrument_id": i, "market_id": "US_EQ", "asset_class": "EQUITY", "symbol": i,
         "currency": "USD", "multiplier": 1.0, "status": "ACTIVE"} for i in ("A", "B")
    ]))
    return w


def _at(wh: Warehouse, day: int, strict: bool = True) -> TimeMachine:
    return TimeMachine(wh, strict=strict).advance_to(DATES[day])


def test_strict_reads_within_the_current_date_match_the_warehouse(wh):
    tm = _at(wh, 3)
    got = tm.read_partitions("prices_daily", market_id="US_EQ", start=DATES[0], end=DATES[3])
    assert got.equals(wh.read_partitions("prices_daily", market_id="US_EQ", start=DATES[0],
                                         end=DATES[3]))
    assert got["date"].max() == DATES[3] and len(got) == 8
    got = tm.read("prices_daily", where={"date": between(None, DATES[2]), "instrument_id": "A"})
    assert list(got["date"]) == list(DATES[:3])
    assert len(tm.read("prices_daily", where={"date": [DATES[1], DATES[3]]})) == 4
    assert len(tm.read_partitions("prices_daily", dates=[DATES[3]])) == 2
    assert len(tm.read("instruments")) == 2  # undated: passes through unbounded
    assert tm.table_exists("prices_daily") and tm.sql_name("prices_daily").endswith(
        '"prices_daily"')
    assert tm.reads == {"prices_daily": 4, "instruments": 1}


def test_columns_without_the_partition_column_come_back_as_asked(wh):
    got = _at(wh, 2).read_partitions("prices_daily", end=DATES[2], columns=["instrument_id"])
    assert list(got.columns) == ["instrument_id"] and len(got) == 6


@pytest.mark.parametrize("call", [
    lambda tm: tm.read_partitions("prices_daily", market_id="US_EQ", start=DATES[0],
                                  end=DATES[5]),
    lambda tm: tm.read_partitions("prices_daily", dates=[DATES[1], DATES[4]]),
    lambda tm: tm.read("prices_daily", where={"date": between(DATES[0], DATES[4])}),
    lambda tm: tm.read("prices_daily", where={"date": DATES[4]}),
    lambda tm: tm.read("prices_daily", where={"date": [DATES[0], DATES[6]]}),
])
def test_strict_future_reads_raise_naming_table_and_dates(wh, call):
    with pytest.raises(LookAheadError) as exc:
        call(_at(wh, 3))
    msg = str(exc.value)
    assert "prices_daily" in msg and str(DATES[3].date()) in msg
    assert re.search(r"2024-01-(08|09|10)", msg)  # the requested date
    assert isinstance(exc.value, PrometheusError)


@pytest.mark.parametrize("call", [
    lambda tm: tm.read("prices_daily"),
    lambda tm: tm.read("prices_daily", where={"instrument_id": "A"}),
    lambda tm: tm.read("prices_daily", where={"date": between(DATES[0], None)}),
    lambda tm: tm.read_partitions("prices_daily", market_id="US_EQ", start=DATES[0]),
])
def test_strict_unbounded_reads_of_dated_tables_raise(wh, call):
    with pytest.raises(LookAheadError, match="no upper bound"):
        call(_at(wh, 3))


def test_non_strict_clips_to_the_current_date_and_warns(wh, caplog):
    tm = _at(wh, 3, strict=False)
    with caplog.at_level(logging.WARNING):
        got = tm.read_partitions("prices_daily", market_id="US_EQ", start=DATES[1])
    assert got["date"].max() == DATES[3] and got["date"].min() == DATES[1]
    assert "clipped" in caplog.text
    assert tm.read("prices_daily", where={"date": DATES[5]}).empty
    assert set(tm.read("prices_daily", where={"date": [DATES[2], DATES[6]]})["date"]) == {
        DATES[2]}
    assert tm.read("prices_daily")["date"].max() == DATES[3]
    assert tm.clipped == {"prices_daily": 4}


def test_clock_moves_forward_only_and_must_be_set(wh):
    tm = TimeMachine(wh)
    assert tm.current_date is None
    with pytest.raises(LookAheadError, match="advance_to"):
        tm.read_partitions("prices_daily", end=DATES[0])
    assert len(tm.read("instruments")) == 2
    tm.advance_to("2024-01-05").advance_to(DATES[3])
    assert tm.current_date == pd.Timestamp("2024-01-05")
    with pytest.raises(LookAheadError, match="move back"):
        tm.advance_to(DATES[1])
    tm.advance_to(DATES[7])
    assert len(tm.read_partitions("prices_daily", end=DATES[7])) == 16


def test_raw_sql_is_refused_in_strict_mode(wh):
    sql = f"select count(*) as n from {wh.sql_name('prices_daily')}"
    with pytest.raises(LookAheadError, match="raw SQL"):
        _at(wh, 1).query(sql)
    tm = _at(wh, 1, strict=False)
    assert int(tm.query(sql)["n"].iloc[0]) == 16
    assert tm.reads == {"<sql>": 1}


@pytest.mark.parametrize("name", ["write_partitions", "insert_missing", "replace_all", "append",
                                  "replace_partition", "ensure_table", "path"])
def test_writes_and_anything_else_are_refused(wh, name):
    tm = _at(wh, 1)
    with pytest.raises(TimeMachineAccessError) as exc:
        getattr(tm, name)
    assert isinstance(exc.value, WarehouseError) and name in str(exc.value)
    assert not hasattr(tm, name)


class _LeakyWarehouse:
    """Ignores every filter: returns rows after the requested dates."""

    def read(self, table, *, where=None, columns=None, order_by=None):
        frame = pd.DataFrame({"instrument_id": ["A", "A"], "date": [DATES[0], DATES[5]]})
        return frame[list(columns)] if columns is not None else frame

    def read_partitions(self, table, **kwargs):
        return self.read(table, columns=kwargs.get("columns"))


def test_rows_after_the_current_date_are_caught_as_a_second_line_of_defence(caplog):
    tm = TimeMachine(_LeakyWarehouse()).advance_to(DATES[2])
    with pytest.raises(LookAheadError, match="1 row"):
        tm.read_partitions("prices_daily", end=DATES[2])
    lax = TimeMachine(_LeakyWarehouse(), strict=False).advance_to(DATES[2])
    with caplog.at_level(logging.WARNING):
        got = lax.read("prices_daily", where={"date": between(None, DATES[2])},
                       columns=["instrument_id"])
    assert list(got.columns) == ["instrument_id"] and len(got) == 1
    assert "dropped 1 row" in caplog.text


# --- metrics ------------------------------------------------------------------------------------
RETS = [0.10, -0.10, 0.05, 0.10]


def _equity(rets=RETS, start=100.0) -> pd.DataFrame:
    eq = start * np.cumprod([1.0, *[1 + r for r in rets]])
    n = len(eq)
    return pd.DataFrame({
        "date": pd.bdate_range("2024-03-01", periods=n), "equity": eq,
        "benchmark_equity": 50.0 * np.cumprod([1.0, *([1.01] * (n - 1))]),
        "gross_exposure": np.linspace(1.0, 1.4, n), "net_exposure": [0.2] * n,
        "turnover": [0.0, 0.5, 0.1, 0.1, 0.3][:n], "costs": [0.0, 1.0, 1.0, 1.0, 1.0][:n],
        "regime_label": ["A", "A", "B", "A", "B"][:n],
        "stability_bucket": ["LOW", "HIGH", "HIGH", "HIGH", None][:n],
    })


def test_metrics_match_hand_computations():
    frame = _equity().sample(frac=1.0, random_state=3)  # order does not matter
    m = backtest_metrics(frame)
    eq = [100.0, 110.0, 99.0, 103.95, 114.345]
    mean = (0.10 - 0.10 + 0.05 + 0.10) / 4
    sd = math.sqrt(((0.1 - mean) ** 2 + (-0.1 - mean) ** 2 + (0.05 - mean) ** 2
                    + (0.1 - mean) ** 2) / 3)
    cagr = 1.14345 ** (252 / 4) - 1
    assert m["sessions"] == 5 and m["return_days"] == 4
    assert m["start_date"] == "2024-03-01" and m["end_date"] == "2024-03-07"
    assert m["total_return"] == pytest.approx(0.14345)
    assert m["cagr"] == pytest.approx(cagr)
    assert m["ann_vol"] == pytest.approx(sd * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252))
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.01 / 4) * math.sqrt(252))
    assert m["max_drawdown"] == pytest.approx(99 / 110 - 1)
    assert m["max_drawdown_duration"] == 3 and m["max_drawdown_recovered"] is True
    assert m["calmar"] == pytest.approx(cagr / (1 - 99 / 110))
    assert m["hit_rate"] == pytest.approx(0.75)
    assert m["avg_turnover"] == pytest.approx(1.0 / 5)
    assert m["avg_gross_exposure"] == pytest.approx(1.2)
    assert m["avg_net_exposure"] == pytest.approx(0.2)
    assert m["total_costs"] == pytest.approx(4.0)
    assert m["costs_bps"] == pytest.approx(4.0 / (sum(eq) / 5) * 1e4)
    assert m["benchmark_total_return"] == pytest.approx(1.01 ** 4 - 1)
    assert math.isnan(m["benchmark_sharpe"])  # constant benchmark returns
    assert m["benchmark_max_drawdown"] == 0.0
    active = [r - 0.01 for r in RETS]
    assert m["tracking_error"] == pytest.approx(np.std(active, ddof=1) * math.sqrt(252))
    assert json.loads(json.dumps(m, allow_nan=True))["sharpe"] == pytest.approx(m["sharpe"])
    assert all(not isinstance(v, np.generic) for v in m.values())


def test_unrecovered_drawdown_lasts_to_the_end():
    assert drawdown_stats([100, 110, 99, 103.95]) == (pytest.approx(-0.1), 2, False)
    assert drawdown_stats([100, 110, 110, 90, 100, 120]) == (pytest.approx(-2 / 11), 3, True)
    assert drawdown_stats([1, 2, 3]) == (0.0, 0, True)
    worst, duration, recovered = drawdown_stats([])
    assert math.isnan(worst) and duration == 0 and not recovered


def test_empty_constant_and_single_row_series_give_nan_not_errors():
    empty = backtest_metrics(_equity().iloc[0:0])
    assert empty["sessions"] == 0 and math.isnan(empty["sharpe"]) and math.isnan(empty["cagr"])
    one = backtest_metrics(_equity().iloc[:1])
    assert math.isnan(one["total_return"]) and math.isnan(one["ann_vol"])
    flat = backtest_metrics(_equity(rets=[0.0] * 4))
    assert flat["total_return"] == 0.0 and flat["ann_vol"] == 0.0
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["sortino"])
    assert flat["max_drawdown"] == 0.0 and math.isnan(flat["calmar"])
    assert flat["hit_rate"] == 0.0
    steady = backtest_metrics(_equity(rets=[0.001] * 4))
    assert math.isnan(steady["sharpe"]) and math.isnan(steady["sortino"])
    bare = backtest_metrics(_equity()[["date", "equity"]])
    assert math.isnan(bare["avg_turnover"]) and math.isnan(bare["benchmark_cagr"])
    assert metrics_by_slice(_equity().iloc[0:0], "regime_label").empty
    assert metrics_by_slice(_equity()[["date", "equity"]], "regime_label").empty


def test_metrics_by_regime_and_stability_slice():
    by = metrics_by_slice(_equity(), "regime_label").set_index("regime_label")
    assert list(by.index) == ["A", "B"]
    a, b = by.loc["A"], by.loc["B"]  # A: returns +0.10, +0.05; B: -0.10, +0.10
    assert a["days"] == 2 and b["days"] == 2
    assert a["ann_return"] == pytest.approx(0.075 * 252)
    assert a["ann_vol"] == pytest.approx(np.std([0.1, 0.05], ddof=1) * math.sqrt(252))
    assert a["sharpe"] == pytest.approx(0.075 / np.std([0.1, 0.05], ddof=1) * math.sqrt(252))
    assert a["hit_rate"] == 1.0 and a["max_drawdown"] == 0.0
    assert a["compounded_return"] == pytest.approx(1.1 * 1.05 - 1)
    assert b["sharpe"] == pytest.approx(0.0) and b["hit_rate"] == 0.5
    assert b["max_drawdown"] == pytest.approx(-0.1)
    assert b["compounded_return"] == pytest.approx(0.9 * 1.1 - 1)
    both = sliced_metrics(_equity())
    assert set(both) == {"regime_label", "stability_bucket"}
    stab = both["stability_bucket"]
    assert list(stab["stability_bucket"]) == ["HIGH"] and stab["days"].iloc[0] == 3


def test_daily_return_and_drawdown_columns():
    out = with_returns_and_drawdown(_equity())
    assert math.isnan(out["daily_return"].iloc[0])
    assert out["daily_return"].iloc[1:].to_numpy() == pytest.approx(RETS)
    assert out["drawdown"].to_numpy() == pytest.approx([0, 0, -0.1, 103.95 / 110 - 1, 0])


# --- tear sheet ---------------------------------------------------------------------------------
def _synthetic_equity(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    r = rng.normal(0.0004, 0.01, n)
    labels = np.where(np.arange(n) % 120 < 80, "RISK_ON_LOW_VOL", "RISK_OFF_PANIC").astype(object)
    labels[:5] = None
    labels[150:170] = "CUSTOM_LABEL"
    return pd.DataFrame({
        "date": pd.bdate_range("2022-01-03", periods=n),
        "equity": 1e6 * np.cumprod(1 + r),
        "benchmark_equity": 100 * np.cumprod(1 + rng.normal(0.0003, 0.009, n)),
        "gross_exposure": 1.0 + 0.2 * rng.random(n), "net_exposure": 0.1 * rng.random(n),
        "turnover": 0.05 * rng.random(n), "costs": 10 * rng.random(n),
        "regime_label": labels, "stability_bucket": np.where(r > 0, "STABLE", "FRAGILE"),
    })


def test_tear_sheet_figure_png_and_html():
    from PIL import Image

    daily = _synthetic_equity()
    fig = tear_sheet_figure(daily, "demo strategy", log_scale=True)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_yscale() == "log"
    labels = {t.get_text() for leg in fig.axes[0].artists + [fig.axes[0].get_legend()]
              if leg is not None and hasattr(leg, "get_texts") for t in leg.get_texts()}
    assert {"RISK_ON_LOW_VOL", "RISK_OFF_PANIC", "CUSTOM_LABEL", "strategy",
            "benchmark"} <= labels
    png = tear_sheet_png(fig)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.size[0] > 500
    metrics = backtest_metrics(daily)
    page = tear_sheet_html(daily, metrics, sliced_metrics(daily), png, "demo <strategy>")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "demo &lt;strategy&gt;" in page and "<script" not in page
    blob = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert base64.b64decode(blob) == png
    assert "max drawdown" in page and "By regime label" in page and "FRAGILE" in page
    assert "Calendar-year returns" in page and ">2023<" in page


def test_tear_sheet_of_an_empty_or_minimal_frame():
    empty = _synthetic_equity().iloc[0:0]
    assert len(tear_sheet_figure(empty, "nothing").axes) == 4
    page = tear_sheet_html(empty, backtest_metrics(empty), {}, tear_sheet_png(
        tear_sheet_figure(empty, "nothing")), "nothing")
    assert "n/a" in page
    tiny = _synthetic_equity(3)[["date", "equity"]]
    assert tear_sheet_png(tear_sheet_figure(tiny, "tiny")).startswith(b"\x89PNG")


# --- decision outcomes --------------------------------------------------------------------------
ODATES = pd.bdate_range("2024-05-01", periods=6)  # d0..d5


def _returns() -> pd.DataFrame:
    a = [0.03, -0.02, 0.02, -0.01, 0.00, 0.05]
    b = [-0.04, 0.01, 0.04, 0.03, -0.02, 0.01]
    return pd.DataFrame({"instrument_id": ["A"] * 6 + ["B"] * 6, "date": list(ODATES) * 2,
                         "ret_1d": a + b})


def _decisions() -> pd.DataFrame:
    return pd.DataFrame([
        {"decision_id": "d1", "engine_name": "portfolio", "market_id": "US_EQ",
         "as_of_date": ODATES[1], "weights": {"A": 0.5, "B": -0.25}},
        {"decision_id": "d2", "engine_name": "portfolio", "market_id": "US_EQ",
         "as_of_date": ODATES[4], "weights": '{"A": 1.0, "C": 0.5, "B": 0}'},
        {"decision_id": "d3", "engine_name": "portfolio", "market_id": "US_EQ",
         "as_of_date": ODATES[5], "weights": {"A": 1.0}},
    ])


def test_decision_outcomes_against_hand_computation():
    out = decision_outcomes(_decisions(), _returns(), horizons=(1, 2, 5))
    d1 = out[out["decision_id"] == "d1"].set_index("horizon_days")
    # after d1: A +0.02, -0.01, 0.00, +0.05; B +0.04, +0.03, -0.02, +0.01
    v1 = 1 + 0.5 * 0.02 - 0.25 * 0.04
    v2 = 1 + 0.5 * (1.02 * 0.99 - 1) - 0.25 * (1.04 * 1.03 - 1)
    assert d1.loc[1, "realised_return"] == pytest.approx(v1 - 1)
    assert d1.loc[2, "realised_return"] == pytest.approx(v2 - 1)
    assert d1.loc[2, "realised_pnl"] == pytest.approx((v2 - 1) / 0.75)
    assert d1.loc[2, "max_drawdown"] == pytest.approx(v2 / max(1.0, v1) - 1)
    v4 = 1 + 0.5 * (1.02 * 0.99 * 1.0 * 1.05 - 1) - 0.25 * (1.04 * 1.03 * 0.98 * 1.01 - 1)
    assert d1.loc[5, "realised_return"] == pytest.approx(v4 - 1)
    assert list(d1["complete"]) == [True, True, False]
    assert list(d1["sessions"]) == [1, 2, 4]
    assert list(d1["end_date"]) == [ODATES[2], ODATES[3], ODATES[5]]
    assert (d1["n_names"] == 2).all() and (d1["as_of_date"] == ODATES[1]).all()
    d2 = out[out["decision_id"] == "d2"].set_index("horizon_days")
    # one session after d2; C has no returns (flat); B's zero weight is no name
    assert d2.loc[1, "realised_return"] == pytest.approx(0.05)
    assert d2.loc[1, "realised_pnl"] == pytest.approx(0.05 / 1.5)
    assert d2.loc[1, "max_drawdown"] == 0.0 and d2.loc[1, "n_names"] == 2
    assert bool(d2.loc[1, "complete"]) and not d2.loc[2, "complete"]
    assert "d3" not in set(out["decision_id"])  # nothing realised after its date yet
    validate_frame("decision_outcomes", out)


def test_decision_outcomes_ignore_returns_on_or_before_the_decision_date():
    base = decision_outcomes(_decisions(), _returns())
    changed = _returns()
    early = pd.to_datetime(changed["date"]) <= ODATES[1]
    changed.loc[early, "ret_1d"] = [0.9, -0.5, 0.7, 0.3]
    changed = pd.concat([changed, pd.DataFrame({"instrument_id": ["A"],
                                                "date": [ODATES[0] - pd.Timedelta(days=3)],
                                                "ret_1d": [0.4]})])
    d1 = base["decision_id"] == "d1"
    pd.testing.assert_frame_equal(base[d1], decision_outcomes(_decisions(), changed)[d1])


def test_decision_outcomes_per_market_and_empty_inputs():
    r = _returns().assign(market_id="EU_EQ")
    assert decision_outcomes(_decisions(), r).empty  # no US_EQ sessions
    r = pd.concat([r, _returns().assign(market_id="US_EQ")])
    assert len(decision_outcomes(_decisions(), r, horizons=(1,))) == 2
    assert decision_outcomes(_decisions().iloc[0:0], _returns()).empty
    with pytest.raises(PrometheusError, match="horizons"):
        decision_outcomes(_decisions(), _returns(), horizons=(0,))
    with pytest.raises(PrometheusError, match="share"):
        decision_outcomes(_decisions(), pd.concat([_returns(), _returns().iloc[:1]]))


def test_outcomes_are_dated_by_when_they_became_known(tmp_path):
    w = Warehouse.from_url(f"duckdb:///{tmp_path / 'o.duckdb'}")
    out = decision_outcomes(_decisions(), _returns(), horizons=(1, 2, 5))
    w.write_partitions("decision_outcomes", out)
    tm = TimeMachine(w).advance_to(ODATES[3])
    seen = tm.read_partitions("decision_outcomes", end=ODATES[3])
    assert set(zip(seen["decision_id"], seen["horizon_days"], strict=True)) == {("d1", 1),
                                                                              ("d1", 2)}


# --- tables -------------------------------------------------------------------------------------
def test_backtest_tables_are_declared_with_keys():
    runs = get_schema("backtest_runs")
    assert runs.primary_key == ("backtest_id",) and runs.partition_column is None
    assert runs.market_column == "market_id"
    trades = get_schema("backtest_trades")
    assert trades.partition_column == "date" and trades.primary_key[0] == "backtest_id"
    equity = get_schema("backtest_daily_equity")
    assert equity.primary_key == ("backtest_id", "date") and equity.partition_column == "date"
    daily = with_returns_and_drawdown(_equity()).drop(columns=["stability_bucket"]).assign(
        backtest_id="bt1", market_id="US_EQ", cash=0.0)
    assert len(validate_frame("backtest_daily_equity", daily)) == 5
    row = {"backtest_id": "bt1", "strategy_id": "s", "market_id": "US_EQ", "config_id": "c",
           "start_date": "2024-01-02", "end_date": "2024-02-01", "strict": True,
           "metrics": backtest_metrics(_equity()), "created_at": pd.Timestamp.now(tz="UTC")}
    assert '"sharpe"' in validate_frame("backtest_runs", pd.DataFrame([row]))["metrics"][0]
