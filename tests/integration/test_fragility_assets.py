"""Stability, scenario, fragility and the investment chain through Dagster on a small embedded
market: stability vectors, scenario sets and paths reproducible from their stored specs,
scenario-loss measures, soft-target classes, a tail model trained point in time and registered
in MLflow, fragility alpha made with it; the risk model, the assessment model and instrument
scores, universes, target portfolios and risk reports of the shipped strategies; decision
records; look-ahead invariance and single-run backfills equal to per-partition runs."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import AssetKey, materialize

from prometheus_dagster.assets.assessment import assessment_assets
from prometheus_dagster.assets.backtest import backtest_assets
from prometheus_dagster.assets.embeddings import encoder_assets
from prometheus_dagster.assets.execution import execution_assets
from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.fragility import fragility_assets
from prometheus_dagster.assets.ingestion import ingestion_assets
from prometheus_dagster.assets.portfolio import portfolio_assets
from prometheus_dagster.assets.profiles import profile_assets
from prometheus_dagster.assets.risk import risk_assets
from prometheus_dagster.assets.scenarios import scenario_assets
from prometheus_dagster.assets.stability import stability_assets
from prometheus_dagster.assets.universe import universe_assets
from prometheus_dagster.core import config as core_config
from prometheus_dagster.core.paths import CONFIG_DIR
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.engines.scenarios import regenerate_paths
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

M = "US_EQ"
HISTORY = ("2021-10-01", "2023-01-31")   # ingested first (look-backs and outcomes)
ENGINE_HISTORY = ("2022-06-01", "2022-12-30")  # what the tail model learns from
DAYS = ("2023-01-03", "2023-01-31")
LATER = ("2023-02-01", "2023-02-28")
REFIT = "2023-01-01"
CHAIN = ["stability_vectors", "scenario_sets", "scenario_paths", "fragility_measures",
         "soft_target_classes"]
INVESTMENT = ["risk_factor_covariance", "risk_specific", "instrument_scores", "universes",
              "target_portfolios", "portfolio_risk_reports", "paper_execution"]
PAPER_TABLES = ["orders", "fills", "positions_snapshots"]
TABLES = ["stability_vectors", "scenario_sets", "fragility_measures", "soft_target_classes",
          "fragility_alpha", *(t for t in INVESTMENT if t != "paper_execution"), *PAPER_TABLES]
LONG_ONLY, LONG_SHORT = "core_equity_long_only", "market_neutral_long_short"
LONG_ONLY_MAX_WEIGHT = 0.4


def span(a: str, b: str) -> dict:
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def run(assets, resources, selection, **kw):
    result = materialize(assets, resources=resources, selection=selection, **kw)
    assert result.success
    return result


def keys(*tables: str) -> list[AssetKey]:
    return [AssetKey([M, t]) for t in tables]


def ingest(assets, resources, a: str, b: str) -> None:
    run(assets, resources, keys("prices_daily", "corporate_actions", "fundamentals"),
        tags=span(a, b))
    run(assets, resources, keys(*FEATURE_TABLES), tags=span(a, b))


def _rounded(v):
    """Numbers inside JSON values to 12 significant digits: solver outputs (weights, the
    exposures and risk figures made from them) agree between runs to ~1e-15, not to the bit."""
    if isinstance(v, str) and v[:1] in "[{":
        v = json.loads(v)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return float(f"{v:.12g}") if isinstance(v, float) else v


def rows(wh: Warehouse, table: str, a: str, b: str) -> pd.DataFrame:
    out = wh.read_partitions(table, market_id=M, start=a, end=b)
    if table in PAPER_TABLES:  # the paper book only, not backtests
        out = out[out["backtest_id"].isna()]
    out = out.sort_values(list(get_schema(table).primary_key)).reset_index(drop=True)
    if table in ("target_portfolios", "portfolio_risk_reports"):
        for c in out.select_dtypes(include="object").columns:
            out[c] = out[c].map(_rounded)
    if table in PAPER_TABLES:
        for c in out.select_dtypes(include="float").columns:
            out[c] = out[c].map(_rounded)
    return out


def rebuilt_equity(cash: float, fills: pd.DataFrame, actions: pd.DataFrame,
                   closes: pd.DataFrame) -> list[float]:
    """Cash + marked positions per session, rebuilt from the fills, the splits and dividends
    on the holdings, and the closes."""
    shares: dict[str, float] = {}
    out = []
    for d in closes.index:
        for a in actions[pd.to_datetime(actions["date"]) == d].itertuples():
            held = shares.get(a.instrument_id, 0.0)
            if a.action_type == "SPLIT":
                shares[a.instrument_id] = held * a.value
            elif a.action_type == "DIVIDEND":
                cash += held * a.value
        for t in fills[pd.to_datetime(fills["date"]) == d].itertuples():
            q = t.quantity if t.side == "BUY" else -t.quantity
            shares[t.instrument_id] = shares.get(t.instrument_id, 0.0) + q
            cash -= q * t.price + t.commission
        out.append(cash + sum(q * closes.loc[d, i] for i, q in shares.items() if q))
    return out


def small_config_dir(tmp: Path) -> Path:
    """The repository's configs with a small scenario set count and a tail model that can be
    fitted on half a year of a 14-name market."""
    dst = tmp / "configs"
    shutil.copytree(CONFIG_DIR, dst)
    scen = yaml.safe_load((dst / "engines" / "scenarios.yaml").read_text())
    for s in scen["sets"]:
        if s.get("num_paths", 1) > 1:
            s["num_paths"] = 20
    (dst / "engines" / "scenarios.yaml").write_text(yaml.safe_dump(scen))
    frag = yaml.safe_load((dst / "engines" / "fragility.yaml").read_text())
    frag["refit"].update(min_training_rows=200, min_positive=5)
    frag["model"].update(n_estimators=40, min_child_samples=10)
    (dst / "engines" / "fragility.yaml").write_text(yaml.safe_dump(frag))
    # a 14-name market has only a handful of eligible long-only names: looser name, sector
    # and beta limits keep the fully invested book feasible
    lo = yaml.safe_load((dst / "strategies" / f"{LONG_ONLY}.yaml").read_text())
    lo["portfolio"].update(max_weight=LONG_ONLY_MAX_WEIGHT, sector_max_net=0.8,
                           factor_limits={"MARKET": [0.3, 1.7]})
    (dst / "strategies" / f"{LONG_ONLY}.yaml").write_text(yaml.safe_dump(lo))
    (dst / "engines" / "assessment.yaml").write_text(yaml.safe_dump({
        "engine": "assessment", "version": "test",
        "refit": {"cadence": "yearly", "first_year": 2022, "min_training_dates": 100,
                  "min_training_rows": 1000},
        "model": {"n_estimators": 40, "min_child_samples": 50},
        "walk_forward": {"n_folds": 2, "embargo_sessions": 5}}))
    return dst


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("fragility")
    patch = pytest.MonkeyPatch()
    patch.setattr(core_config, "CONFIG_DIR", small_config_dir(tmp))
    cfg = tmp / "market.yaml"
    cfg.write_text(yaml.safe_dump({
        "engine": "synthetic_market", "version": "test", "seed": 4,
        "start_date": "2021-09-01", "end_date": "2023-03-31",
        "markets": {M: {"n_instruments": 14}, "EU_EQ": {"n_instruments": 4}},
        "distress": {"annual_rate": 0.6}}))
    url = f"duckdb:///{tmp / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(cfg))
    assets = [*ingestion_assets([M]), *features_assets([M]), *encoder_assets([M], [M]),
              *profile_assets([M]), *stability_assets([M], [M], []),
              *scenario_assets([M], []), *fragility_assets([M], [M]), *risk_assets([M]),
              *assessment_assets([M]), *universe_assets([M]), *portfolio_assets([M]),
              *execution_assets([M]), *backtest_assets([M])]
    run(assets, resources, keys("instruments", "issuers"))
    ingest(assets, resources, *HISTORY)
    run(assets, resources, keys("profiles", *CHAIN), tags=span(ENGINE_HISTORY[0], DAYS[1]))
    run(assets, resources, keys("fragility_models"), partition_key=REFIT)
    run(assets, resources, keys("fragility_alpha"), tags=span(*DAYS))
    run(assets, resources, keys("assessment_models"), partition_key=REFIT)
    run(assets, resources, keys(*INVESTMENT), tags=span(*DAYS))
    wh = Warehouse.from_url(url)
    first = {t: rows(wh, t, *DAYS) for t in TABLES}
    yield wh, resources, assets, first
    patch.undo()


def test_stability_and_soft_targets(market):
    wh, _, _, first = market
    st = first["stability_vectors"]
    assert set(st["entity_type"]) == {"ISSUER", "SECTOR", "MARKET"}
    assert st["stability_score"].between(0, 1).all()
    assert st[["liquidity", "volatility", "contagion", "fundamental"]].notna().mean().min() > 0.5
    soft = first["soft_target_classes"]
    assert set(soft["soft_target_class"]) <= {"NONE", "WATCHLIST", "SOFT_TARGET"}
    flagged = soft[soft["soft_target_class"] != "NONE"]
    assert all(len(r) for r in flagged["reasons"])
    decisions = wh.read("engine_decisions", where={"market_id": M})
    for engine in ("stability", "scenarios", "soft_targets", "fragility_alpha"):
        got = decisions[decisions["engine_name"] == engine]
        assert len(got) >= 20, engine  # one per date of the window (and the history)
        assert got["mlflow_run_id"].notna().all()


def test_scenarios_reproducible_from_stored_specs(market):
    wh, _, _, first = market
    sets = first["scenario_sets"]
    assert {"HISTORICAL", "BOOTSTRAP", "FACTOR_BOOTSTRAP", "SHOCK_OVERLAY",
            "FRAGILITY_ADVERSARIAL", "NAMED"} <= set(sets["family"])
    row = sets[sets["family"] == "BOOTSTRAP"].iloc[-1]
    paths = wh.read_partitions("scenario_paths", market_id=M, dates=[row["as_of_date"]])
    paths = paths[paths["set_id"] == row["set_id"]]
    assert paths["path_id"].nunique() == 20
    from prometheus_dagster.assets.scenarios import ScenarioData, scenarios_config

    cfg = scenarios_config().config
    d = pd.Timestamp(row["as_of_date"])
    again = regenerate_paths(row, ScenarioData(wh, M, [d], cfg).for_date(d), cfg)
    cum = pd.DataFrame(again.cumulative_returns, columns=again.instrument_ids).stack()
    stored = paths.set_index(["path_id", "instrument_id"])["cumulative_return"]
    pd.testing.assert_series_equal(cum.rename("cumulative_return").sort_index(),
                                   stored.sort_index(), check_names=False, check_index_type=False)


def test_fragility_model_and_alpha(market):
    wh, resources, _, first = market
    models = wh.read("models", where={"model_type": "fragility_tail"})
    assert len(models) == 1
    assert pd.Timestamp(models["trained_through"].iloc[0]) <= pd.Timestamp("2022-12-31")
    versions = resources["mlflow"].model_versions(f"{M}.fragility-lgbm-v1")
    assert len(versions) == 1
    alpha = first["fragility_alpha"]
    issuers = alpha[alpha["entity_type"] == "ISSUER"]
    assert sorted(alpha["horizon_days"].unique()) == [21, 63]
    assert (issuers["model_id"] == f"{M}.fragility-lgbm-v1/1").all()
    assert issuers["tail_probability"].between(0, 1).all()
    assert (issuers["fragility_alpha"] <= 0).all()
    for c in ("weak_profile", "instability", "high_fragility", "soft_target_score"):
        assert issuers[c].between(0, 1).all(), c
    measures = first["fragility_measures"]
    assert (measures["worst_case_loss"] >= measures["expected_shortfall"] - 1e-12).all()
    assert measures["high_fragility"].between(0, 1).all()


def test_lookahead_invariance_and_backfill_equals_partitions(market):
    wh, resources, assets, first = market
    ingest(assets, resources, *LATER)  # data after the dates
    run(assets, resources, keys("profiles", *CHAIN, "fragility_alpha", *INVESTMENT),
        tags=span(*DAYS))
    for t in TABLES:
        again = rows(wh, t, *DAYS)
        pd.testing.assert_frame_equal(again, first[t], obj=t)
    days = sorted({pd.Timestamp(d).strftime("%Y-%m-%d")
                   for d in first["stability_vectors"]["as_of_date"]})[-2:]
    for d in days:
        run(assets, resources, keys(*CHAIN, "fragility_alpha", *INVESTMENT), partition_key=d)
    for t in TABLES:
        single = rows(wh, t, days[0], days[-1])
        part = get_schema(t).partition_column
        expected = first[t][pd.to_datetime(first[t][part]) >= days[0]]
        pd.testing.assert_frame_equal(single, expected.reset_index(drop=True), obj=t)


def test_assessment_model_and_scores(market):
    wh, resources, _, first = market
    models = wh.read("models", where={"model_type": "assessment"})
    assert len(models) == 1
    assert pd.Timestamp(models["trained_through"].iloc[0]) < pd.Timestamp(REFIT)
    version = resources["mlflow"].model_versions(f"{M}.assessment-lgbm-v1").iloc[0]
    client = resources["mlflow"].client()
    logged = client.get_run(version["run_id"]).data.metrics
    # half a year of a 14-name market: the 21-session folds may be too short to score (NaN
    # metrics are not logged), the full out-of-sample report is an artifact either way
    assert "h5_oos_mean_rank_ic" in logged and "h5_oos_decile_spearman" in logged
    artifacts = {a.path for a in client.list_artifacts(version["run_id"])}
    assert {"oos_metrics.json", "assessment_model.json"} <= artifacts
    scores = first["instrument_scores"]
    assert set(scores["strategy_id"]) == {LONG_ONLY, LONG_SHORT}
    assert sorted(scores["horizon_days"].unique()) == [5, 21]
    assert (scores["model_id"] == f"{M}.assessment-lgbm-v1/1").all()
    assert scores["score"].between(0, 1).all() and scores["confidence"].between(0, 1).all()
    assert set(scores["signal_label"]) <= {"STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL"}
    assert (scores["fragility_penalty"] >= 0).all()
    assert (scores["expected_return"] <= scores["raw_expected_return"] + 1e-15).all()
    row = scores.iloc[0]
    components = row["alpha_components"]
    components = json.loads(components) if isinstance(components, str) else components
    assert {"value", "momentum", "quality", "fragility", "context"} <= set(components)
    assert sum(components.values()) == pytest.approx(row["raw_expected_return"], abs=1e-9)


def test_universes_portfolios_and_risk_reports(market):
    wh, _, _, first = market
    uni = first["universes"]
    assert set(uni["strategy_id"]) == {LONG_ONLY, LONG_SHORT}
    excluded = uni[uni["tier"] == "EXCLUDED"]
    assert all(len(r) > 0 for r in excluded["reasons"])
    assert (uni["tier"] != "EXCLUDED").any()
    targets = first["target_portfolios"]
    dates = targets.groupby("portfolio_id")["as_of_date"].nunique()
    assert dates.get(f"{LONG_ONLY}:{M}", 0) >= 15 and dates.get(f"{LONG_SHORT}:{M}", 0) >= 15
    for (pid, _), g in targets.groupby(["portfolio_id", "as_of_date"]):
        w = g["weight"]
        if pid.startswith(LONG_ONLY):
            assert w.sum() == pytest.approx(1.0, abs=1e-6) and (w >= -1e-9).all()
            assert w.max() <= LONG_ONLY_MAX_WEIGHT + 1e-7
            assert not ((g["soft_target_class"] == "SOFT_TARGET") & (w > 1e-9)).any()
        else:
            assert w.sum() == pytest.approx(0.0, abs=1e-6)
            assert w.abs().sum() <= 2.0 + 1e-6 and w.abs().max() <= 0.05 + 1e-7
    # every selected name is in its strategy's universe on the date
    held = targets[targets["weight"] != 0].merge(
        uni, on=["strategy_id", "instrument_id", "as_of_date"], how="left")
    assert (held["tier"] != "EXCLUDED").all()
    reports = first["portfolio_risk_reports"]
    assert set(reports["portfolio_id"]) == set(targets["portfolio_id"])
    # pooled scenario VaR / ES of one report, recomputed from the stored paths and weights
    rep = reports.iloc[-1]
    d = pd.Timestamp(rep["as_of_date"])
    w = targets[(targets["portfolio_id"] == rep["portfolio_id"])
                & (targets["as_of_date"] == d)].set_index("instrument_id")["weight"]
    paths = wh.read_partitions("scenario_paths", market_id=M, dates=[d])
    paths = paths[paths["instrument_id"].isin(w.index)]
    pnl = (paths.assign(p=paths["cumulative_return"] * paths["instrument_id"].map(w))
           .groupby(["set_id", "path_id"])["p"].sum().sort_values().to_numpy())
    k = int(-(-0.05 * len(pnl) // 1))  # ceil(5% of the paths)
    assert rep["scenario_var"]["95%"] == pytest.approx(-pnl[k - 1], rel=1e-9)
    assert rep["scenario_es"]["95%"] == pytest.approx(-pnl[pnl <= pnl[k - 1]].mean(), rel=1e-9)
    assert rep["gross"] == pytest.approx(w.abs().sum(), rel=1e-9)
    decisions = wh.read("engine_decisions", where={"market_id": M})
    for engine in ("assessment", "universe", "portfolio"):
        got = decisions[decisions["engine_name"] == engine]
        assert len(got) >= 2 * 15, engine  # two strategies, every date of the window
        assert got["mlflow_run_id"].notna().all()


def test_paper_execution_trades_each_target_on_the_next_session(market):
    wh, _, _, first = market
    snaps, fills, orders = (first[t] for t in ("positions_snapshots", "fills", "orders"))
    targets = first["target_portfolios"]
    sessions = sorted({pd.Timestamp(d) for d in rows(wh, "returns_daily", *DAYS)["date"]})
    closes = rows(wh, "prices_daily", *DAYS).pivot(index="date", columns="instrument_id",
                                                 values="close").ffill()
    actions = rows(wh, "corporate_actions", *DAYS)
    decisions = wh.read("engine_decisions", where={"market_id": M})
    assert set(snaps["portfolio_id"]) == set(targets["portfolio_id"])
    assert (snaps["mode"] == "PAPER").all() and (orders["mode"] == "PAPER").all()
    for pid, book in snaps.groupby("portfolio_id"):
        equity = book.groupby("date")["equity"].first()
        assert [pd.Timestamp(d) for d in equity.index] == sessions
        assert equity.iloc[0] == pytest.approx(1e7)  # the first session: cash, no fills yet
        mine = fills[fills["portfolio_id"] == pid]
        assert len(mine) > 0
        assert equity.to_numpy() == pytest.approx(
            rebuilt_equity(1e7, mine, actions, closes.loc[equity.index]), rel=1e-9)
        # day orders: each fill is in the session right after its decision
        nxt = dict(zip(sessions[:-1], sessions[1:], strict=True))
        assert (pd.to_datetime(mine["date"])
                == pd.to_datetime(mine["decided_on"]).map(nxt)).all()
        # a fully filled order lands the holding on the target, in whole shares at D's close
        shares = book.pivot(index="date", columns="instrument_id", values="shares").fillna(0.0)
        my_targets = targets[targets["portfolio_id"] == pid]
        checked = 0
        for o in orders[(orders["portfolio_id"] == pid)
                        & (orders["status"] == "FILLED")].itertuples():
            d = pd.Timestamp(o.decided_on)
            if d not in nxt or ((actions["instrument_id"] == o.instrument_id)
                                & (pd.to_datetime(actions["date"]) == nxt[d])).any():
                continue
            w = my_targets[(my_targets["as_of_date"] == d)
                           & (my_targets["instrument_id"] == o.instrument_id)]["weight"]
            want = float(w.iloc[0]) * equity[d] / closes.loc[d, o.instrument_id] if len(w) else 0
            assert shares.loc[nxt[d]].get(o.instrument_id, 0.0) == pytest.approx(
                float(int(want)), abs=1e-6), o.order_id
            checked += 1
        assert checked > 10
    # every order points at its portfolio decision; every session has an execution decision
    logged = set(decisions["decision_id"])
    assert set(orders["decision_id"]) <= logged
    paper = decisions[decisions["engine_name"] == "execution"]
    assert len(paper) == len(sessions) * snaps["portfolio_id"].nunique()


def backtest_config(**over) -> dict:
    cfg = {"strategy_id": LONG_ONLY, "start": DAYS[0], "end": DAYS[1], "strict": True,
           "rebalance_every": 5, "initial_capital": 1e6, **over}
    return {"ops": {f"{M}__backtest_runs": {"config": cfg}}}


def test_backtest_through_the_strict_time_machine(market):
    wh, resources, assets, _ = market
    run(assets, resources, keys("backtest_runs"), run_config=backtest_config())
    bt = wh.read("backtest_runs", where={"market_id": M})
    assert len(bt) == 1 and bool(bt["strict"].iloc[0])
    bid = bt["backtest_id"].iloc[0]
    equity = wh.read("backtest_daily_equity", where={"backtest_id": bid}, order_by=["date"])
    trades = wh.read("backtest_trades", where={"backtest_id": bid})
    sessions = sorted({pd.Timestamp(d) for d in rows(wh, "returns_daily", *DAYS)["date"]})
    assert [pd.Timestamp(d) for d in equity["date"]] == sessions
    assert len(trades) > 0
    # every fill is in a session after the decision it came from
    decided = pd.to_datetime(trades["decision_id"].str.rsplit(":", n=1).str[-1])
    assert (pd.to_datetime(trades["date"]) > decided).all()
    # the equity curve equals cash + marked positions rebuilt from the trades, the splits and
    # dividends on the holdings, and the closes
    closes = rows(wh, "prices_daily", *DAYS).pivot(index="date", columns="instrument_id",
                                                 values="close").ffill()
    rebuilt = rebuilt_equity(1e6, trades, rows(wh, "corporate_actions", *DAYS), closes)
    assert equity["equity"].to_numpy() == pytest.approx(rebuilt, rel=1e-9)
    metrics = bt["metrics"].iloc[0]
    metrics = json.loads(metrics) if isinstance(metrics, str) else metrics
    assert {"cagr", "sharpe", "sortino", "max_drawdown", "calmar", "hit_rate"} <= set(metrics)
    client = resources["mlflow"].client()
    artifacts = {a.path for a in client.list_artifacts(bt["mlflow_run_id"].iloc[0])}
    assert {"tear_sheet.png", "tear_sheet.html"} <= artifacts
    orders = wh.read("orders", where={"backtest_id": bid})
    assert len(orders) and (orders["mode"] == "BACKTEST").all()


def test_a_peeking_engine_fails_the_strict_backtest(market, monkeypatch):
    from prometheus_dagster.steps import backtest as backtest_loop

    wh, resources, assets, _ = market
    honest = backtest_loop.compute_universes

    def peeking(tm, market_id, dates, strategies, scores=None):
        tm.read_partitions("prices_daily", market_id=market_id,
                           end=dates[-1] + pd.Timedelta(days=1))  # tomorrow's prices
        return honest(tm, market_id, dates, strategies, scores=scores)

    monkeypatch.setattr(backtest_loop, "compute_universes", peeking)
    result = materialize(assets, resources=resources, selection=keys("backtest_runs"),
                         run_config=backtest_config(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.event_specific_data.error
    causes = []
    while error is not None:
        causes.append(error)
        error = error.cause
    assert any(e.cls_name == "LookAheadError" for e in causes)
    assert any("look-ahead read of prices_daily" in e.message for e in causes
               if e.cls_name == "LookAheadError")


def test_daily_brief_shows_scores_universe_changes_and_portfolios(market):
    from prometheus_dagster.engines.brief.collect import collect_brief
    from prometheus_dagster.engines.brief.render import render_brief

    wh, _, _, first = market
    day = pd.Timestamp(first["target_portfolios"]["as_of_date"].max())
    data = collect_brief(wh, day, [M])
    assert set(data.scores["strategy_id"]) == {LONG_ONLY, LONG_SHORT}
    assert set(data.scores["rank"]) == {"top", "bottom"}
    assert set(data.portfolios["portfolio_id"]) == {f"{LONG_ONLY}:{M}", f"{LONG_SHORT}:{M}"}
    assert data.portfolio_risk["var_95_1d"].gt(0).all()
    if data.universe_changes is not None:
        removed = data.universe_changes[data.universe_changes["change"] == "removed"]
        assert (removed["reasons"].str.len() > 0).all()
    # every name leaving a universe is logged with whole reasons (texts, not characters;
    # tests/unit/test_universe.py has a case with removals)
    logged = wh.read("engine_decisions", where={"market_id": M, "engine_name": "universe"})
    removed = [why for a in logged["proposed_action"]
               for why in (json.loads(a) if isinstance(a, str) else a)["removed"].values()]
    assert all(isinstance(w, list) and w and all(len(x) > 3 for x in w) for w in removed)
    books = data.paper.set_index("portfolio_id")
    assert set(books.index) == {f"{LONG_ONLY}:{M}", f"{LONG_SHORT}:{M}"}
    snaps = first["positions_snapshots"]
    last = snaps[(pd.to_datetime(snaps["date"]) == day) & (snaps["instrument_id"] == "CASH")]
    assert books["equity"].to_dict() == pytest.approx(
        dict(zip(last["portfolio_id"], last["equity"], strict=True)))
    assert books.loc[f"{LONG_ONLY}:{M}", "gross"] == pytest.approx(
        books.loc[f"{LONG_ONLY}:{M}", "net"])
    page = render_brief(data, png=b"")
    for heading in ("Top and bottom assessment scores", "Universe changes",
                    "Target portfolios: largest weights", "Portfolio risk", "Paper books"):
        assert heading in page


def test_fragility_steps_read_what_they_declare(market):
    """Each fragility asset step reads exactly the tables it declares (the Dagster deps and
    the decision refs come from the same declaration); the refit step is checked through its
    step function, so that no second model version is registered."""
    from prometheus_dagster.assets.lineage import DECLARED, step_name
    from prometheus_dagster.core.inputs import BOOKKEEPING_TABLES
    from prometheus_dagster.core.reader import RecordingReader, recording
    from prometheus_dagster.engines.fragility import FragilityConfig
    from prometheus_dagster.steps.fragility_alpha import model_inputs, train_fragility_model

    wh, resources, assets, _ = market
    tables = ("fragility_measures", "soft_target_classes", "fragility_alpha")
    with recording() as rec:
        run(assets, resources, keys(*tables), tags=span(*DAYS))
        cfg = core_config.load_engine_config("fragility").typed(FragilityConfig)
        train_fragility_model(RecordingReader(wh, rec, "refit"), M, pd.Timestamp(REFIT), cfg)

    def read(owner: str) -> set[tuple[str, str]]:
        return {(m, t) for m, t in rec.tables(owner) if t not in BOOKKEEPING_TABLES}

    for t in tables:
        inputs, market_id, members = DECLARED[step_name(M, t)]
        assert read(step_name(M, t)) == inputs.pairs(market_id, members), t
    assert read("refit") == model_inputs(cfg).pairs(M)
    inputs, _, _ = DECLARED[step_name(M, "fragility_models")]
    assert inputs.pairs(M) == model_inputs(cfg).pairs(M)
