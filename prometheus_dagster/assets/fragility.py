"""Fragility assets per market: scenario-loss measures, soft-target classes, the tail model
(refit on its cadence, registered in MLflow with its last data date) and fragility alpha made
with the version trained strictly before each date."""

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    asset,
)

from prometheus_dagster.assets.common import (
    lookback_start,
    register_config,
    run_dates,
    train_refit_partitions,
    write_decisions,
)
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.partitions import (
    market_partitions_def,
    model_for_date_mapping,
    refit_partitions_def,
)
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.fragility import (
    FRAGILITY_CLASSES,
    FragilityConfig,
    FragilityModel,
    FragilityTrainingError,
    fit_fragility_model,
    fragility_alpha_rows,
    fragility_components,
    fragility_measures,
    index_levels,
    soft_target_classes,
    tail_outcomes,
    total_return_levels,
)
from prometheus_dagster.engines.fragility.components import (
    FLAG_FEATURES,
    feature_matrix,
    window_return,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse, between

GROUP = "fragility"
MODEL_TYPE = "fragility_tail"
MODEL_ARTIFACT = "fragility_model.json"
RET_63D = 63
PATHS_CHUNK_DATES = 16
_MODELS: dict[str, FragilityModel] = {}


def fragility_config() -> LoadedConfig:
    return load_engine_config("fragility")


def registered_name(market_id: str, cfg: FragilityConfig) -> str:
    return f"{market_id}.{cfg.model.model_id}"


# --- inputs -----------------------------------------------------------------------------------
def entity_members(stability: pd.DataFrame, instruments: pd.DataFrame, issuers: pd.DataFrame
                   ) -> dict[tuple[str, str], list[str]]:
    """(entity_type, entity_id) -> instruments held: an issuer's equity, a sector's or the
    market's equities (the index instrument for a market without equities), an FX pair."""
    ins = instruments.merge(issuers[["issuer_id", "sector"]], on="issuer_id", how="left")
    equities = ins[ins["asset_class"] == "EQUITY"]
    equity_of = equities.drop_duplicates("issuer_id").set_index("issuer_id")["instrument_id"]
    by_sector = equities.groupby("sector")["instrument_id"].apply(list)
    index = list(ins.loc[ins["asset_class"] == "INDEX", "instrument_id"])
    out: dict[tuple[str, str], list[str]] = {}
    for etype, eid in stability[["entity_type", "entity_id"]].drop_duplicates().itertuples(
            index=False):
        eid = str(eid)
        if etype == "ISSUER" and eid in equity_of.index:
            out[(etype, eid)] = [str(equity_of[eid])]
        elif etype == "SECTOR":
            out[(etype, eid)] = [str(i) for i in by_sector.get(eid.split(":", 1)[-1], [])]
        elif etype == "MARKET":
            out[(etype, eid)] = [str(i) for i in equities["instrument_id"]] or index
        elif etype == "FX":
            out[(etype, eid)] = [eid]
    return {k: v for k, v in out.items() if v}


def read_paths_by_date(wh: Warehouse, market_id: str, dates: list[pd.Timestamp],
                       instruments: Mapping[pd.Timestamp, set[str]] | None = None
                       ) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    """(date, its scenario paths with their set's name and family) for each of ``dates``,
    read a chunk of dates per query (one query per date dominated a backfill; all at once
    would hold every path of a long range in memory). ``instruments`` (date -> ids) keeps
    only those instruments' paths."""
    for i in range(0, len(dates), PATHS_CHUNK_DATES):
        chunk = dates[i:i + PATHS_CHUNK_DATES]
        extra = None
        if instruments is not None:
            names = sorted(set().union(*(instruments.get(d, set()) for d in chunk)))
            extra = {"instrument_id": names}
        if extra is not None and not extra["instrument_id"]:
            merged = None
        else:
            sets = wh.read_partitions("scenario_sets", market_id=market_id, dates=chunk,
                                      columns=["as_of_date", "set_id", "name", "family"])
            paths = wh.read_partitions("scenario_paths", market_id=market_id, dates=chunk,
                                       extra=extra,
                                       columns=["as_of_date", "set_id", "path_id",
                                                "instrument_id", "cumulative_return"])
            merged = paths.merge(sets, on=["as_of_date", "set_id"], how="inner")
        by_date = {} if merged is None else dict(list(
            merged.groupby(pd.to_datetime(merged["as_of_date"]), sort=False)))
        for d in chunk:
            day = by_date.get(pd.Timestamp(d))
            if day is None:
                yield d, pd.DataFrame(columns=["set_id", "path_id", "instrument_id",
                                               "cumulative_return", "name", "family"])
            else:
                day = day.drop(columns="as_of_date").reset_index(drop=True)
                if instruments is not None:
                    day = day[day["instrument_id"].isin(instruments.get(d, set()))]
                yield d, day


def load_components(wh: Warehouse, market_id: str, start: pd.Timestamp | None,
                    end: pd.Timestamp, cfg: FragilityConfig) -> pd.DataFrame:
    """Fragility components and model features of every entity with a stability vector dated
    in [start, end], from the stored engine tables and features (nothing after ``end``)."""
    def part(table: str, columns: list[str] | None = None, lookback: int = 0) -> pd.DataFrame:
        s = None if start is None else lookback_start(start, lookback) if lookback else start
        return wh.read_partitions(table, market_id=market_id, start=s, end=end,
                                  columns=columns)

    stability = part("stability_vectors")
    if stability.empty:
        return pd.DataFrame()
    measures = part("fragility_measures")
    classes = part("soft_target_classes", ["entity_type", "entity_id", "as_of_date",
                                           "soft_target_class"])
    instruments = wh.read("instruments", where={"market_id": market_id})
    equities = instruments[instruments["asset_class"] == "EQUITY"]
    issuer_of = equities.set_index("instrument_id")["issuer_id"]
    vol = part("volatility_daily", ["instrument_id", "date", "vol_63d", "drawdown"])
    rets = part("returns_daily", ["instrument_id", "date", "ret_1d", "ret_21d"],
                lookback=RET_63D + 5)
    rets = rets[rets["instrument_id"].isin(issuer_of.index)]
    ret_63d = window_return(rets, RET_63D)
    market = (rets[["instrument_id", "date", "ret_21d"]]
              .merge(ret_63d, on=["instrument_id", "date"], how="left")
              .merge(vol, on=["instrument_id", "date"], how="left"))
    market = market[market["instrument_id"].isin(issuer_of.index)]
    market = market.assign(entity_id=market["instrument_id"].map(issuer_of),
                           as_of_date=pd.to_datetime(market["date"]))
    profiles = part("profiles", ["issuer_id", "as_of_date", *FLAG_FEATURES])
    flags = profiles.rename(columns={"issuer_id": "entity_id"})
    return fragility_components(stability, measures, classes, market, flags, cfg)


def read_outcomes(wh: Warehouse, market_id: str, end: pd.Timestamp,
                  cfg: FragilityConfig) -> dict[int, pd.DataFrame]:
    """horizon -> tail outcome of each equity and session whose whole horizon ends on or
    before ``end`` (prices, index and delistings dated on or before ``end`` only)."""
    rets = wh.read_partitions("returns_daily", market_id=market_id, end=end,
                              columns=["instrument_id", "date", "ret_1d"])
    actions = wh.read("corporate_actions", where={"market_id": market_id,
                                                  "action_type": "DELISTING",
                                                  "date": between(None, end)},
                      columns=["instrument_id", "date"])
    delist = actions.groupby("instrument_id")["date"].min()
    levels = total_return_levels(rets)
    to = cfg.tail_outcome
    bench = None
    if to.relative_to == "market":
        idx = wh.read_partitions("market_correlation_daily", market_id=market_id, end=end,
                                 columns=["date", "index_ret_1d"])
        bench = index_levels(idx.set_index("date")["index_ret_1d"], levels.index)
    return {h: tail_outcomes(levels, delist, h, to.drawdown, to.count_delisting, bench)
            for h in cfg.horizons}


# --- measures and soft targets ----------------------------------------------------------------
def measures_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "fragility_measures"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in ("scenario_paths", "scenario_sets",
                                                 "stability_vectors", "instruments",
                                                 "issuers")],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "fragility_measures"},
        tags={"prometheus/tier": "1"},
        description=f"Scenario losses of {market_id}'s entities: per set mean, ES and worst "
                    "loss; pooled expected shortfall, worst case, HighFragility in [0, 1].",
    )
    def _measures(context: AssetExecutionContext, warehouse: WarehouseResource,
                  mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = fragility_config()
        cfg: FragilityConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        stability = wh.read_partitions("stability_vectors", market_id=market_id, dates=dates,
                                       columns=["entity_type", "entity_id", "as_of_date"])
        instruments = wh.read("instruments", where={"market_id": market_id})
        issuers = wh.read("issuers", where={"market_id": market_id})
        stability_on = dict(list(stability.groupby(pd.to_datetime(stability["as_of_date"]),
                                                   sort=False)))
        frames, without = [], []
        for d, paths in read_paths_by_date(wh, market_id, dates):
            day = stability_on.get(d, stability.iloc[:0])
            if paths.empty or day.empty:
                without.append(d)
                continue
            members = entity_members(day, instruments, issuers)
            frames.append(fragility_measures(market_id, d, paths, members, cfg, config_id))
        if without:
            context.log.warning(f"{market_id}: no fragility measures on {len(without)} date(s) "
                                f"(first {without[0].date()}): no scenario paths or stability "
                                "vectors that day")
        out = pd.concat(frames, ignore_index=True) if frames else \
            empty_frame("fragility_measures")
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            if len(out):
                run.log_metric_series("median_issuer_es", out[out["entity_type"] == "ISSUER"]
                                      .groupby("as_of_date")["expected_shortfall"].median())
            run.log_metrics({"rows": len(out), "dates_without_measures": len(without)})
            lineage = run.metadata()
        context.add_output_metadata({**lineage, "rows": len(out), "config_id": config_id})
        return out

    return _measures


def soft_targets_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "soft_target_classes"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in ("stability_vectors", "fragility_measures")],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "soft_target_classes"},
        tags={"prometheus/tier": "1"},
        description=f"Soft-target class of {market_id}'s entities (NONE, WATCHLIST, "
                    "SOFT_TARGET) with the thresholds crossed.",
    )
    def _soft(context: AssetExecutionContext, warehouse: WarehouseResource,
              mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = fragility_config()
        cfg: FragilityConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        stability = wh.read_partitions("stability_vectors", market_id=market_id, dates=dates)
        measures = wh.read_partitions("fragility_measures", market_id=market_id, dates=dates)
        if stability.empty:
            context.log.warning(f"{market_id}: no stability vectors on these dates")
            return empty_frame("soft_target_classes")
        out = soft_target_classes(stability, measures, cfg, config_id)
        counts = out["soft_target_class"].value_counts().to_dict()
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            for c in ("WATCHLIST", "SOFT_TARGET"):
                run.log_metric_series(f"{c.lower()}_count", out.groupby("as_of_date")[
                    "soft_target_class"].apply(lambda s, c=c: float((s == c).sum())))
            run.log_metrics({"rows": len(out), **{f"rows_{k}": v for k, v in counts.items()}})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, "soft_targets", market_id, dates,
                        _class_decisions(out, "soft_target_class", ("SOFT_TARGET", "WATCHLIST"),
                                         ["stability_vectors", "fragility_measures"]),
                        mlflow_run_id=run_id)
        context.add_output_metadata({**lineage, "rows": len(out), "config_id": config_id,
                                     **{k: int(v) for k, v in counts.items()}})
        return out

    return _soft


def _class_decisions(out: pd.DataFrame, column: str, flagged: tuple[str, ...],
                     tables: list[str], extra=None) -> pd.DataFrame:
    """One decision record per date: the entities in each flagged class."""
    rows = []
    for d, day in out.groupby("as_of_date", sort=True):
        action = {c: sorted(set(day.loc[day[column] == c, "entity_id"].astype(str)))
                  for c in flagged}
        if extra is not None:
            action.update(extra(day))
        rows.append({"context_id": f"{day['market_id'].iloc[0]}:{pd.Timestamp(d).date()}",
                     "as_of_date": d, "config_id": day["config_id"].iloc[0],
                     "model_id": ", ".join(sorted(set(day["model_id"].dropna())))
                     if "model_id" in day and day["model_id"].notna().any() else None,
                     "input_refs": {"tables": tables}, "proposed_action": action})
    return pd.DataFrame(rows)


# --- model ------------------------------------------------------------------------------------
MODEL_INPUTS = ("stability_vectors", "fragility_measures", "soft_target_classes", "profiles",
                "volatility_daily", "returns_daily", "corporate_actions")


def fragility_training_asset(market_id: str, cfg: FragilityConfig) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "fragility_models"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in MODEL_INPUTS],
        partitions_def=refit_partitions_def(cfg.refit.cadence, cfg.refit.first_year),
        metadata={"table": "models",
                  "partition_extra": {"model_type": MODEL_TYPE, "market_id": market_id}},
        tags={"prometheus/tier": "2"},
        description=f"Fragility tail model of {market_id} ({cfg.refit.cadence} refits): "
                    "partition P is fitted on issuer-days whose whole horizon ended before P "
                    "and registered in MLflow with that last date.",
    )
    def _models(context: AssetExecutionContext, warehouse: WarehouseResource,
                mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = fragility_config()
        cfg: FragilityConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        return train_refit_partitions(
            context, market_id, "fragility model",
            lambda valid_from: _train_one(context, wh, mlflow, market_id, valid_from, cfg,
                                          config_id),
            FragilityTrainingError,
            hint=f"; materialize {market_id}/stability_vectors .. soft_target_classes over "
                 "more history")

    return _models


def _train_one(context, wh: Warehouse, mlflow: MlflowTracking, market_id: str,
               valid_from: pd.Timestamp, cfg: FragilityConfig, config_id: str) -> dict:
    from sklearn.metrics import roc_auc_score

    end = valid_from - pd.Timedelta(days=1)
    components = load_components(wh, market_id, None, end, cfg)
    if components.empty:
        raise FragilityTrainingError(f"no {market_id} stability vectors dated before "
                                     f"{valid_from.date()}")
    outcomes = read_outcomes(wh, market_id, end, cfg)
    model = fit_fragility_model(components, outcomes, end, cfg)
    name = registered_name(market_id, cfg)
    metrics: dict[str, float] = {}
    for h, m in model.horizons.items():
        train = components.merge(outcomes[h], on=["instrument_id", "as_of_date"])
        p = m.probability(feature_matrix(train, model.features))
        metrics.update({f"h{h}_rows": m.rows, f"h{h}_positives": m.positives,
                        f"h{h}_base_rate": m.base_rate})
        if len(set(train["tail_event"])) == 2:
            metrics[f"h{h}_in_sample_auc"] = float(roc_auc_score(train["tail_event"], p))
    with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                          params={"trained_through": model.trained_through,
                                  "valid_from": str(valid_from.date()),
                                  "first_training_date": model.first_training_date,
                                  "horizons": ",".join(map(str, cfg.horizons)),
                                  "features": ",".join(model.features),
                                  "tail_drawdown": cfg.tail_outcome.drawdown},
                          extra_tags={"refit_partition": str(valid_from.date())}) as run:
        run.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifact(model.save(Path(tmp) / MODEL_ARTIFACT))
        source = run.artifact_uri(MODEL_ARTIFACT)
        version = mlflow.register_model_version(
            name, source, run.run_id, pd.Timestamp(model.trained_through),
            tags={"valid_from": str(valid_from.date()), "config_id": config_id})
        run.set_tags({f"registered:{name}": version})
    model_id = f"{name}/{version}"
    context.log.info(f"{market_id} fragility model {valid_from.date()}: {model_id}, "
                     + ", ".join(f"h{h}: {m.rows} rows, {m.positives} tail outcomes"
                                 for h, m in model.horizons.items()))
    return {"model_id": model_id, "model_name": name, "version": version,
            "market_id": market_id, "model_type": MODEL_TYPE, "valid_from": valid_from,
            "trained_through": pd.Timestamp(model.trained_through), "artifact_uri": source,
            "training_spec": {"features": list(model.features), "horizons": list(cfg.horizons),
                              "first_training_date": model.first_training_date,
                              "tail_outcome": cfg.tail_outcome.model_dump(),
                              "cadence": cfg.refit.cadence},
            "metrics": metrics, "mlflow_run_id": run.run_id,
            "dagster_run_id": context.run.run_id, "config_id": config_id}


def _load_model(mlflow: MlflowTracking, source: str) -> FragilityModel:
    if source not in _MODELS:
        path = mlflow.download(source)
        _MODELS[source] = FragilityModel.load(path if path.is_file() else path / MODEL_ARTIFACT)
    return _MODELS[source]


def compute_fragility_alpha(wh: Warehouse, mlflow: MlflowTracking, market_id: str,
                            dates: list[pd.Timestamp], cfg: FragilityConfig,
                            config_id: str) -> pd.DataFrame:
    components = load_components(wh, market_id, dates[0], dates[-1], cfg)
    if components.empty:
        return components
    components = components[components["as_of_date"].isin(set(dates))]
    versions = mlflow.resolve_model_versions(registered_name(market_id, cfg), dates)
    models = {d: (f"{v['name']}/{v['version']}", _load_model(mlflow, str(v["source"])))
              for d, v in versions.items() if v is not None}
    return fragility_alpha_rows(components, models, cfg, config_id)


def fragility_alpha_asset(market_id: str, cfg: FragilityConfig) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "fragility_alpha"]),
        group_name=GROUP,
        deps=[*(AssetKey([market_id, t]) for t in MODEL_INPUTS if t != "corporate_actions"),
              AssetDep(AssetKey([market_id, "fragility_models"]),
                       partition_mapping=model_for_date_mapping())],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "fragility_alpha"},
        tags={"prometheus/tier": "1"},
        description=f"Fragility alpha of {market_id}'s entities per horizon: WeakProfile, "
                    "Instability, HighFragility, ComplacentPricing, SoftTargetScore, tail "
                    "probability and expected downside, FragilityClass, position templates.",
    )
    def _alpha(context: AssetExecutionContext, warehouse: WarehouseResource,
               mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = fragility_config()
        cfg: FragilityConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        out = compute_fragility_alpha(wh, mlflow, market_id, dates, cfg, config_id)
        if out.empty:
            context.log.warning(f"{market_id}: no stability vectors on these dates: no "
                                "fragility alpha")
            return empty_frame("fragility_alpha")
        no_model = sorted(set(out.loc[(out["entity_type"] == "ISSUER")
                                      & out["model_id"].isna(), "as_of_date"]))
        if no_model:
            context.log.warning(
                f"{market_id}: no fragility model trained before {no_model[0].date()} "
                f"({len(no_model)} date(s)): components, score and class without tail "
                f"probability; materialize {market_id}/fragility_models for the period")
        counts = out[out["horizon_days"] == cfg.horizons[0]]["fragility_class"] \
            .value_counts().to_dict()
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            issuers = out[(out["entity_type"] == "ISSUER")]
            for h, g in issuers.groupby("horizon_days"):
                run.log_metric_series(f"h{h}_mean_tail_probability",
                                      g.groupby("as_of_date")["tail_probability"].mean())
            run.log_metric_series("mean_soft_target_score",
                                  issuers.groupby("as_of_date")["soft_target_score"].mean())
            run.log_metrics({"rows": len(out), "dates_without_model": len(no_model),
                             **{f"rows_{k}": int(counts.get(k, 0)) for k in FRAGILITY_CLASSES}})
            lineage = run.metadata()
            run_id = run.run_id
        write_decisions(wh, context, "fragility_alpha", market_id, dates, _class_decisions(
            out[out["horizon_days"] == cfg.horizons[0]], "fragility_class",
            ("CRISIS", "SHORT_CANDIDATE", "WATCHLIST"), list(MODEL_INPUTS),
            extra=lambda day: {"position_templates": [t for ts in day["position_templates"]
                                                      for t in ts
                                                      if t["direction"] != "FLAT"]}),
            mlflow_run_id=run_id)
        latest = out[out["as_of_date"] == out["as_of_date"].max()]
        top = latest[latest["horizon_days"] == cfg.horizons[0]].nlargest(5, "soft_target_score")
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "models": ", ".join(sorted(set(out["model_id"].dropna()))) or "none",
            "dates_without_model": len(no_model),
            "top_soft_target_scores": MetadataValue.md("\n".join(
                f"- {r.entity_id}: {r.soft_target_score:.2f} ({r.fragility_class})"
                for r in top.itertuples()) or "none")})
        return out

    return _alpha


def fragility_assets(data_markets: list[str], profile_markets: list[str]
                     ) -> list[AssetsDefinition]:
    cfg: FragilityConfig = fragility_config().config  # type: ignore[assignment]
    out: list[AssetsDefinition] = []
    for m in data_markets:
        out += [measures_asset(m), soft_targets_asset(m)]
        if m in profile_markets:
            out += [fragility_training_asset(m, cfg), fragility_alpha_asset(m, cfg)]
    return out
