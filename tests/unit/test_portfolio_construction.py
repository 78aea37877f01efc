"""Portfolio construction from a strategy: bounds by side, soft targets, held names leaving the
universe, sector / factor / gross limits at the optimum, infeasibility, target rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.config import validate_config
from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.portfolio import InfeasibleProblemError
from prometheus_dagster.engines.portfolio.construction import (
    ConstructedProblem,
    build_problem,
    optimize_strategy,
    target_portfolio_rows,
)
from prometheus_dagster.engines.portfolio.schemas import TARGET_PORTFOLIOS
from prometheus_dagster.engines.risk import FactorRiskModel
from prometheus_dagster.engines.strategy import StrategyConfig, load_strategies

DATE = pd.Timestamp("2024-03-28")
SECTORS = ("Tech", "Energy", "Health", "Financials")
FACTORS = ["MARKET", "SIZE", "VALUE"]
TOL = 1e-6


def _risk(ids: list[str], seed: int = 3) -> FactorRiskModel:
    rng = np.random.default_rng(seed)
    ids = sorted(ids)
    b = np.column_stack([rng.normal(1.0, 0.25, len(ids)), rng.normal(0, 0.5, len(ids)),
                         rng.normal(0, 0.5, len(ids))])
    a = rng.normal(size=(3, 3)) * 0.05
    f = np.diag([0.03, 0.01, 0.008]) + a @ a.T
    return FactorRiskModel("US_EQ", DATE, ids, list(FACTORS), b, f,
                           rng.uniform(0.02, 0.08, len(ids)))


def _candidates(n: int = 16, seed: int = 5, side: str = "LONG") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"I{i:02d}" for i in range(n)]
    return pd.DataFrame({
        "instrument_id": ids,
        "expected_return": rng.normal(0.004, 0.01, n),
        "sector": [SECTORS[i % len(SECTORS)] for i in range(n)],
        "country": ["US" if i % 3 else None for i in range(n)],
        "side_allowed": side,
        "soft_target_class": "NONE",
    })


def _strategy(kind: str = "LONG_ONLY", **portfolio: object) -> StrategyConfig:
    base: dict = {"risk_aversion": 3.0, "budget": 1.0, "max_weight": 0.15, "min_weight": 0.0,
                  "cost_bps": 5.0}
    if kind == "LONG_SHORT":
        base.update(budget=0.0, min_weight=-0.1, max_weight=0.1, gross_limit=2.0)
    base.update(portfolio)
    body = {"engine": "strategy", "strategy_id": "test", "kind": kind, "markets": ["US_EQ"],
            "horizon_days": 21, "fragility_penalty": 0.0,
            "universe": {"soft_target_policy": "EXCLUDE" if kind == "LONG_ONLY"
                         else "SHORT_ONLY"},
            "portfolio": base}
    return validate_config(body).config  # type: ignore[return-value]


def _solve(strategy: StrategyConfig, cands: pd.DataFrame, risk: FactorRiskModel,
           w_prev: dict[str, float] | None = None) -> tuple[ConstructedProblem, pd.Series]:
    built = build_problem(strategy, cands, risk, w_prev)
    res = optimize_strategy(built)
    return built, pd.Series(res.weights, index=built.names)


def test_long_only_budget_bounds_and_soft_targets() -> None:
    cands = _candidates(18)
    cands.loc[0, ["soft_target_class", "side_allowed", "expected_return"]] = \
        ["SOFT_TARGET", "LONG", 0.2]     # defensive: a soft target labelled LONG
    cands.loc[1, ["soft_target_class", "side_allowed", "expected_return"]] = \
        ["SOFT_TARGET", "SHORT", -0.2]   # as the universe labels it under SHORT_ONLY
    cands.loc[2, "side_allowed"] = "NONE"
    cands.loc[3, "expected_return"] = np.nan
    risk = _risk(cands["instrument_id"].tolist())
    built, w = _solve(_strategy(), cands, risk)
    assert w.sum() == pytest.approx(1.0, abs=1e-7)
    assert (w >= -TOL).all() and (w <= 0.15 + TOL).all()
    assert not {"I00", "I01", "I02", "I03"} & set(built.names)
    joined = " | ".join(built.notes)
    assert "I00: soft target, never long in a LONG_ONLY book, left out" in joined
    assert "I01: side SHORT is not tradable in a LONG_ONLY book, left out" in joined
    assert "I03: no expected return, left out" in joined
    assert "I02" not in joined  # NONE and not held: simply not part of the book
    assert np.allclose(built.book["mu"], built.book["expected_return"] * 12.0)
    assert np.allclose(built.problem.cost_bps, 5.0 * 12.0)


def test_shorts_only_where_allowed() -> None:
    cands = _candidates(16, side="BOTH")
    cands.loc[0:3, "side_allowed"] = "LONG"
    cands.loc[0:3, "expected_return"] = -0.05   # would be shorted if allowed
    cands.loc[4:7, "side_allowed"] = "SHORT"
    cands.loc[4:7, "expected_return"] = 0.05    # would be bought if allowed
    cands.loc[8, ["soft_target_class", "side_allowed"]] = ["SOFT_TARGET", "BOTH"]
    cands.loc[8, "expected_return"] = 0.08
    risk = _risk(cands["instrument_id"].tolist())
    built, w = _solve(_strategy("LONG_SHORT"), cands, risk)
    assert (w[[f"I{i:02d}" for i in range(4)]] >= -TOL).all()
    assert (w[[f"I{i:02d}" for i in range(4, 8)]] <= TOL).all()
    assert w["I08"] <= TOL
    assert built.book.set_index("instrument_id").loc["I08", "upper"] == 0.0
    assert w.sum() == pytest.approx(0.0, abs=1e-7)
    assert (w < -1e-4).any() and (w > 1e-4).any()


def test_held_names_leaving_the_universe_are_sold() -> None:
    cands = _candidates(16)
    cands.loc[5, "side_allowed"] = "NONE"        # I05 dropped out of the universe
    ids = [*cands["instrument_id"], "GONE"]       # GONE: no longer a candidate at all
    risk = _risk(ids)
    w_prev = {"I05": 0.2, "GONE": 0.1, "I06": 0.1, "I07": 0.0}
    strategy = _strategy(turnover_limit=1.5)
    built, w = _solve(strategy, cands, risk, w_prev)
    assert abs(w["I05"]) < TOL and abs(w["GONE"]) < TOL
    assert "I05: held but no longer in the universe, sold" in built.notes
    assert "GONE: held but not among the candidates, sold" in built.notes
    res = optimize_strategy(built)
    rows = target_portfolio_rows(built, res, strategy_id="test", market_id="US_EQ",
                                 as_of_date=DATE, config_id="strategy@1-x").set_index(
        "instrument_id")
    for iid, prev in (("I05", 0.2), ("GONE", 0.1)):
        assert rows.loc[iid, "weight"] == 0.0 and rows.loc[iid, "prev_weight"] == prev
        assert rows.loc[iid, "trade"] == -prev and rows.loc[iid, "side_allowed"] == "NONE"
    assert rows.loc["GONE", "expected_return"] is None or np.isnan(
        rows.loc["GONE", "expected_return"])
    turnover = float(np.abs(w - built.book.set_index("instrument_id")["prev_weight"]).sum())
    assert turnover >= 0.3 - TOL
    assert rows["turnover"].iloc[0] == pytest.approx(turnover, abs=1e-5)
    assert rows["cost"].iloc[0] == pytest.approx(5.0 / 1e4 * turnover, abs=1e-8)


def test_held_name_missing_from_risk_model_is_sold_and_others_dropped() -> None:
    cands = _candidates(16)
    risk = _risk([i for i in cands["instrument_id"] if i not in ("I02", "I03")])
    built, w = _solve(_strategy(), cands, risk, {"I03": 0.1, "I04": 0.9})
    assert "I02" not in built.names and "I02: not in the risk model, left out" in built.notes
    assert "I03: held but not in the risk model, sold" in built.notes
    assert abs(w["I03"]) < TOL
    assert "no current holdings" not in " ".join(built.notes)


def test_turnover_limit_holds_and_is_skipped_from_cash() -> None:
    cands = _candidates(16)
    risk = _risk(cands["instrument_id"].tolist())
    strategy = _strategy(turnover_limit=0.3)
    built = build_problem(strategy, cands, risk, None)
    assert built.problem.turnover_limit is None
    assert "no current holdings: turnover limit not applied" in built.notes
    w_prev = dict.fromkeys([f"I{i:02d}" for i in range(10)], 0.1)
    built, w = _solve(strategy, cands, risk, w_prev)
    prev = built.book.set_index("instrument_id")["prev_weight"]
    assert float(np.abs(w - prev).sum()) <= 0.3 + TOL
    assert "turnover" in optimize_strategy(built).binding


def test_sector_caps_and_factor_limits_hold_at_the_optimum() -> None:
    cands = _candidates(20)
    cands.loc[cands["sector"] == "Tech", "expected_return"] += 0.03
    risk = _risk(cands["instrument_id"].tolist())
    strategy = _strategy(sector_max_net=0.3, country_max_net=0.7,
                         factor_limits={"MARKET": [0.9, 0.95], "SIZE": [-0.05, 0.05]})
    built, w = _solve(strategy, cands, risk)
    res = optimize_strategy(built)
    sectors = built.book.set_index("instrument_id")["sector"]
    by_sector = w.groupby(sectors).sum()
    assert (by_sector <= 0.3 + TOL).all()
    assert by_sector["Tech"] == pytest.approx(0.3, abs=1e-6)
    countries = built.book.set_index("instrument_id")["country"]
    assert w[countries == "US"].sum() <= 0.7 + TOL
    b, _, _ = risk.as_arrays(built.names)
    expo = dict(zip(FACTORS, b.T @ w.to_numpy(), strict=True))
    assert 0.9 - TOL <= expo["MARKET"] <= 0.95 + TOL
    assert -0.05 - TOL <= expo["SIZE"] <= 0.05 + TOL
    assert "group[sector:Tech].max" in res.binding
    assert any(c.startswith("factor[MARKET]") or c.startswith("factor[SIZE]")
               for c in res.binding), res.binding
    assert not any(c.startswith("factor[0") or c.startswith("factor[1") for c in res.binding)
    assert w.sum() == pytest.approx(1.0, abs=1e-7)


def test_long_short_net_zero_gross_and_market_neutral() -> None:
    cands = _candidates(20, side="BOTH")
    cands["expected_return"] *= 5
    risk = _risk(cands["instrument_id"].tolist())
    strategy = _strategy("LONG_SHORT", risk_aversion=0.05, gross_limit=1.2,
                         factor_limits={"MARKET": [-0.1, 0.1]})
    built, w = _solve(strategy, cands, risk)
    b, _, _ = risk.as_arrays(built.names)
    assert w.sum() == pytest.approx(0.0, abs=1e-7)
    assert np.abs(w).sum() <= 1.2 + TOL
    assert np.abs(w).sum() == pytest.approx(1.2, abs=1e-5)  # low risk aversion: gross binds
    assert abs(b[:, 0] @ w.to_numpy()) <= 0.1 + TOL
    assert "gross" in optimize_strategy(built).binding


def test_soft_target_budget_and_fragility_penalty() -> None:
    cands = _candidates(16)
    cands.loc[0:2, "soft_target_class"] = "WATCHLIST"
    cands.loc[0:2, "expected_return"] = 0.08
    risk = _risk(cands["instrument_id"].tolist())
    strategy = _strategy(soft_target_budget=0.1)
    built, w = _solve(strategy, cands, risk)
    assert w[["I00", "I01", "I02"]].abs().sum() <= 0.1 + TOL
    assert "budgeted" in optimize_strategy(built).binding
    body = strategy.model_dump()
    body["fragility_penalty"] = 0.02
    penalised = StrategyConfig.model_validate(body)
    book = build_problem(penalised, cands, risk).book.set_index("instrument_id")
    assert book.loc["I00", "mu"] == pytest.approx((0.08 - 0.02 * 0.5) * 12.0)
    assert book.loc["I05", "mu"] == pytest.approx(cands.loc[5, "expected_return"] * 12.0)
    cands["fragility_score"] = 0.0
    cands.loc[5, "fragility_score"] = 1.0
    book = build_problem(penalised, cands, risk).book.set_index("instrument_id")
    assert book.loc["I05", "mu"] == pytest.approx(
        (cands.loc[5, "expected_return"] - 0.02) * 12.0)
    assert book.loc["I00", "mu"] == pytest.approx(0.08 * 12.0)


def test_fragility_penalty_never_rewards_shorts() -> None:
    cands = _candidates(4, side="BOTH")
    cands["expected_return"] = [0.03, 0.005, -0.01, 0.0]
    cands["fragility_score"] = 1.0
    cands.loc[3, "side_allowed"] = "SHORT"
    body = _strategy("LONG_SHORT").model_dump()
    body["fragility_penalty"] = 0.01
    strategy = StrategyConfig.model_validate(body)
    book = build_problem(strategy, cands, _risk(cands["instrument_id"].tolist())).book
    # BOTH: lowered by at most the positive part; SHORT only: untouched.
    assert np.allclose(book["mu"] / 12.0, [0.02, 0.0, -0.01, 0.0])


def test_infeasible_strategy_names_the_conflict() -> None:
    cands = _candidates(16)
    risk = _risk(cands["instrument_id"].tolist())
    built = build_problem(_strategy(sector_max_net=0.05), cands, risk)
    with pytest.raises(InfeasibleProblemError) as info:
        optimize_strategy(built)
    text = str(info.value)
    assert "group[sector:Tech]" in text and "budget" in text
    built = build_problem(_strategy(factor_limits={"MARKET": [3.0, 4.0]}), cands, risk)
    with pytest.raises(InfeasibleProblemError, match=r"factor\[MARKET\]\.min"):
        optimize_strategy(built)


def test_target_rows_schema_and_portfolio_columns() -> None:
    cands = _candidates(16)
    risk = _risk(cands["instrument_id"].tolist())
    built = build_problem(_strategy(), cands, risk, {"I01": 0.5, "I02": 0.5})
    res = optimize_strategy(built)
    rows = target_portfolio_rows(built, res, strategy_id="test", market_id="US_EQ",
                                 as_of_date=DATE, config_id="strategy@1-x",
                                 model_ids={"risk": "risk@1-abc"})
    assert list(rows.columns) == TARGET_PORTFOLIOS.column_names
    validate_frame(TARGET_PORTFOLIOS, rows)
    w = pd.Series(res.weights, index=built.names)
    kept = set(w.index[(w.abs() > 1e-6)]) | {"I01", "I02"}
    assert set(rows["instrument_id"]) == kept
    assert (rows["portfolio_id"] == "test:US_EQ").all()
    assert rows["weight"].sum() == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(rows["trade"], rows["weight"] - rows["prev_weight"])
    er = rows["expected_return"].astype(float)
    assert rows["portfolio_expected_return"].iloc[0] == pytest.approx(
        float((er * rows["weight"]).sum()), abs=1e-9)
    assert rows["portfolio_volatility"].iloc[0] == pytest.approx(
        float(np.sqrt(w @ risk.covariance() @ w)), rel=1e-6)
    assert json.loads(rows["binding_constraints"].iloc[0]) == res.binding
    assert json.loads(rows["model_ids"].iloc[0]) == {"risk": "risk@1-abc"}
    assert (rows["horizon_days"] == 21).all() and (rows["status"] == "optimal").all()
    assert set(json.loads(rows["factor_exposures"].iloc[0])) == set(FACTORS)


def test_bad_candidates_raise_named_errors() -> None:
    cands = _candidates(6)
    risk = _risk(cands["instrument_id"].tolist())
    with pytest.raises(DataSchemaError, match="missing column.*side_allowed"):
        build_problem(_strategy(), cands.drop(columns="side_allowed"), risk)
    with pytest.raises(DataSchemaError, match="I00 appears twice"):
        build_problem(_strategy(), pd.concat([cands, cands.iloc[:1]]), risk)
    with pytest.raises(DataSchemaError, match=r"w_prev\[I01\]"):
        build_problem(_strategy(), cands, risk, {"I01": float("nan")})


@pytest.mark.parametrize("strategy_id", ["core_equity_long_only", "market_neutral_long_short"])
def test_shipped_strategies_solve_on_a_small_market(strategy_id: str) -> None:
    strategy: StrategyConfig = load_strategies()[strategy_id].config  # type: ignore[assignment]
    side = "LONG" if strategy.kind == "LONG_ONLY" else "BOTH"
    cands = _candidates(20, side=side)
    if strategy.kind == "LONG_SHORT":
        cands.loc[0, ["soft_target_class", "side_allowed"]] = ["SOFT_TARGET", "SHORT"]
    cands.loc[1, "soft_target_class"] = "WATCHLIST"
    risk = _risk(cands["instrument_id"].tolist())
    built, w = _solve(strategy, cands, risk)
    lim = strategy.portfolio
    assert w.sum() == pytest.approx(lim.budget, abs=1e-6)
    assert (w <= lim.max_weight + TOL).all() and (w >= lim.min_weight - TOL).all()
    if lim.gross_limit is not None:
        assert np.abs(w).sum() <= lim.gross_limit + TOL
    # A rebalance one day later under the turnover limit stays feasible.
    drifted = (w * (1 + np.linspace(-0.02, 0.02, len(w)))).to_dict()
    built, w2 = _solve(strategy, cands, risk, drifted)
    assert built.problem.turnover_limit == lim.turnover_limit
    assert w2.sum() == pytest.approx(lim.budget, abs=1e-6)
