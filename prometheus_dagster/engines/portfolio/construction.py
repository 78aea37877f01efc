"""From a strategy, its universe and a risk model to an ``OptimizationProblem``, and from the
optimum to ``target_portfolios`` rows (docs/engines/portfolio.md).

Per name (rows follow ``instrument_id`` order):

* bounds from ``side_allowed``: LONG [0, max_weight], SHORT [min_weight, 0], BOTH
  [min_weight, max_weight]; a SOFT_TARGET name is never long (upper bound 0). A name whose
  bounds are [0, 0] and that is not held is left out.
* a held name (non-zero ``w_prev``) that is no longer tradable (absent from the candidates or
  ``side_allowed`` NONE) enters with bounds [0, 0], so the optimiser sells it and its
  turnover and cost count.
* mu = (expected_return - fragility penalty) * strategy.mu_scale. The penalty
  ``fragility_penalty * f`` (f = ``fragility_score`` when the candidates carry one, else
  NONE 0 / WATCHLIST 0.5 / SOFT_TARGET 1) applies to long positions only: fully for
  long-only names; for names that may go either way it lowers mu by at most its positive
  part, so it can stop a long but never pays for a short (the linear stand-in for
  ``penalty * max(w, 0)``); short-only names are not penalised.
* costs: the optimiser sees ``cost_bps * mu_scale`` because mu is scaled the same way, so a
  trade's cost is compared with the return it earns over one horizon.

Constraints: the strategy's budget, gross limit, a group per sector (and per country, names
with no country in none) when the strategy sets limits, factor limits mapped to the risk
model's factor columns by factor id, the soft-target budget over WATCHLIST and SOFT_TARGET
names, and the turnover limit when there are current holdings (building from cash is not a
rebalance). Everything left out or forced is recorded in ``ConstructedProblem.notes``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.portfolio.optimizer import optimize
from prometheus_dagster.engines.portfolio.problem import (
    InfeasibleProblemError,
    OptimizationProblem,
    OptimizationResult,
    RiskModel,
)
from prometheus_dagster.engines.portfolio.schemas import TARGET_PORTFOLIOS
from prometheus_dagster.engines.risk.model import FactorRiskModel
from prometheus_dagster.engines.strategy.config import StrategyConfig
from prometheus_dagster.engines.strategy.loader import portfolio_id

CONSTRUCTION_COLUMNS: tuple[str, ...] = ("instrument_id", "expected_return", "sector",
                                         "country", "side_allowed", "soft_target_class")
FRAGILITY_BY_CLASS: dict[str, float] = {"NONE": 0.0, "WATCHLIST": 0.5, "SOFT_TARGET": 1.0}
BUDGETED_CLASSES: tuple[str, ...] = ("WATCHLIST", "SOFT_TARGET")
UNKNOWN_SECTOR = "UNKNOWN"
ZERO_WEIGHT = 1e-6
_FACTOR_REF = re.compile(r"factor\[(\d+)\]")


@dataclass(frozen=True)
class ConstructedProblem:
    """The problem for one strategy, market and date.

    ``names``: instrument ids in problem order. ``book``: one row per name in that order
    (instrument_id, expected_return, mu, sector, country, side_allowed, soft_target_class,
    prev_weight, lower, upper). ``factor_ids``: the risk model's factor ids by column.
    ``notes``: names left out or forced out and limits not applied, with the reason."""

    problem: OptimizationProblem
    names: list[str]
    book: pd.DataFrame
    factor_ids: list[str]
    notes: list[str] = field(default_factory=list)
    cost_bps: float = 0.0
    horizon_days: int = 21

    def readable(self, constraint: str) -> str:
        """``factor[0].max`` -> ``factor[MARKET].max`` (other names unchanged)."""
        return _FACTOR_REF.sub(lambda m: f"factor[{self.factor_ids[int(m.group(1))]}]",
                               constraint)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _text(v: Any) -> str | None:
    return None if _missing(v) else str(v)


def _check_candidates(candidates: pd.DataFrame) -> None:
    missing = [c for c in CONSTRUCTION_COLUMNS if c not in candidates.columns]
    if missing:
        raise DataSchemaError(f"portfolio candidates: missing column(s) {', '.join(missing)}")
    dup = candidates["instrument_id"].duplicated()
    if dup.any():
        raise DataSchemaError(f"portfolio candidates: instrument "
                              f"{candidates.loc[dup, 'instrument_id'].iloc[0]} appears twice")


def _holdings(w_prev: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for iid, w in (w_prev or {}).items():
        x = float(w)
        if not math.isfinite(x):
            raise DataSchemaError(f"w_prev[{iid}] = {w!r} is not a finite weight")
        if x != 0.0:
            out[str(iid)] = x
    return out


def _side_bounds(side: str, lo: float, hi: float) -> tuple[float, float]:
    if side == "LONG":
        return 0.0, hi
    if side == "SHORT":
        return lo, 0.0
    if side == "BOTH":
        return lo, hi
    return 0.0, 0.0


def _fragility(row: Mapping[str, Any]) -> float:
    score: Any = row.get("fragility_score")  # _missing covers None
    if not _missing(score):
        return float(score)
    return FRAGILITY_BY_CLASS.get(_text(row.get("soft_target_class")) or "NONE", 0.0)


class EmptyBookError(DataSchemaError):
    """Nothing to optimise on a date: no candidate is tradable and nothing is held (the
    book stays in cash). ``notes`` say why each candidate was left out."""

    def __init__(self, message: str, notes: list[str]):
        super().__init__(message)
        self.notes = notes


def _penalised(er: float, lower: float, upper: float, penalty: float) -> float:
    if penalty <= 0 or upper <= 0:
        return er
    if lower >= 0:
        return er - penalty
    return er - min(penalty, max(er, 0.0))


def _book_rows(strategy: StrategyConfig, candidates: pd.DataFrame, held: dict[str, float],
               notes: list[str]) -> list[dict[str, Any]]:
    lim = strategy.portfolio
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rec in candidates.to_dict("records"):
        iid = str(rec["instrument_id"])
        seen.add(iid)
        side = _text(rec["side_allowed"]) or "NONE"
        soft = _text(rec["soft_target_class"])
        prev = held.get(iid, 0.0)
        lower, upper = _side_bounds(side, lim.min_weight, lim.max_weight)
        why = "no longer in the universe" if side == "NONE" else (
            f"side {side} is not tradable in a {strategy.kind} book")
        if soft == "SOFT_TARGET" and upper > 0:
            lower, upper = min(lower, 0.0), 0.0
            why = f"soft target, never long in a {strategy.kind} book"
        if lower == upper == 0.0:
            if prev == 0.0:
                if side != "NONE":
                    notes.append(f"{iid}: {why}, left out")
                continue
            notes.append(f"{iid}: held but {why}, sold")
        er = None if _missing(rec["expected_return"]) else float(rec["expected_return"])
        if er is None:
            if prev == 0.0:
                notes.append(f"{iid}: no expected return, left out")
                continue
            if lower != upper:
                notes.append(f"{iid}: held without an expected return, mu 0")
        pen = strategy.fragility_penalty * _fragility(rec)
        rows.append({"instrument_id": iid, "expected_return": er,
                     "mu_h": _penalised(er or 0.0, lower, upper, pen),
                     "sector": _text(rec["sector"]), "country": _text(rec["country"]),
                     "side_allowed": side, "soft_target_class": soft, "prev_weight": prev,
                     "lower": lower, "upper": upper})
    for iid in sorted(set(held) - seen):
        notes.append(f"{iid}: held but not among the candidates, sold")
        rows.append({"instrument_id": iid, "expected_return": None, "mu_h": 0.0,
                     "sector": None, "country": None, "side_allowed": "NONE",
                     "soft_target_class": None, "prev_weight": held[iid],
                     "lower": 0.0, "upper": 0.0})
    return sorted(rows, key=lambda r: r["instrument_id"])


def _risk_arrays(rows: list[dict[str, Any]], risk: FactorRiskModel, notes: list[str]
                 ) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Keep the names the risk model covers; a held name it lacks is sold with zero
    exposures and the median specific variance (irrelevant at weight 0)."""
    pos = {iid: p for p, iid in enumerate(risk.instrument_ids)}
    median_d = float(np.median(risk.specific_var)) if len(risk.specific_var) else 0.04
    kept, b_rows, d = [], [], []
    for r in rows:
        p = pos.get(r["instrument_id"])
        if p is None:
            if r["prev_weight"] == 0.0:
                notes.append(f"{r['instrument_id']}: not in the risk model, left out")
                continue
            if r["upper"] != 0.0 or r["lower"] != 0.0:
                notes.append(f"{r['instrument_id']}: held but not in the risk model, sold")
            r = {**r, "lower": 0.0, "upper": 0.0}
            b_rows.append(np.zeros(len(risk.factor_ids)))
            d.append(median_d)
        else:
            b_rows.append(risk.exposures[p])
            d.append(float(risk.specific_var[p]))
        kept.append(r)
    b = np.array(b_rows, dtype=float).reshape(len(kept), len(risk.factor_ids))
    return kept, b, np.array(d, dtype=float)


def _groups(book: pd.DataFrame, strategy: StrategyConfig, notes: list[str]
            ) -> dict[str, tuple[np.ndarray, float, float]]:
    lim = strategy.portfolio
    out: dict[str, tuple[np.ndarray, float, float]] = {}
    tradable = (book["lower"] != 0) | (book["upper"] != 0)
    specs = (("sector", book["sector"].fillna(UNKNOWN_SECTOR), lim.sector_min_net,
              lim.sector_max_net),
             ("country", book["country"], lim.country_min_net, lim.country_max_net))
    for kind, labels, lo, hi in specs:
        if lo is None and hi is None:
            continue
        for label in sorted(labels.dropna().unique()):
            mask = (labels == label).to_numpy()
            g_lo = -np.inf if lo is None else lo
            if g_lo > 0 and not (mask & tradable.to_numpy()).any():
                notes.append(f"{kind} {label}: no tradable name, min_net not applied")
                g_lo = -np.inf
            out[f"{kind}:{label}"] = (mask.astype(float), g_lo, np.inf if hi is None else hi)
    return out


def _factor_limits(strategy: StrategyConfig, risk: FactorRiskModel, notes: list[str]
                   ) -> dict[int, tuple[float, float]]:
    out: dict[int, tuple[float, float]] = {}
    for factor, (lo, hi) in strategy.portfolio.factor_limits.items():
        if factor not in risk.factor_ids:
            notes.append(f"factor {factor}: not in the risk model, limit not applied")
            continue
        out[risk.factor_ids.index(factor)] = (lo, hi)
    return out


def build_problem(strategy: StrategyConfig, candidates: pd.DataFrame, risk: FactorRiskModel,
                  w_prev: Mapping[str, float] | None = None) -> ConstructedProblem:
    """The optimisation problem of ``strategy`` on one date (see the module docstring).

    ``candidates``: one row per universe name with ``CONSTRUCTION_COLUMNS`` (and optionally
    ``fragility_score`` in [0, 1]); rows with ``side_allowed`` NONE are dropped unless held.
    ``w_prev``: current weights by instrument id (None: all cash). Raises DataSchemaError for
    missing columns, duplicate names or non-finite current weights."""
    _check_candidates(candidates)
    held = _holdings(w_prev)
    notes: list[str] = []
    rows, b, d = _risk_arrays(_book_rows(strategy, candidates, held, notes), risk, notes)
    book = pd.DataFrame(rows, columns=["instrument_id", "expected_return", "mu_h", "sector",
                                       "country", "side_allowed", "soft_target_class",
                                       "prev_weight", "lower", "upper"])
    lim = strategy.portfolio
    scale = strategy.mu_scale
    book["mu"] = book["mu_h"].astype(float) * scale
    book = book.drop(columns="mu_h")
    names = book["instrument_id"].tolist()
    if not names:
        raise EmptyBookError(f"portfolio {strategy.strategy_id}: no tradable candidate and "
                             "no holdings (" + "; ".join(notes[:5]) + ")", notes)
    turnover = lim.turnover_limit
    if turnover is not None and not held:
        notes.append("no current holdings: turnover limit not applied")
        turnover = None
    budgeted = None
    if lim.soft_target_budget is not None:
        mask = book["soft_target_class"].isin(BUDGETED_CLASSES).to_numpy(dtype=float)
        budgeted = (mask, lim.soft_target_budget)
    problem = OptimizationProblem(
        mu=book["mu"].to_numpy(dtype=float),
        risk=RiskModel(exposures=b, factor_cov=risk.factor_cov, specific_var=d),
        risk_aversion=lim.risk_aversion, w_prev=book["prev_weight"].to_numpy(dtype=float),
        cost_bps=lim.cost_bps * scale, budget=lim.budget,
        lower=book["lower"].to_numpy(dtype=float), upper=book["upper"].to_numpy(dtype=float),
        gross_limit=lim.gross_limit, groups=_groups(book, strategy, notes),
        factor_limits=_factor_limits(strategy, risk, notes), turnover_limit=turnover,
        budgeted=budgeted, names=tuple(names))
    return ConstructedProblem(problem, names, book, list(risk.factor_ids), notes,
                              cost_bps=lim.cost_bps, horizon_days=strategy.horizon_days)


def optimize_strategy(built: ConstructedProblem, *, solver: str = "CLARABEL",
                      warm_start: OptimizationResult | np.ndarray | None = None
                      ) -> OptimizationResult:
    """``optimize`` on the built problem, with factor columns named by factor id in the
    binding constraints and in an ``InfeasibleProblemError``'s conflicts."""
    try:
        result = optimize(built.problem, solver=solver, warm_start=warm_start)
    except InfeasibleProblemError as exc:
        raise InfeasibleProblemError([built.readable(c) for c in exc.conflicts]) from exc
    return replace(result, binding=[built.readable(c) for c in result.binding])


def target_portfolio_rows(built: ConstructedProblem, result: OptimizationResult, *,
                          strategy_id: str, market_id: str, as_of_date: pd.Timestamp,
                          config_id: str, model_ids: Mapping[str, str] | None = None,
                          validate: bool = True) -> pd.DataFrame:
    """``target_portfolios`` rows: names with |weight| > 1e-6 or a current weight (a sold-out
    name shows weight 0); weights within 1e-6 of 0 are written as 0. ``validate=False``
    leaves the schema check to the caller (one check of many dates' rows together)."""
    w = np.asarray(result.weights, dtype=float)
    if w.shape != (len(built.names),):
        raise ValueError(f"result has {w.size} weights, the problem {len(built.names)} names")
    w = np.where(np.abs(w) <= ZERO_WEIGHT, 0.0, w)
    book = built.book
    prev = book["prev_weight"].to_numpy(dtype=float)
    er = book["expected_return"].astype(float).fillna(0.0).to_numpy()
    turnover = float(np.abs(w - prev).sum())
    keep = (w != 0.0) | (prev != 0.0)
    rows = book.loc[keep, ["instrument_id", "expected_return", "mu", "sector", "country",
                           "side_allowed", "soft_target_class"]].reset_index(drop=True)
    rows.insert(1, "weight", w[keep])
    rows.insert(2, "prev_weight", prev[keep])
    rows.insert(3, "trade", w[keep] - prev[keep])
    portfolio = {
        "portfolio_id": portfolio_id(strategy_id, market_id), "strategy_id": strategy_id,
        "market_id": market_id, "as_of_date": pd.Timestamp(as_of_date).normalize(),
        "horizon_days": built.horizon_days, "portfolio_expected_return": float(er @ w),
        "portfolio_volatility": float(result.volatility), "objective": float(result.objective),
        "turnover": turnover, "cost": built.cost_bps / 1e4 * turnover,
        "status": result.status, "solver": result.solver,
        "binding_constraints": json.dumps([built.readable(c) for c in result.binding]),
        "factor_exposures": json.dumps(dict(zip(
            built.factor_ids, np.asarray(result.factor_exposures, dtype=float).tolist(),
            strict=True)), sort_keys=True),
        "notes": json.dumps(built.notes),
        "model_ids": None if model_ids is None else json.dumps(dict(model_ids), sort_keys=True),
        "config_id": config_id,
    }
    for column, value in portfolio.items():
        rows[column] = [value] * len(rows) if isinstance(value, str | type(None)) else value
    frame = rows.reindex(columns=TARGET_PORTFOLIOS.column_names)
    return validate_frame(TARGET_PORTFOLIOS, frame) if validate else frame
