"""Scenario assets per market: the scenario sets generated as of each date (spec, seed,
calibration and path statistics) and their paths, regenerated from the stored specs so that
every stored path is reproducible from its set row."""

import json

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, BackfillPolicy, asset

import prometheus_dagster.engines.profiles  # noqa: F401  (declares the profiles table)
import prometheus_dagster.engines.regime  # noqa: F401  (declares the regimes table)
from prometheus_dagster.assets.common import (
    lookback_start,
    register_config,
    require_quality_passed,
    run_dates,
    write_decisions,
)
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.partitions import market_partitions_def
from prometheus_dagster.core.schemas import empty_frame, validate_frame
from prometheus_dagster.engines.scenarios import (
    ScenarioDay,
    ScenarioError,
    ScenarioInputs,
    ScenariosConfig,
    generate_scenario_set,
    regenerate_paths,
    scenario_path_frame,
    scenario_set_frame,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse, between

GROUP = "scenarios"
ENGINE = "scenarios"


def scenarios_config() -> LoadedConfig:
    return load_engine_config("scenarios")


def scenario_lookback(cfg: ScenariosConfig) -> int:
    return max(s.base_window_sessions + s.horizon for s in cfg.sets) + 5


class ScenarioData:
    """The inputs of a run's dates, read once; ``for_date`` gives the view of one date (the
    generators themselves only use sessions on or before it)."""

    def __init__(self, wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                 cfg: ScenariosConfig):
        start, end = lookback_start(dates[0], scenario_lookback(cfg)), dates[-1]
        rets = wh.read_partitions("returns_daily", market_id=market_id, start=start, end=end,
                                  columns=["instrument_id", "date", "ret_1d"])
        self.returns = rets.pivot_table(index="date", columns="instrument_id",
                                        values="ret_1d", aggfunc="first").sort_index()
        self.returns.index = pd.to_datetime(self.returns.index)
        fac = wh.read_partitions("factors_daily", market_id=market_id, start=start, end=end,
                                 columns=["factor_id", "date", "value"])
        self.factors = None if fac.empty else fac.pivot_table(
            index="date", columns="factor_id", values="value", aggfunc="first").sort_index()
        if self.factors is not None:
            self.factors.index = pd.to_datetime(self.factors.index)
        reg = wh.read("regimes", where={"market_id": market_id, "as_of_date": between(None, end)},
                      columns=["as_of_date", "regime_label"], order_by=["as_of_date"])
        self.regimes = None if reg.empty else reg.set_index(
            pd.to_datetime(reg["as_of_date"]))["regime_label"]
        self.exposures = _by_date(wh.read_partitions(
            "instrument_factors_daily", market_id=market_id, dates=dates,
            columns=["instrument_id", "date", "factor_id", "exposure"]), "date")
        ins = wh.read("instruments", where={"market_id": market_id},
                      columns=["instrument_id", "issuer_id"])
        iss = wh.read("issuers", where={"market_id": market_id}, columns=["issuer_id", "sector"])
        sectors = ins.merge(iss, on="issuer_id", how="left").dropna(subset=["sector"])
        self.sectors = sectors.set_index("instrument_id")["sector"]
        self.issuer_of = ins.dropna(subset=["issuer_id"]).set_index("issuer_id")["instrument_id"]
        self.stability = _by_date(wh.read_partitions(
            "stability_vectors", market_id=market_id, dates=dates,
            columns=["entity_type", "entity_id", "as_of_date", "stability_score",
                     "fundamental"]), "as_of_date")

    def weakness(self, d: pd.Timestamp) -> pd.Series | None:
        """instrument_id -> the drivers of fragility known before scenarios are drawn: the
        mean of (1 - stability score) and profile weakness (1 - fundamental) of its issuer
        (FX pairs: their own vector)."""
        s = self.stability.get(d)
        if s is None or s.empty:
            return None
        weak = pd.concat([1 - s["stability_score"], 1 - s["fundamental"]], axis=1).mean(axis=1)
        ids = s["entity_id"].astype(str)
        instrument = np.where(s["entity_type"] == "ISSUER", ids.map(self.issuer_of), ids)
        keep = s["entity_type"].isin(["ISSUER", "FX"]).to_numpy() & pd.notna(instrument)
        return pd.Series(weak.to_numpy()[keep], index=instrument[keep]).clip(0, 1)

    def for_date(self, d: pd.Timestamp) -> ScenarioInputs:
        ex = self.exposures.get(d)
        exposures = None if ex is None or ex.empty else ex.pivot_table(
            index="instrument_id", columns="factor_id", values="exposure", aggfunc="first")
        return ScenarioInputs(returns=self.returns.loc[:d], factors=None if self.factors is None
                              else self.factors.loc[:d],
                              regime_labels=None if self.regimes is None
                              else self.regimes.loc[:d],
                              exposures=exposures, sectors=self.sectors,
                              weakness=self.weakness(d))


def _by_date(frame: pd.DataFrame, column: str) -> dict[pd.Timestamp, pd.DataFrame]:
    """The rows of each date (one pass, instead of a scan of the frame per date)."""
    return dict(list(frame.groupby(pd.to_datetime(frame[column]), sort=False)))


def _deps(market_id: str, with_regime: bool) -> list[AssetKey]:
    tables = ["returns_daily", "factors_daily", "instrument_factors_daily", "instruments",
              "issuers", "stability_vectors", *(["regimes"] if with_regime else [])]
    return [AssetKey([market_id, t]) for t in tables]


def scenario_sets_asset(market_id: str, with_regime: bool) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "scenario_sets"]),
        group_name=GROUP,
        deps=_deps(market_id, with_regime),
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "scenario_sets"},
        tags={"prometheus/tier": "1"},
        description=f"Scenario sets of {market_id} as of each date: historical (regime-"
                    "filtered), block bootstrap, factor bootstrap, shock overlays, "
                    "fragility-adversarial and named sets; spec, seed, calibration and path "
                    "statistics.",
    )
    def _sets(context: AssetExecutionContext, warehouse: WarehouseResource,
              mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        require_quality_passed(wh, market_id, dates, ["prices_daily"])
        loaded = scenarios_config()
        cfg: ScenariosConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        data = ScenarioData(wh, market_id, dates, cfg)
        frames, skipped, partial = [], [], []
        for i, d in enumerate(dates):
            if d not in data.returns.index:
                skipped.append(f"{d.date()}: no returns")
                continue
            inputs = ScenarioDay(data.for_date(d), d)
            sets = []
            for spec in cfg.sets:
                try:
                    sets.append(generate_scenario_set(market_id, d, spec, inputs, cfg,
                                                      config_id))
                except ScenarioError as exc:
                    partial.append(f"{d.date()} {spec.name}: {exc}")
            if not sets:
                skipped.append(f"{d.date()}: no set could be generated")
                continue
            frames.append(scenario_set_frame(sets, validate=False))
            if (i + 1) % 50 == 0:
                context.log.info(f"{market_id} scenarios: {i + 1}/{len(dates)} dates")
        if partial:
            context.log.warning(f"{market_id}: {len(partial)} scenario set(s) not generated: "
                                + "; ".join(partial[:5]))
        if skipped:
            context.log.warning(f"{market_id}: no scenarios on {len(skipped)} date(s): "
                                + "; ".join(skipped[:5]))
        out = (validate_frame("scenario_sets", pd.concat(frames, ignore_index=True)) if frames
               else empty_frame("scenario_sets"))
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            run.log_metrics({"sets": len(out), "dates_without_scenarios": len(skipped),
                             "sets_not_generated": len(partial),
                             "clipped_moves": int(out["clipped_moves"].sum()) if len(out)
                             else 0})
            if len(out):
                latest = out[out["as_of_date"] == out["as_of_date"].max()]
                run.log_dict(latest[["set_id", "family", "calibration", "path_statistics"]]
                             .to_dict(orient="records"), "latest_sets.json")
            lineage = run.metadata()
            run_id = run.run_id
        if len(out):
            write_decisions(wh, context, ENGINE, market_id, dates,
                            _set_decisions(out), mlflow_run_id=run_id)
        context.add_output_metadata({**lineage, "sets": len(out), "config_id": config_id,
                                     "dates_without_scenarios": len(skipped)})
        return out

    return _sets


def _set_decisions(sets: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for d, day in sets.groupby("as_of_date", sort=True):
        rows.append({"context_id": f"{day['market_id'].iloc[0]}:{pd.Timestamp(d).date()}",
                     "as_of_date": d, "config_id": day["config_id"].iloc[0], "model_id": None,
                     "input_refs": {"tables": ["returns_daily", "factors_daily",
                                               "instrument_factors_daily", "regimes",
                                               "stability_vectors"]},
                     "proposed_action": {"scenario_sets": list(day["set_id"]),
                                         "regime_filter_applied": {
                                             str(n): bool(a) for n, a in
                                             zip(day["name"], day["regime_filter_applied"],
                                                 strict=True)}}})
    return pd.DataFrame(rows)


def scenario_paths_asset(market_id: str, with_regime: bool) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "scenario_paths"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, "scenario_sets"]), *_deps(market_id, with_regime)],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "scenario_paths"},
        tags={"prometheus/tier": "1"},
        description=f"Scenario paths of {market_id}: per set, path and instrument the step "
                    "returns over the horizon, regenerated from the stored set spec and seed "
                    "(a set that no longer reproduces fails the run).",
    )
    def _paths(context: AssetExecutionContext, warehouse: WarehouseResource,
               mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = scenarios_config()
        cfg: ScenariosConfig = loaded.config  # type: ignore[assignment]
        stored = wh.read_partitions("scenario_sets", market_id=market_id, dates=dates)
        if stored.empty:
            context.log.warning(f"{market_id}: no scenario sets on these dates; materialize "
                                f"{market_id}/scenario_sets first")
            return empty_frame("scenario_paths")
        data = ScenarioData(wh, market_id, dates, cfg)
        frames = []
        for d, day in stored.groupby("as_of_date", sort=True):
            inputs = ScenarioDay(data.for_date(pd.Timestamp(d)), pd.Timestamp(d))
            sets = [regenerate_paths(row, inputs, cfg) for _, row in day.iterrows()]
            for row, gen in zip(day.to_dict(orient="records"), sets, strict=True):
                _check_reproduced(row, gen.set_row)
            # validated once, on write
            frames.append(scenario_path_frame(sets, validate=False))
        out = pd.concat(frames, ignore_index=True)
        with mlflow.asset_run(context, GROUP, market_id=market_id,
                              config_id=str(stored["config_id"].iloc[0])) as run:
            run.log_metrics({"paths_rows": len(out), "sets": len(stored)})
            lineage = run.metadata()
        context.add_output_metadata({**lineage, "rows": len(out), "sets": len(stored)})
        return out

    return _paths


def _check_reproduced(stored: dict, regenerated: dict) -> None:
    a, b = (_as_dict(r.get("path_statistics")) for r in (stored, regenerated))
    same = a.keys() == b.keys() and all(
        (x is None and y is None) or (x is not None and y is not None
                                      and np.isclose(x, y, rtol=1e-9, atol=1e-12))
        for x, y in ((a[k], b[k]) for k in a))
    if not same:
        raise ScenarioError(
            f"scenario set {stored['set_id']} no longer reproduces from its stored spec and "
            "seed: its inputs (returns, factors, regimes or stability) changed since it was "
            "generated; re-materialize scenario_sets for this date")


def _as_dict(v) -> dict:
    return json.loads(v) if isinstance(v, str) else dict(v or {})


def scenario_assets(data_markets: list[str], regime_markets: list[str]) -> list[AssetsDefinition]:
    out: list[AssetsDefinition] = []
    for m in data_markets:
        out += [scenario_sets_asset(m, m in regime_markets),
                scenario_paths_asset(m, m in regime_markets)]
    return out
