"""Assessment assets per market: the combination model (refit on its cadence, trained on
labels that ended before the refit partition, with walk-forward out-of-sample metrics logged
in MLflow, registered with its last label date) and the instrument scores of each strategy
trading the market, made with the version trained strictly before each date."""

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

import prometheus_dagster.engines.fragility  # noqa: F401  (declares the tables read here)
import prometheus_dagster.engines.profiles  # noqa: F401
import prometheus_dagster.engines.regime  # noqa: F401
import prometheus_dagster.engines.stability  # noqa: F401
from prometheus_dagster.assets.common import (
    lookback_start,
    register_config,
    run_dates,
    train_refit_partitions,
    write_decisions,
)
from prometheus_dagster.assets.universe import register_strategies
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.partitions import (
    market_partitions_def,
    model_for_date_mapping,
    refit_partitions_def,
)
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.assessment import (
    AssessmentConfig,
    AssessmentInputs,
    AssessmentModel,
    AssessmentTrainingError,
    assessment_features,
    fit_assessment_model,
    forward_labels,
    instrument_score_rows,
)
from prometheus_dagster.resources.io_manager import WarehouseResource
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse, between

GROUP = "assessment"
MODEL_TYPE = "assessment"
MODEL_ARTIFACT = "assessment_model.json"
FEATURE_LOOKBACK = 252 + 21 + 10  # sessions the trailing windows of the features read
INPUTS = ("prices_daily", "returns_daily", "volatility_daily", "liquidity_daily",
          "instrument_factors_daily", "fundamentals", "corporate_actions", "instruments",
          "profiles", "stability_vectors", "fragility_alpha", "regimes")
_MODELS: dict[str, AssessmentModel] = {}


def assessment_config() -> LoadedConfig:
    return load_engine_config("assessment")


def registered_name(market_id: str, cfg: AssessmentConfig) -> str:
    return f"{market_id}.{cfg.model.model_id}"


def read_assessment_inputs(wh: Warehouse, market_id: str, start: pd.Timestamp | None,
                           end: pd.Timestamp, cfg: AssessmentConfig) -> AssessmentInputs:
    """Everything the features of the sessions in [start, end] read (start None: all
    history), dated on or before ``end``."""
    price_start = None if start is None else lookback_start(start, FEATURE_LOOKBACK)
    ctx_start = None if start is None else start - pd.Timedelta(
        days=cfg.features.max_context_age_days + 120)

    def part(table: str, columns: list[str], since=price_start) -> pd.DataFrame:
        return wh.read_partitions(table, market_id=market_id, start=since, end=end,
                                  columns=columns)

    actions = part("corporate_actions", ["instrument_id", "date", "action_type", "value"])
    stability = part("stability_vectors", ["entity_type", "entity_id", "as_of_date",
                                           "stability_score"], ctx_start)
    fragility = part("fragility_alpha", ["entity_type", "entity_id", "as_of_date",
                                         "horizon_days", "soft_target_score",
                                         "tail_probability", "high_fragility"], ctx_start)
    regimes = wh.read("regimes", where={"market_id": market_id,
                                        "as_of_date": between(ctx_start, end)},
                      columns=["as_of_date", "regime_label", "confidence"])
    return AssessmentInputs(
        prices=part("prices_daily", ["instrument_id", "date", "close"]),
        returns=part("returns_daily", ["instrument_id", "date", "ret_1d"]),
        instruments=wh.read("instruments", where={"market_id": market_id},
                            columns=["instrument_id", "issuer_id", "asset_class"]),
        volatility=part("volatility_daily", ["instrument_id", "date", "vol_63d", "drawdown"]),
        liquidity=part("liquidity_daily", ["instrument_id", "date", "adv_21d"]),
        exposures=part("instrument_factors_daily",
                       ["instrument_id", "date", "factor_id", "exposure"]).query(
                           "factor_id == 'MARKET'"),
        fundamentals=wh.read_partitions("fundamentals", market_id=market_id, end=end),
        dividends=actions.loc[actions["action_type"] == "DIVIDEND",
                              ["instrument_id", "date", "value"]],
        profiles=part("profiles", ["issuer_id", "as_of_date", "leverage_score",
                                   "earnings_quality_score", "liquidity_risk",
                                   "profile_weakness", "profile_embedding"], ctx_start),
        stability=stability[stability["entity_type"] == "ISSUER"].drop(columns="entity_type"),
        fragility=fragility[fragility["entity_type"] == "ISSUER"].drop(columns="entity_type"),
        regimes=regimes)


# --- model ------------------------------------------------------------------------------------
def assessment_training_asset(market_id: str, cfg: AssessmentConfig) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "assessment_models"]),
        group_name=GROUP,
        deps=[AssetKey([market_id, t]) for t in INPUTS],
        partitions_def=refit_partitions_def(cfg.refit.cadence, cfg.refit.first_year),
        metadata={"table": "models",
                  "partition_extra": {"model_type": MODEL_TYPE, "market_id": market_id}},
        tags={"prometheus/tier": "2"},
        description=f"Assessment combination model of {market_id} ({cfg.refit.cadence} "
                    "refits): partition P learns forward excess returns (5 and 21 sessions) "
                    "whose horizon ended before P minus the embargo; walk-forward "
                    "out-of-sample rank IC and deciles logged in MLflow.",
    )
    def _models(context: AssetExecutionContext, warehouse: WarehouseResource,
                mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        loaded = assessment_config()
        cfg: AssessmentConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        return train_refit_partitions(
            context, market_id, "assessment model",
            lambda valid_from: _train_one(context, wh, mlflow, market_id, valid_from, cfg,
                                          config_id),
            AssessmentTrainingError,
            hint=f"; materialize {market_id}'s prices and features over more history")

    return _models


def _oos_metrics(model: AssessmentModel) -> dict[str, float]:
    out: dict[str, float] = {}
    for h, m in model.oos_metrics.items():
        for k in ("mean_rank_ic", "ic_t_stat", "hit_rate", "decile_spearman", "n_dates"):
            v = m.get(k)
            # NaN (too little history for a fold) is logged too: absent would look like a bug
            out[f"h{h}_oos_{k}"] = float(v) if isinstance(v, int | float) else float("nan")
        for i, v in enumerate(m.get("decile_means") or []):
            out[f"h{h}_oos_decile_{i + 1}_mean"] = float(v)
    return out


def _train_one(context, wh: Warehouse, mlflow: MlflowTracking, market_id: str,
               valid_from: pd.Timestamp, cfg: AssessmentConfig, config_id: str) -> dict:
    end = valid_from - pd.Timedelta(days=1)
    inputs = read_assessment_inputs(wh, market_id, None, end, cfg)
    if inputs.returns.empty:
        raise AssessmentTrainingError(f"no {market_id} returns dated before "
                                      f"{valid_from.date()}")
    sessions = sorted(pd.to_datetime(inputs.returns["date"]).unique())
    # early sessions lack the longer windows: those features are NaN, which the model handles
    features = assessment_features(inputs, sessions, cfg)
    labels = forward_labels(inputs.returns, cfg.horizons, instruments=inputs.instruments)
    model = fit_assessment_model(features, labels, valid_from, cfg, sessions=sessions)
    name = registered_name(market_id, cfg)
    metrics = {**_oos_metrics(model),
               **{f"h{h}_rows": float(m.rows) for h, m in model.horizons.items()}}
    with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id,
                          params={"trained_through": model.trained_through,
                                  "valid_from": str(valid_from.date()),
                                  "first_training_date": model.first_training_date,
                                  "horizons": ",".join(map(str, cfg.horizons)),
                                  "embargo_sessions": cfg.walk_forward.embargo_sessions,
                                  "n_folds": cfg.walk_forward.n_folds,
                                  "features": ",".join(model.features)},
                          extra_tags={"refit_partition": str(valid_from.date())}) as run:
        run.log_metrics(metrics)
        run.log_dict({str(h): m for h, m in model.oos_metrics.items()}, "oos_metrics.json")
        with tempfile.TemporaryDirectory() as tmp:
            run.log_artifact(model.save(Path(tmp) / MODEL_ARTIFACT))
        source = run.artifact_uri(MODEL_ARTIFACT)
        version = mlflow.register_model_version(
            name, source, run.run_id, pd.Timestamp(model.trained_through),
            tags={"valid_from": str(valid_from.date()), "config_id": config_id})
        run.set_tags({f"registered:{name}": version})
    model_id = f"{name}/{version}"
    context.log.info(f"{market_id} assessment model {valid_from.date()}: {model_id}, "
                     + ", ".join(f"h{h}: {m.rows} rows, OOS rank IC "
                                 f"{model.oos_metrics[h].get('mean_rank_ic', float('nan')):.4f}"
                                 for h, m in model.horizons.items()))
    return {"model_id": model_id, "model_name": name, "version": version,
            "market_id": market_id, "model_type": MODEL_TYPE, "valid_from": valid_from,
            "trained_through": pd.Timestamp(model.trained_through), "artifact_uri": source,
            "training_spec": {"features": list(model.features),
                              "families": {k: list(v) for k, v in model.families.items()},
                              "horizons": list(cfg.horizons),
                              "first_training_date": model.first_training_date,
                              "embargo_sessions": cfg.walk_forward.embargo_sessions,
                              "cadence": cfg.refit.cadence},
            "metrics": metrics, "mlflow_run_id": run.run_id,
            "dagster_run_id": context.run.run_id, "config_id": config_id}


def _load_model(mlflow: MlflowTracking, source: str) -> AssessmentModel:
    if source not in _MODELS:
        path = mlflow.download(source)
        _MODELS[source] = AssessmentModel.load(path if path.is_file()
                                               else path / MODEL_ARTIFACT)
    return _MODELS[source]


# --- scores -----------------------------------------------------------------------------------
def compute_scores(wh: Warehouse, mlflow: MlflowTracking, market_id: str,
                   dates: list[pd.Timestamp], cfg: AssessmentConfig, config_id: str,
                   strategies: dict) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """(``instrument_scores`` rows of every strategy, dates without a model)."""
    inputs = read_assessment_inputs(wh, market_id, dates[0], dates[-1], cfg)
    features = assessment_features(inputs, dates, cfg)
    versions = mlflow.resolve_model_versions(registered_name(market_id, cfg), dates)
    frames, no_model = [], []
    for d in dates:
        v = versions.get(d)
        day = features[pd.to_datetime(features["as_of_date"]) == d]
        if v is None:
            no_model.append(d)
            continue
        if day.empty:
            continue
        model = _load_model(mlflow, str(v["source"]))
        model_id = f"{v['name']}/{v['version']}"
        for sid, (strategy, _) in sorted(strategies.items()):
            frames.append(instrument_score_rows(
                day, model, strategy_id=sid, market_id=market_id, config_id=config_id,
                model_id=model_id, fragility_penalty=strategy.fragility_penalty, config=cfg))
    out = pd.concat(frames, ignore_index=True) if frames else empty_frame("instrument_scores")
    return out, no_model


def score_decisions(out: pd.DataFrame) -> pd.DataFrame:
    """One decision per strategy and date: the strongest buys and sells of each horizon."""
    rows = []
    for (sid, d), day in out.groupby(["strategy_id", "as_of_date"], sort=True):
        action = {}
        for h, g in day.groupby("horizon_days"):
            ranked = g.sort_values(["score", "instrument_id"], ascending=[False, True])
            action[f"h{h}"] = {
                "top": ranked["instrument_id"].head(5).tolist(),
                "bottom": ranked["instrument_id"].tail(5).tolist()[::-1],
                **{label.lower(): int(n) for label, n in g["signal_label"].value_counts()
                   .items()}}
        rows.append({"context_id": f"{sid}:{day['market_id'].iloc[0]}:{pd.Timestamp(d).date()}",
                     "as_of_date": d, "config_id": day["config_id"].iloc[0],
                     "model_id": ", ".join(sorted(set(day["model_id"]))),
                     "input_refs": {"tables": list(INPUTS)}, "proposed_action": action})
    return pd.DataFrame(rows)


def instrument_scores_asset(market_id: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([market_id, "instrument_scores"]),
        group_name=GROUP,
        deps=[*(AssetKey([market_id, t]) for t in INPUTS),
              AssetDep(AssetKey([market_id, "assessment_models"]),
                       partition_mapping=model_for_date_mapping())],
        partitions_def=market_partitions_def(market_id),
        backfill_policy=BackfillPolicy.single_run(),
        metadata={"table": "instrument_scores"},
        tags={"prometheus/tier": "1"},
        description=f"Instrument scores of each strategy trading {market_id}, per horizon: "
                    "expected excess return (fragility penalty on the long side), score, "
                    "confidence, signal label and per-family contributions.",
    )
    def _scores(context: AssetExecutionContext, warehouse: WarehouseResource,
                mlflow: MlflowTracking) -> pd.DataFrame:
        wh = warehouse.get()
        dates = run_dates(context)
        loaded = assessment_config()
        cfg: AssessmentConfig = loaded.config  # type: ignore[assignment]
        config_id = register_config(wh, loaded)
        strategies = register_strategies(wh, market_id)
        if not strategies:
            context.log.warning(f"no strategy in configs/strategies trades {market_id}")
            return empty_frame("instrument_scores")
        out, no_model = compute_scores(wh, mlflow, market_id, dates, cfg, config_id,
                                       strategies)
        if no_model:
            context.log.warning(
                f"{market_id}: no assessment model trained before {no_model[0].date()} "
                f"({len(no_model)} date(s)): no scores; materialize "
                f"{market_id}/assessment_models for the period")
        with mlflow.asset_run(context, GROUP, market_id=market_id, config_id=config_id) as run:
            for (sid, h), g in out.groupby(["strategy_id", "horizon_days"]):
                run.log_metric_series(f"{sid}_h{h}_mean_confidence",
                                      g.groupby("as_of_date")["confidence"].mean())
            run.log_metrics({"rows": len(out), "dates_without_model": len(no_model)})
            lineage = run.metadata()
            run_id = run.run_id
        if len(out):
            write_decisions(wh, context, "assessment", market_id, dates, score_decisions(out),
                            mlflow_run_id=run_id)
        latest = out[out["as_of_date"] == out["as_of_date"].max()] if len(out) else out
        top = latest.sort_values("score", ascending=False).drop_duplicates("instrument_id")
        context.add_output_metadata({
            **lineage, "rows": len(out), "config_id": config_id,
            "models": ", ".join(sorted(set(out["model_id"]))) if len(out) else "none",
            "dates_without_model": len(no_model),
            "top_scores": MetadataValue.md("\n".join(
                f"- {r.instrument_id} ({r.strategy_id}, h{r.horizon_days}): {r.score:.2f} "
                f"{r.signal_label}" for r in top.head(5).itertuples()) or "none")})
        return out

    return _scores


def assessment_assets(markets: list[str]) -> list[AssetsDefinition]:
    cfg: AssessmentConfig = assessment_config().config  # type: ignore[assignment]
    return [a for m in markets
            for a in (assessment_training_asset(m, cfg), instrument_scores_asset(m))]
