"""Assessment step: the inputs the assessment features read, the training of a model version
(refit asset) and the instrument scores of a range of dates with the version valid on each
(one read of the window, one predict call per model version for all its dates and names).
Shared by the daily chain (``assets/assessment.py``, ``assets/assessment_models.py``) and the
backtest. See ``docs/engines/assessment.md``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

import prometheus_dagster.engines.fragility  # noqa: F401  (declares the tables read here)
import prometheus_dagster.engines.profiles  # noqa: F401
import prometheus_dagster.engines.regime  # noqa: F401
import prometheus_dagster.engines.stability  # noqa: F401
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
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
from prometheus_dagster.engines.assessment.scores import model_outputs
from prometheus_dagster.steps.universe import Strategies, sessions_covering, sessions_in_days

MODEL_TYPE = "assessment"
MODEL_ARTIFACT = "assessment_model.json"
MODELS_ASSET = "assessment_models"
# sessions the trailing windows of the features reach back (a year of momentum, a month of
# reversal, a margin); reading more history changes no feature
FEATURE_LOOKBACK = 252 + 21 + 10
# context rows (profiles, stability, fragility, regimes) are read this many calendar days
# beyond their age limit
CONTEXT_MARGIN_DAYS = 120
PRICE_TABLES = ("prices_daily", "returns_daily", "volatility_daily", "liquidity_daily",
                "instrument_factors_daily", "corporate_actions")
CONTEXT_TABLES = ("profiles", "stability_vectors", "fragility_alpha", "regimes")
_MODELS: dict[str, AssessmentModel] = {}


def registered_name(market_id: str, cfg: AssessmentConfig) -> str:
    return f"{market_id}.{cfg.model.model_id}"


def feature_inputs(cfg: AssessmentConfig) -> Inputs:
    """What the features of date D read: the trailing windows of prices, returns, risk and
    liquidity, dividends and factor exposures; every statement reported up to D; the
    market's listings; context rows young enough to count."""
    price = sessions_covering(FEATURE_LOOKBACK)
    context = sessions_in_days(cfg.features.max_context_age_days + CONTEXT_MARGIN_DAYS)
    return Inputs(*(Read(t, sessions=price) for t in PRICE_TABLES),
                  Read("fundamentals", history=True, note="statements reported up to D"),
                  Read("instruments", reference=True),
                  *(Read(t, sessions=context) for t in CONTEXT_TABLES))


def score_inputs(cfg: AssessmentConfig) -> Inputs:
    """What the scores of date D read: the features' inputs and the model valid for D."""
    return feature_inputs(cfg) + Inputs(Read("models", model=True, asset=MODELS_ASSET))


def training_inputs() -> Inputs:
    """What a refit reads: the features' tables over all history before its partition."""
    return Inputs(*(Read(t, history=True) for t in (*PRICE_TABLES, "fundamentals")),
                  Read("instruments", reference=True),
                  *(Read(t, history=True) for t in CONTEXT_TABLES))


def read_assessment_inputs(reader: Any, market_id: str, inputs: Inputs,
                           dates: list[pd.Timestamp]) -> AssessmentInputs:
    """The declared windows of ``inputs`` for ``dates`` (nothing after the last date)."""
    window = InputWindow(reader, inputs, market_id, dates)

    def part(table: str, columns: list[str]) -> pd.DataFrame:
        return window.frame(table, columns=columns)

    def issuer_rows(table: str, columns: list[str]) -> pd.DataFrame:
        rows = part(table, ["entity_type", *columns])
        return rows[rows["entity_type"] == "ISSUER"].drop(columns="entity_type")

    actions = part("corporate_actions", ["instrument_id", "date", "action_type", "value"])
    return AssessmentInputs(
        prices=part("prices_daily", ["instrument_id", "date", "close"]),
        returns=part("returns_daily", ["instrument_id", "date", "ret_1d"]),
        instruments=window.frame("instruments",
                                 columns=["instrument_id", "issuer_id", "asset_class"]),
        volatility=part("volatility_daily", ["instrument_id", "date", "vol_63d", "drawdown"]),
        liquidity=part("liquidity_daily", ["instrument_id", "date", "adv_21d"]),
        exposures=part("instrument_factors_daily",
                       ["instrument_id", "date", "factor_id", "exposure"]).query(
                           "factor_id == 'MARKET'"),
        fundamentals=window.frame("fundamentals"),
        dividends=actions.loc[actions["action_type"] == "DIVIDEND",
                              ["instrument_id", "date", "value"]],
        profiles=part("profiles", ["issuer_id", "as_of_date", "leverage_score",
                                   "earnings_quality_score", "liquidity_risk",
                                   "profile_weakness", "profile_embedding"]),
        stability=issuer_rows("stability_vectors", ["entity_id", "as_of_date",
                                                    "stability_score"]),
        fragility=issuer_rows("fragility_alpha", ["entity_id", "as_of_date", "horizon_days",
                                                  "soft_target_score", "tail_probability",
                                                  "high_fragility"]),
        regimes=part("regimes", ["as_of_date", "regime_label", "confidence"]))


def train_assessment_model(reader: Any, market_id: str, valid_from: pd.Timestamp,
                           cfg: AssessmentConfig) -> AssessmentModel:
    """The model version valid from ``valid_from``, trained on everything dated before it."""
    end = valid_from - pd.Timedelta(days=1)
    inputs = read_assessment_inputs(reader, market_id, training_inputs(), [end])
    if inputs.returns.empty:
        raise AssessmentTrainingError(f"no {market_id} returns dated before "
                                      f"{valid_from.date()}")
    sessions = sorted(pd.to_datetime(inputs.returns["date"]).unique())
    # early sessions lack the longer windows: those features are NaN, which the model handles
    features = assessment_features(inputs, sessions, cfg)
    labels = forward_labels(inputs.returns, cfg.horizons, instruments=inputs.instruments)
    return fit_assessment_model(features, labels, valid_from, cfg, sessions=sessions)


def load_model(mlflow: Any, source: str) -> AssessmentModel:
    """A registered model version, downloaded once per process."""
    if source not in _MODELS:
        path = mlflow.download(source)
        _MODELS[source] = AssessmentModel.load(path if path.is_file()
                                               else path / MODEL_ARTIFACT)
    return _MODELS[source]


def compute_scores(reader: Any, mlflow: Any, market_id: str, dates: list[pd.Timestamp],
                   cfg: AssessmentConfig, config_id: str, strategies: Strategies
                   ) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """(``instrument_scores`` rows of every strategy, dates without a model) of ``dates``
    from one read of the declared windows."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    inputs = read_assessment_inputs(reader, market_id, feature_inputs(cfg), dates)
    features = assessment_features(inputs, dates, cfg)
    versions = mlflow.resolve_model_versions(registered_name(market_id, cfg), dates)
    return score_features(features, dates, versions, lambda source: load_model(mlflow, source),
                          market_id, cfg, config_id, strategies)


def score_features(features: pd.DataFrame, dates: list[pd.Timestamp],
                   versions: dict[pd.Timestamp, Any], load: Callable[[str], AssessmentModel],
                   market_id: str, cfg: AssessmentConfig, config_id: str,
                   strategies: Strategies) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """(``instrument_scores`` rows, dates without a model) from the features of ``dates`` and
    the model version of each date (``versions[d]``: name, version and source, which ``load``
    turns into the model). The dates that share a version are scored together, with one
    predict call; scores and confidence are per date, so the rows equal scoring each date on
    its own."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    no_model = [d for d in dates if versions.get(d) is None]
    by_source: dict[str, list[pd.Timestamp]] = {}
    for d in dates:
        if versions.get(d) is not None:
            by_source.setdefault(str(versions[d]["source"]), []).append(d)
    feature_dates = pd.to_datetime(features["as_of_date"])
    frames = []
    for source, mine in by_source.items():
        rows = features[feature_dates.isin(mine)]
        if rows.empty:
            continue
        v = versions[mine[0]]
        model = load(source)
        outputs = model_outputs(rows, model)
        for sid, (strategy, _) in sorted(strategies.items()):
            frames.append(instrument_score_rows(
                rows, model, strategy_id=sid, market_id=market_id, config_id=config_id,
                model_id=f"{v['name']}/{v['version']}",
                fragility_penalty=strategy.fragility_penalty, config=cfg, outputs=outputs))
    if not frames:
        return empty_frame("instrument_scores"), no_model
    out = pd.concat(frames, ignore_index=True)
    # the order of scoring date by date: date, then strategy, then instrument and horizon
    out = out.sort_values(["as_of_date", "strategy_id"], kind="stable", ignore_index=True)
    return out, no_model


def score_decisions(out: pd.DataFrame, refs: dict[str, Any]) -> pd.DataFrame:
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
                     "input_refs": refs, "proposed_action": action})
    return pd.DataFrame(rows)
