"""Regime assets per region (each data market and GLOBAL): prototype refits on the configured
cadence (registered in MLflow with the last date of their data) and daily regimes made with
the version trained strictly before each date."""

import tempfile
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
    register_config,
    require_quality_passed,
    run_dates,
    train_refit_partitions,
    write_decisions,
)
from prometheus_dagster.core.calendars import GLOBAL
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.partitions import (
    model_for_date_mapping,
    partitions_def_for,
    refit_partitions_def,
    same_day_mapping,
)
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.regime import (
    RegimeConfig,
    RegimeModel,
    RegimeTrainingError,
    RegionInputs,
    assign_regimes,
    combine_internals,
    compute_region_features,
    fit_regime_model,
    missing_inputs,
    regime_path_summary,
)
from prometheus_dagster.engines.regime.config import RegionConfig
from prometheus_dagster.engines.regime.plots import regime_figure
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse, between

GROUP = "regime"
ENGINE = "regime"
MODEL_TYPE = "regime_prototypes"
MODEL_ARTIFACT = "regime_model.json"
INTERNALS = ["date", "index_ret_1d", "avg_pairwise_corr_63d", "dispersion_1d", "breadth_1d"]
PLOT_SESSIONS = 504
_MODELS: dict[str, RegimeModel] = {}  # parsed prototypes by artifact source (immutable)


def regime_config() -> LoadedConfig:
    return load_engine_config("regime")


def regime_regions(data_markets: list[str]) -> dict[str, RegionConfig]:
    """Configured regions whose data is ingested: markets in ``data_markets``, and GLOBAL with
    its members narrowed to them (left out when none is)."""
    cfg: RegimeConfig = regime_config().config  # type: ignore[assignment]
    out = {}
    for region, rc in cfg.regions.items():
        if region == GLOBAL:
            members = tuple(m for m in rc.members if m in data_markets)
            if members:
                out[region] = rc.model_copy(update={"members": members})
        elif region in data_markets:
            out[region] = rc
    return out


def registered_name(region: str, cfg: RegimeConfig) -> str:
    return f"{region}.{cfg.model.model_id}"


def read_region_inputs(wh: Warehouse, region: str, rc: RegionConfig,
                       end: pd.Timestamp) -> RegionInputs:
    """A region's internals and mapped macro series dated on or before ``end``."""
    def internals_of(market: str) -> pd.DataFrame:
        return wh.read_partitions("market_correlation_daily", market_id=market, end=end,
                                  columns=INTERNALS)

    if region == GLOBAL:
        internals = combine_internals({m: internals_of(m) for m in rc.members})
    else:
        internals = with_index_instrument(wh, region, rc, internals_of(region), end)
    series = sorted({s for candidates in rc.macro.values() for s in candidates})
    macro = wh.read("macro_time_series", where={"series_id": series, "date": between(None, end)},
                    order_by=["series_id", "date"]) if series else \
        pd.DataFrame(columns=["series_id", "date", "value", "frequency"])
    return RegionInputs(region, internals, macro, rc.macro)


def with_index_instrument(wh: Warehouse, market: str, rc: RegionConfig, internals: pd.DataFrame,
                          end: pd.Timestamp) -> pd.DataFrame:
    """Internals whose index return is the configured index instrument's return, or the
    market's INDEX instrument's when the market has no index of its own (index-only data)."""
    has_index = "index_ret_1d" in internals and internals["index_ret_1d"].notna().any()
    instrument = rc.index_instrument
    if instrument is None and not has_index:
        found = wh.read("instruments", where={"market_id": market, "asset_class": "INDEX"},
                        columns=["instrument_id"])
        instrument = str(found["instrument_id"].iloc[0]) if len(found) else None
    if instrument is None:
        return internals
    rets = wh.read("returns_daily", where={"market_id": market, "instrument_id": instrument,
                                           "date": between(None, end)},
                   columns=["date", "ret_1d"], order_by=["date"])
    rets = rets.rename(columns={"ret_1d": "index_ret_1d"})
    rest = internals.drop(columns=["index_ret_1d"], errors="ignore")
    return rets.merge(rest, on="date", how="outer").sort_values("date", ignore_index=True)


def _input_deps(region: str, rc: RegionConfig) -> list[AssetDep]:
    markets = rc.members if region == GLOBAL else (region,)
    deps = [AssetDep(AssetKey([m, "market_correlation_daily"]),
                     partition_mapping=same_day_mapping()) for m in markets]
    deps += [AssetDep(AssetKey([m, "returns_daily"]), partition_mapping=same_day_mapping())
             for m in markets if region != GLOBAL]
    return deps + [AssetDep(AssetKey([GLOBAL, "macro_time_series"]),
                            partition_mapping=same_day_mapping())]


def _slice(region: str) -> dict:
    return {"partition_extra": {"market_id": region}}


# --- training ---------------------------------------------------------------------------------
def regime_training_asset(region: str, rc: RegionConfig, cfg: RegimeConfig) -> AssetsDefinition:
    @asset(
        key=AssetKey([region, "regime_models"]),
        group_name=GROUP,
        deps=[d.asset_key for d in _input_deps(region, rc)],
        partitions_def=refit_partitions_def(cfg.refit.cadence, cfg.refit.first_year),
        metadata={"table": "models",
                  "partition_extra": {"model_type": MODEL_TYPE, "market_id": region}},
        tags={"prometheus/tier": "2"},
        description=f"Regime prototypes of {region} ({cfg.refit.cadence} refits): partition P "
                    "is fitted on data dated before P and registered in MLflow with that last "
                    "date.",
    )
    def _regime_models(context: AssetExecutionContext, warehouse: WarehouseResource,
                       mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = regime_config()
        cfg: RegimeConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        return train_refit_partitions(
            context, region, "regime model",
            lambda valid_from: _train_one(context, wh, mlflow, region, rc, valid_from, cfg,
                                          config_id),
            RegimeTrainingError)

    return _regime_models


def _train_one(context, wh: Warehouse, mlflow: MlflowTracking, region: str, rc: RegionConfig,
               valid_from: pd.Timestamp, cfg: RegimeConfig, config_id: str) -> dict:
    inputs = read_region_inputs(wh, region, rc, valid_from - pd.Timedelta(days=1))
    features = compute_region_features(inputs, cfg)
    if cfg.refit.max_history_years:
        features = features[features.index >= valid_from
                            - pd.DateOffset(years=cfg.refit.max_history_years)]
    if features.empty:
        raise RegimeTrainingError(f"no {region} internals dated before {valid_from.date()}")
    cut = features.index[-1]
    model = fit_regime_model(features, cut, cfg)
    name = registered_name(region, cfg)
    shares = pd.Series(model.cluster_labels).value_counts().to_dict()
    metrics = {"training_rows": model.training_rows, "clusters": len(model.cluster_labels),
               "labels": len(model.labels),
               **{f"clusters_{k}": v for k, v in shares.items()}}
    with mlflow.asset_run(context, GROUP, market_id=region, config_id=config_id,
                          params={"trained_through": str(cut.date()),
                                  "valid_from": str(valid_from.date()),
                                  "first_training_date": model.first_training_date,
                                  "window": cfg.window, "features": ",".join(model.features),
                                  "num_clusters": len(model.cluster_labels),
                                  "covariance_type": cfg.model.covariance_type},
                          extra_tags={"refit_partition": str(valid_from.date())}) as run:
        run.log_metrics(metrics)
        run.log_dict({"clusters": [{"label": lab, **ch} for lab, ch in zip(
            model.cluster_labels, model.cluster_characteristics, strict=True)],
            "labels": model.labels, "transition": model.transition}, "prototypes.json")
        history = assign_regimes(region, features, {d: ("in-sample", model)
                                                    for d in features.index}, cfg, config_id)
        if len(history):
            run.log_figure(regime_figure(region, history.tail(PLOT_SESSIONS),
                                         inputs.internals.set_index("date")["index_ret_1d"]
                                         if "index_ret_1d" in inputs.internals else
                                         pd.Series(dtype=float)),
                           "training_history.png")
        with tempfile.TemporaryDirectory() as tmp:
            path = model.save(Path(tmp) / MODEL_ARTIFACT)
            run.log_artifact(path)
        source = run.artifact_uri(MODEL_ARTIFACT)
        version = mlflow.register_model_version(
            name, source, run.run_id, cut, tags={"valid_from": str(valid_from.date()),
                                                 "config_id": config_id})
        run.set_tags({f"registered:{name}": version})
    model_id = f"{name}/{version}"
    context.log.info(f"{region} regime prototypes {valid_from.date()}: {model_id}, "
                     f"{model.training_rows} sessions {model.first_training_date}.."
                     f"{cut.date()}, clusters {model.cluster_labels}")
    return {"model_id": model_id, "model_name": name, "version": version, "market_id": region,
            "model_type": MODEL_TYPE, "valid_from": valid_from, "trained_through": cut,
            "artifact_uri": source,
            "training_spec": {"features": model.features, "window": cfg.window,
                              "first_training_date": model.first_training_date,
                              "cadence": cfg.refit.cadence},
            "metrics": metrics, "mlflow_run_id": run.run_id,
            "dagster_run_id": context.run.run_id, "config_id": config_id}


# --- inference --------------------------------------------------------------------------------
def _load_model(mlflow: MlflowTracking, source: str) -> RegimeModel:
    if source not in _MODELS:
        path = mlflow.download(source)
        _MODELS[source] = RegimeModel.load(path if path.is_file() else path / MODEL_ARTIFACT)
    return _MODELS[source]


def compute_regimes(wh: Warehouse, mlflow: MlflowTracking, region: str, rc: RegionConfig,
                    dates: list[pd.Timestamp], cfg: RegimeConfig, config_id: str,
                    ) -> tuple[pd.DataFrame, pd.DataFrame, RegionInputs]:
    """(regimes rows of ``dates``, the whole modelled path up to the last date, the inputs).

    The smoothed label of a date depends on the raw labels before it, so the path is rebuilt
    from the first date any version covers; each date uses its own version (trained strictly
    before it), which makes a single-run backfill and per-date runs agree exactly."""
    inputs = read_region_inputs(wh, region, rc, dates[-1])
    features = compute_region_features(inputs, cfg)
    features = features[features.index <= dates[-1]]
    versions = mlflow.resolve_model_versions(registered_name(region, cfg), list(features.index))
    models = {d: (f"{v['name']}/{v['version']}", _load_model(mlflow, str(v["source"])))
              for d, v in versions.items() if v is not None}
    path = assign_regimes(region, features, models, cfg, config_id)
    if path.empty:
        return path, path, inputs
    wanted = set(pd.DatetimeIndex(dates))
    out = path[path["as_of_date"].isin(wanted)].reset_index(drop=True)
    return out, path, inputs


def regime_decisions(out: pd.DataFrame, inputs_ref: dict) -> pd.DataFrame:
    """One decision record per region and date: the label and alert the engine proposes."""
    return pd.DataFrame({
        "context_id": [f"{r}:{pd.Timestamp(d).date()}"
                       for r, d in zip(out["market_id"], out["as_of_date"], strict=True)],
        "as_of_date": out["as_of_date"], "config_id": out["config_id"],
        "model_id": out["model_id"],
        "input_refs": [inputs_ref] * len(out),
        "proposed_action": [{"regime_label": lab, "confidence": float(c), "alert_level": a,
                             "raw_label": raw}
                            for lab, c, a, raw in zip(out["regime_label"], out["confidence"],
                                                      out["alert_level"], out["raw_label"],
                                                      strict=True)]})


def _imputed_features(out: pd.DataFrame) -> dict[str, int]:
    """Model feature -> number of dates on which it was missing (and imputed)."""
    counts: dict[str, int] = {}
    for diag in out.get("diagnostics", []):
        for f in diag.get("missing_features", []):
            counts[f] = counts.get(f, 0) + 1
    return counts


def regimes_asset(region: str, rc: RegionConfig, cfg: RegimeConfig) -> AssetsDefinition:
    model_key = AssetKey([region, "regime_models"])

    @asset(
        key=AssetKey([region, "regimes"]),
        group_name=GROUP,
        deps=[*_input_deps(region, rc),
              AssetDep(model_key, partition_mapping=model_for_date_mapping())],
        partitions_def=partitions_def_for(region),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "regimes", **_slice(region)},
        tags={"prometheus/tier": "1"},
        description=f"Regime of {region} per date: label, confidence, transition "
                    "probabilities, early-warning alert level, embedding.",
    )
    def _regimes(context: AssetExecutionContext, warehouse: WarehouseResource,
                 mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        for m in (rc.members if region == GLOBAL else (region,)):
            require_quality_passed(wh, m, dates, ["prices_daily"])
        loaded = regime_config()
        cfg: RegimeConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        out, path, inputs = compute_regimes(wh, mlflow, region, rc, dates, cfg, config_id)
        lacking = missing_inputs(inputs)
        if lacking:
            context.log.warning(f"{region} regimes without: {'; '.join(lacking)}")
        done = set(out["as_of_date"]) if len(out) else set()
        without = [d for d in dates if d not in done]
        if without:
            context.log.warning(
                f"{region}: no regime for {len(without)} of {len(dates)} date(s) (first "
                f"{without[0].date()}): no internals that day, or no prototypes trained before "
                f"it; materialize {region}/regime_models for the period and re-run")
        imputed = _imputed_features(out)
        if imputed:
            context.log.warning(
                f"{region}: model features missing and set to their training mean on some "
                "dates (stale or not yet ingested macro series?): "
                + ", ".join(f"{f} on {n} date(s)" for f, n in imputed.items()))
        with mlflow.asset_run(context, GROUP, market_id=region, config_id=config_id) as run:
            if len(out):
                daily = out.set_index("as_of_date")
                run.log_metric_series("confidence", daily["confidence"])
                run.log_metric_series("warning_count", daily["warning_count"].astype(float))
            run.log_metrics({**regime_path_summary(out), "rows": len(out),
                             "dates_without_regime": len(without),
                             **{f"dates_imputed_{f}": n for f, n in imputed.items()}})
            run.log_params({"missing_inputs": "; ".join(lacking)[:500] or "none"})
            if len(path):
                index = inputs.internals.set_index("date")["index_ret_1d"] \
                    if "index_ret_1d" in inputs.internals else pd.Series(dtype=float)
                run.log_figure(regime_figure(region, path.tail(PLOT_SESSIONS), index),
                               "regimes.png")
            lineage = run.metadata()
            run_id = run.run_id
        if len(out):
            refs = {"tables": ["market_correlation_daily", "macro_time_series"],
                    "members": list(rc.members) or [region],
                    "macro_series": sorted(set(inputs.macro["series_id"].astype(str)))
                    if len(inputs.macro) else [], "window": cfg.window}
            write_decisions(wh, context, ENGINE, region, dates, regime_decisions(out, refs),
                            mlflow_run_id=run_id)
        latest = out.iloc[-1] if len(out) else None
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "models": ", ".join(sorted(set(out["model_id"]))) if len(out) else "none",
            "dates_without_regime": len(without),
            "imputed_features": ", ".join(f"{f}: {n}" for f, n in imputed.items()) or "none",
            "latest": MetadataValue.text("none" if latest is None else
                                         f"{pd.Timestamp(latest['as_of_date']).date()} "
                                         f"{latest['regime_label']} "
                                         f"({latest['confidence']:.2f}), {latest['alert_level']}"),
            "missing_inputs": "; ".join(lacking) or "none"})
        return out if len(out) else empty_frame("regimes")

    return _regimes


def regime_assets(data_markets: list[str]) -> list[AssetsDefinition]:
    cfg: RegimeConfig = regime_config().config  # type: ignore[assignment]
    out: list[AssetsDefinition] = []
    for region, rc in regime_regions(data_markets).items():
        out += [regime_training_asset(region, rc, cfg), regimes_asset(region, rc, cfg)]
    return out

