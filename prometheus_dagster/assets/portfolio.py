"""Portfolio assets per market: each strategy's target portfolio of every date (mean-variance
on the point-in-time factor risk model, from the strategy's universe and assessment scores,
rebalancing from the previous date's target) and its risk report (exposures, VaR / ES,
scenario P&L per scenario set, binding constraints)."""

import json

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

from prometheus_dagster.assets.common import run_dates, write_decisions
from prometheus_dagster.assets.fragility import read_paths_by_date
from prometheus_dagster.assets.risk import load_risk_models
from prometheus_dagster.assets.universe import register_strategies
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame, validate_frame
from prometheus_dagster.engines.portfolio import InfeasibleProblemError
from prometheus_dagster.engines.portfolio.construction import (
    build_problem,
    optimize_strategy,
    target_portfolio_rows,
)
from prometheus_dagster.engines.portfolio.report import portfolio_risk_report, risk_report_rows
from prometheus_dagster.engines.strategy import StrategyConfig, portfolio_id
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse

GROUP = "portfolio"
TARGET_INPUTS = ("universes", "instrument_scores", "risk_factor_covariance", "risk_specific",
                 "soft_target_classes", "issuers")
REPORT_INPUTS = ("target_portfolios", "risk_factor_covariance", "risk_specific",
                 "scenario_paths", "scenario_sets", "soft_target_classes", "fragility_alpha",
                 "stability_vectors", "instruments", "issuers")
HOLDINGS_LOOKBACK_DAYS = 10  # how far back a run's first date looks for the current target


def current_holdings(wh: Warehouse, market_id: str, strategy_id: str,
                     before: pd.Timestamp) -> dict[str, float]:
    """The newest stored target of the portfolio dated before ``before`` (empty: cash)."""
    rows = wh.read_partitions("target_portfolios", market_id=market_id,
                              start=before - pd.Timedelta(days=HOLDINGS_LOOKBACK_DAYS),
                              end=before - pd.Timedelta(days=1),
                              columns=["portfolio_id", "instrument_id", "as_of_date", "weight"])
    rows = rows[rows["portfolio_id"] == portfolio_id(strategy_id, market_id)]
    if rows.empty:
        return {}
    last = rows[rows["as_of_date"] == rows["as_of_date"].max()]
    return {r.instrument_id: float(r.weight) for r in last.itertuples() if r.weight != 0.0}


def construction_candidates(universe: pd.DataFrame, scores: pd.DataFrame, issuers: pd.DataFrame,
                            soft: pd.DataFrame) -> pd.DataFrame:
    """The selected names of one strategy and date with what ``build_problem`` reads."""
    chosen = universe[universe["tier"] != "EXCLUDED"][["instrument_id", "issuer_id",
                                                       "side_allowed"]]
    out = chosen.merge(scores[["instrument_id", "expected_return"]], on="instrument_id",
                       how="left")
    out = out.merge(issuers[["issuer_id", "sector", "country"]], on="issuer_id", how="left")
    classes = soft[soft["entity_type"] == "ISSUER"].set_index("entity_id")["soft_target_class"]
    out["soft_target_class"] = out["issuer_id"].map(classes)
    return out.drop(columns="issuer_id")


def compute_targets(log, wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                    strategies: dict[str, tuple[StrategyConfig, str]], *,
                    universes: pd.DataFrame | None = None, scores: pd.DataFrame | None = None,
                    risk: dict | None = None, holdings: dict[str, dict[str, float]] | None = None
                    ) -> tuple[pd.DataFrame, list[dict]]:
    """(``target_portfolios`` rows, one decision record per strategy and date). Dates are
    walked in order; each rebalances from the previous date's target (the stored one for
    the run's first date, unless ``holdings`` gives strategy -> current weights). A date
    without a risk model or universe keeps the holdings; an infeasible problem keeps them
    too and is reported with the conflicting constraints. Universes, scores and risk models
    default to the stored ones; ``wh`` may be a backtest's time machine."""
    if risk is None:
        risk = load_risk_models(wh, market_id, dates)
    if universes is None:
        universes = wh.read_partitions("universes", market_id=market_id, dates=dates)
    if scores is None:
        scores = wh.read_partitions("instrument_scores", market_id=market_id, dates=dates,
                                    columns=["strategy_id", "instrument_id", "as_of_date",
                                             "horizon_days", "expected_return", "model_id"])
    issuers = wh.read("issuers", where={"market_id": market_id})
    soft = wh.read_partitions("soft_target_classes", market_id=market_id, dates=dates,
                              columns=["entity_type", "entity_id", "as_of_date",
                                       "soft_target_class"])
    frames, decisions = [], []
    for sid, (strategy, config_id) in sorted(strategies.items()):
        held = (dict(holdings[sid]) if holdings is not None and sid in holdings
                else current_holdings(wh, market_id, sid, dates[0]))
        mine = scores[(scores["strategy_id"] == sid)
                      & (scores["horizon_days"] == strategy.horizon_days)]
        for d in dates:
            uni = universes[(universes["strategy_id"] == sid) & (universes["as_of_date"] == d)]
            sc = mine[mine["as_of_date"] == d]
            decision = {"context_id": f"{portfolio_id(sid, market_id)}:{d.date()}",
                        "as_of_date": d, "config_id": config_id,
                        "model_id": ", ".join(sorted(set(sc["model_id"].dropna()))) or None,
                        "input_refs": {"tables": list(TARGET_INPUTS)}}
            if d not in risk or uni.empty:
                why = "no risk model" if d not in risk else "no universe"
                log.warning(f"{sid} {market_id} {d.date()}: {why}: holdings kept")
                decisions.append({**decision, "proposed_action": {"status": "SKIPPED",
                                                                  "reason": why}})
                continue
            candidates = construction_candidates(uni, sc, issuers, soft[soft["as_of_date"] == d])
            built = build_problem(strategy, candidates, risk[d], held)
            warm = np.array([held.get(n, 0.0) for n in built.names])
            try:
                result = optimize_strategy(built, warm_start=warm)
            except InfeasibleProblemError as exc:
                log.error(f"{sid} {market_id} {d.date()}: infeasible, holdings kept: "
                          + "; ".join(exc.conflicts))
                decisions.append({**decision, "proposed_action": {
                    "status": "INFEASIBLE", "conflicts": exc.conflicts, "notes": built.notes}})
                continue
            rows = target_portfolio_rows(
                built, result, strategy_id=sid, market_id=market_id, as_of_date=d,
                config_id=config_id,
                model_ids={"assessment": decision["model_id"]} if decision["model_id"]
                else None, validate=False)
            frames.append(rows)
            held = {r.instrument_id: float(r.weight) for r in rows.itertuples()
                    if r.weight != 0.0}
            decisions.append({**decision, "proposed_action": {
                "status": result.status, "weights": {k: round(v, 6) for k, v in held.items()},
                "expected_return": float(rows["portfolio_expected_return"].iloc[0])
                if len(rows) else 0.0,
                "volatility": float(result.volatility), "turnover": float(result.turnover),
                "binding": result.binding, "notes": built.notes}})
    out = validate_frame("target_portfolios", pd.concat(frames, ignore_index=True)) if frames \
        else empty_frame("target_portfolios")
    return out, decisions


def target_portfolios_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "target_portfolios"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in TARGET_INPUTS],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "target_portfolios"},
        tags={"prometheus/tier": "1"},
        description=f"Target weights of each strategy's {market_id} portfolio: maximise "
                    "w'mu - lambda w'Sigma w - costs under budget, bounds, gross, sector, "
                    "factor, turnover and soft-target limits (factor-form QP, Clarabel), "
                    "rebalancing from the previous date's target.",
    )
    def _targets(context: AssetExecutionContext, warehouse: WarehouseResource,
                 mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return empty_frame("target_portfolios")
        out, decisions = compute_targets(context.log, wh, market_id, dates, strategies)
        statuses = pd.Series([d["proposed_action"]["status"] for d in decisions])
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=",".join(c for _, c in strategies.values())) as run:
            for pid, g in out.groupby("portfolio_id"):
                per_day = g.groupby("as_of_date")
                sid = pid.split(":")[0]
                run.log_metric_series(f"{sid}_volatility", per_day["portfolio_volatility"].first())
                run.log_metric_series(f"{sid}_turnover", per_day["turnover"].first())
                run.log_metric_series(f"{sid}_names", per_day["weight"].apply(
                    lambda w: float((w != 0).sum())))
            run.log_metrics({"rows": len(out), **{f"decisions_{k.lower()}": int(v)
                                                  for k, v in statuses.value_counts().items()}})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, "portfolio", market_id, dates, pd.DataFrame(decisions),
                        mlflow_run_id=run_id)
        infeasible = [d for d in decisions if d["proposed_action"]["status"] == "INFEASIBLE"]
        context.add_output_metadata({
            **lineage, "rows": len(out), "infeasible": len(infeasible),
            "first_infeasible": "; ".join(infeasible[0]["proposed_action"]["conflicts"])
            if infeasible else "none",
            **{f"{pid} names on {pd.Timestamp(g['as_of_date'].max()).date()}":
               int((g.loc[g["as_of_date"] == g["as_of_date"].max(), "weight"] != 0).sum())
               for pid, g in out.groupby("portfolio_id")}})
        return out

    return _targets


def report_attributes(wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                      instruments: pd.DataFrame, issuers: pd.DataFrame
                      ) -> dict[pd.Timestamp, pd.DataFrame]:
    """Date -> sector, country, currency, soft-target and fragility class and stability score
    of every instrument of the market on that date (three reads for all dates)."""
    soft = wh.read_partitions("soft_target_classes", market_id=market_id, dates=dates,
                              columns=["entity_type", "entity_id", "as_of_date",
                                       "soft_target_class"])
    frag = wh.read_partitions("fragility_alpha", market_id=market_id, dates=dates,
                              columns=["entity_type", "entity_id", "as_of_date", "horizon_days",
                                       "fragility_class"])
    stab = wh.read_partitions("stability_vectors", market_id=market_id, dates=dates,
                              columns=["entity_type", "entity_id", "as_of_date",
                                       "stability_score"])
    base = instruments[["instrument_id", "issuer_id", "currency"]].merge(
        issuers[["issuer_id", "sector", "country"]], on="issuer_id", how="left")

    def by_issuer(frame: pd.DataFrame, column: str, d: pd.Timestamp) -> pd.Series:
        frame = frame[(frame["entity_type"] == "ISSUER")
                      & (pd.to_datetime(frame["as_of_date"]) == d)]
        if "horizon_days" in frame and len(frame):
            frame = frame[frame["horizon_days"] == frame["horizon_days"].min()]
        return frame.set_index("entity_id")[column]

    out = {}
    for d in dates:
        day = base.copy()
        day["soft_target_class"] = day["issuer_id"].map(by_issuer(soft, "soft_target_class", d))
        day["fragility_class"] = day["issuer_id"].map(by_issuer(frag, "fragility_class", d))
        day["stability_score"] = day["issuer_id"].map(by_issuer(stab, "stability_score", d))
        out[d] = day.drop(columns="issuer_id")
    return out


def compute_risk_reports(wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                         strategies: dict[str, tuple[StrategyConfig, str]]) -> pd.DataFrame:
    targets = wh.read_partitions("target_portfolios", market_id=market_id, dates=dates)
    risk = load_risk_models(wh, market_id, dates)
    instruments = wh.read("instruments", where={"market_id": market_id})
    issuers = wh.read("issuers", where={"market_id": market_id})
    reports = []
    with_targets = sorted({pd.Timestamp(d) for d in targets["as_of_date"]})
    attributes_on = report_attributes(wh, market_id, with_targets, instruments, issuers) \
        if with_targets else {}
    held_on = {pd.Timestamp(d): set(day.loc[day["weight"] != 0, "instrument_id"])
               for d, day in targets.groupby("as_of_date", sort=True)}
    paths_on = dict(read_paths_by_date(wh, market_id, sorted(held_on), instruments=held_on))
    for d, day in targets.groupby("as_of_date", sort=True):
        d = pd.Timestamp(d)
        if d not in risk:
            continue
        attributes = attributes_on[d]
        paths = paths_on[d]
        for _, rows in day.groupby("portfolio_id", sort=True):
            sid = str(rows["strategy_id"].iloc[0])
            if sid not in strategies:
                continue
            strategy, config_id = strategies[sid]
            binding = rows["binding_constraints"].iloc[0]
            reports.append(portfolio_risk_report(
                rows.set_index("instrument_id")["weight"], risk[d], attributes, paths,
                strategy.risk_report.var_confidence, strategy.risk_report.horizon_days,
                strategy_id=sid, market_id=market_id, as_of_date=d, config_id=config_id,
                binding_constraints=json.loads(binding) if isinstance(binding, str)
                else list(binding or [])))
    return risk_report_rows(reports) if reports else empty_frame("portfolio_risk_reports")


def risk_reports_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "portfolio_risk_reports"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in REPORT_INPUTS],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "portfolio_risk_reports"},
        tags={"prometheus/tier": "1"},
        description=f"Risk report of each {market_id} target portfolio: exposures by factor, "
                    "sector, country, currency and fragility bucket; parametric and scenario "
                    "VaR / ES; P&L per scenario set; stability; binding constraints.",
    )
    def _reports(context: AssetExecutionContext, warehouse: WarehouseResource,
                 mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        strategies = register_strategies(wh, market_id)
        out = compute_risk_reports(wh, market_id, dates, strategies)
        with mlflow.asset_run(context, GROUP, market_id=market_id) as run:
            for pid, g in out.groupby("portfolio_id"):
                sid = pid.split(":")[0]
                series = g.set_index("as_of_date")
                run.log_metric_series(f"{sid}_volatility", series["volatility"])
                run.log_metric_series(f"{sid}_scenario_es_95", series["scenario_es"].map(
                    lambda v: (json.loads(v) if isinstance(v, str) else v or {}).get(
                        "95%", np.nan)))
            run.log_metrics({"reports": len(out)})
            lineage = run.metadata()
        context.add_output_metadata({**lineage, "rows": len(out)})
        return out

    return _reports


def portfolio_assets(markets: list[str]) -> list[AssetsDefinition]:
    return [a for m in markets for a in (target_portfolios_asset(m), risk_reports_asset(m))]
