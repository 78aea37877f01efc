"""A small market stored in a DuckDB warehouse with what the portfolio and paper steps read:
listings, risk models, universes, scores, soft-target, fragility and stability classes,
scenario paths, bars and corporate actions. Sizes are parameters, so the benchmark builds a
realistic one (120 names x 63 sessions) with the same code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import prometheus_dagster.engines.assessment.schemas  # noqa: F401  (registers the tables)
import prometheus_dagster.engines.execution.schemas  # noqa: F401
import prometheus_dagster.engines.fragility.schemas  # noqa: F401
import prometheus_dagster.engines.scenarios.schemas  # noqa: F401
import prometheus_dagster.engines.stability.schemas  # noqa: F401
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.engines.risk import FactorRiskModel, risk_model_frames
from prometheus_dagster.engines.strategy import StrategyConfig, load_strategies
from prometheus_dagster.resources.warehouse import Warehouse

M = "US_EQ"
SECTORS = ("Tech", "Energy", "Health", "Financials", "Industrials", "Utilities")
FACTORS = ["MARKET", "SIZE", "VALUE"]
CLASSES = ("NONE", "NONE", "NONE", "WATCHLIST", "SOFT_TARGET")


def strategies() -> dict[str, tuple[StrategyConfig, str]]:
    return {sid: (c.typed(StrategyConfig), c.config_id) for sid, c in load_strategies().items()
            if M in c.typed(StrategyConfig).markets}


def _reference(wh: Warehouse, n: int) -> tuple[list[str], list[str]]:
    ids = [f"I{i:03d}" for i in range(n)]
    issuers = [f"E{i:03d}" for i in range(n)]
    wh.replace_all("issuers", pd.DataFrame({
        "issuer_id": issuers, "issuer_type": "COMPANY", "name": issuers,
        "country": ["US" if i % 4 else "CA" for i in range(n)],
        "sector": [SECTORS[i % len(SECTORS)] for i in range(n)], "market_id": M}),
        where={"market_id": M})
    wh.replace_all("instruments", pd.DataFrame({
        "instrument_id": ids, "issuer_id": issuers, "market_id": M, "asset_class": "EQUITY",
        "symbol": ids, "currency": "USD", "multiplier": 1.0, "status": "ACTIVE"}),
        where={"market_id": M})
    return ids, issuers


def _risk(wh: Warehouse, ids: list[str], dates: list[pd.Timestamp], rng) -> None:
    b = np.column_stack([rng.normal(1.0, 0.25, len(ids)), rng.normal(0, 0.5, len(ids)),
                         rng.normal(0, 0.5, len(ids))])
    models = []
    for d in dates:
        a = rng.normal(size=(3, 3)) * 0.002
        f = np.diag([2e-4, 6e-5, 5e-5]) + a @ a.T
        models.append(FactorRiskModel(M, d, ids, list(FACTORS), b + rng.normal(0, 0.01, b.shape),
                                      f, rng.uniform(1e-4, 4e-4, len(ids))))
    factor_rows, specific_rows = risk_model_frames(models, "risk@test")
    wh.write_partitions("risk_factor_covariance", factor_rows, market_id=M, dates=dates)
    wh.write_partitions("risk_specific", specific_rows, market_id=M, dates=dates)


def _investment(wh: Warehouse, ids: list[str], issuers: list[str], dates: list[pd.Timestamp],
                rng) -> None:
    n = len(ids)
    universes, scores = [], []
    for sid, (strategy, _) in sorted(strategies().items()):
        for d in dates:
            er = rng.normal(0.002, 0.01, n)
            tier = np.where(np.arange(n) % 7 == 0, "EXCLUDED", "CORE")
            universes.append(pd.DataFrame({
                "market_id": M, "strategy_id": sid, "as_of_date": d, "instrument_id": ids,
                "issuer_id": issuers, "tier": tier, "universe_score": er, "rank": np.arange(n),
                "side_allowed": "BOTH" if strategy.kind == "LONG_SHORT" else "LONG",
                "reasons": [[] if t != "EXCLUDED" else ["screened"] for t in tier],
                "config_id": "universe@test"}))
            scores.append(pd.DataFrame({
                "market_id": M, "strategy_id": sid, "as_of_date": d, "instrument_id": ids,
                "issuer_id": issuers, "horizon_days": strategy.horizon_days,
                "expected_return": er, "raw_expected_return": er, "fragility_penalty": 0.0,
                "score": er, "confidence": 0.5, "signal_label": "NEUTRAL",
                "model_id": "assessment@test", "config_id": "assessment@test"}))
    wh.write_partitions("universes", pd.concat(universes), market_id=M, dates=dates)
    wh.write_partitions("instrument_scores", pd.concat(scores), market_id=M, dates=dates)
    issuer_days = pd.MultiIndex.from_product([issuers, dates], names=["entity_id", "as_of_date"]
                                             ).to_frame(index=False)
    k = len(issuer_days)
    # an issuer's class is mostly stable from one date to the next; a few change each date
    classes = np.repeat(rng.choice(CLASSES, len(issuers)), len(dates))  # issuer-major rows
    changed = rng.uniform(size=k) < 0.03
    classes[changed] = rng.choice(CLASSES, int(changed.sum()))
    wh.write_partitions("soft_target_classes", issuer_days.assign(
        market_id=M, entity_type="ISSUER", soft_target_class=classes, config_id="st@test"),
        market_id=M, dates=dates)
    alpha = pd.concat([issuer_days.assign(horizon_days=h) for h in (5, 21)], ignore_index=True)
    wh.write_partitions("fragility_alpha", alpha.assign(
        market_id=M, entity_type="ISSUER", soft_target_score=rng.uniform(size=2 * k),
        soft_target_class=np.tile(classes, 2), fragility_class=rng.choice(CLASSES, 2 * k),
        config_id="fa@test"), market_id=M, dates=dates)
    wh.write_partitions("stability_vectors", issuer_days.assign(
        market_id=M, entity_type="ISSUER", stability_score=rng.uniform(size=k),
        config_id="sv@test"), market_id=M, dates=dates)


def _scenarios(wh: Warehouse, ids: list[str], dates: list[pd.Timestamp], rng,
               paths: int = 20) -> None:
    sets, rows = [], []
    for d in dates:
        for family in ("historical", "stress"):
            set_id = f"{family}-{d.date()}"
            sets.append({"market_id": M, "as_of_date": d, "set_id": set_id, "name": family,
                         "family": family, "category": "TEST", "horizon": 5, "num_paths": paths,
                         "seed": 1, "generator_spec": {}, "base_start": d - pd.Timedelta(days=90),
                         "base_end": d, "regime_filter_applied": False, "n_instruments": len(ids),
                         "clipped_moves": 0, "config_id": "sc@test"})
            cum = rng.normal(0, 0.05, (paths, len(ids)))
            rows.append(pd.DataFrame({
                "market_id": M, "as_of_date": d, "set_id": set_id,
                "path_id": np.repeat(np.arange(paths), len(ids)),
                "instrument_id": np.tile(ids, paths), "cumulative_return": cum.ravel(),
                "step_returns": [[float(c)] for c in cum.ravel()], "config_id": "sc@test"}))
    wh.write_partitions("scenario_sets", pd.DataFrame(sets), market_id=M, dates=dates)
    wh.write_partitions("scenario_paths", pd.concat(rows), market_id=M, dates=dates)


def _bars(wh: Warehouse, ids: list[str], dates: list[pd.Timestamp], rng) -> None:
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, (len(dates), len(ids))), axis=0))
    opens = close * np.exp(rng.normal(0, 0.005, close.shape))
    frame = pd.DataFrame({
        "market_id": M, "date": np.repeat(dates, len(ids)),
        "instrument_id": np.tile(ids, len(dates)),
        "open": opens.ravel(), "high": np.maximum(opens, close).ravel() * 1.01,
        "low": np.minimum(opens, close).ravel() * 0.99, "close": close.ravel(),
        "adjusted_close": close.ravel(), "volume": rng.uniform(2e5, 2e6, close.size),
        "currency": "USD"})
    wh.write_partitions("prices_daily", frame, market_id=M, dates=dates)
    actions = pd.DataFrame({
        "market_id": M, "instrument_id": [ids[1], ids[2]], "date": [dates[3], dates[5]],
        "action_type": ["DIVIDEND", "SPLIT"], "value": [0.5, 2.0]})
    wh.write_partitions("corporate_actions", actions, market_id=M, dates=dates)


def build_market(path: Path, names: int = 40, sessions: int = 10, seed: int = 11,
                 start: str = "2024-03-01") -> tuple[Warehouse, list[pd.Timestamp]]:
    """A warehouse at ``path`` with ``names`` instruments over ``sessions`` sessions from
    ``start``: every input of target portfolios, risk reports and paper execution (the
    targets themselves are left to the steps)."""
    rng = np.random.default_rng(seed)
    wh = Warehouse.from_url(f"duckdb:///{path}")
    dates = list(trading_calendar(M).sessions(start, pd.Timestamp(start)
                                                + pd.Timedelta(days=3 * sessions)))[:sessions]
    ids, issuers = _reference(wh, names)
    _risk(wh, ids, [d for i, d in enumerate(dates) if i != 4], rng)  # one date without a model
    _investment(wh, ids, issuers, dates, rng)
    _scenarios(wh, ids, dates, rng)
    _bars(wh, ids, dates, rng)
    return wh, dates
