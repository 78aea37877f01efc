"""Fragility alpha steps: the components and model features of each entity and date, the tail
outcomes the model learns, the point-in-time tail model's training and the ``fragility_alpha``
rows made with the version trained strictly before each date (docs/engines/fragility.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.fragility import (
    FragilityConfig,
    FragilityModel,
    FragilityTrainingError,
    fit_fragility_model,
    fragility_alpha_rows,
    fragility_components,
    index_levels,
    tail_outcomes,
    total_return_levels,
)
from prometheus_dagster.engines.fragility.components import (
    FLAG_FEATURES,
    feature_matrix,
    window_return,
)
from prometheus_dagster.steps.common import chunked

MODEL_TYPE = "fragility_tail"
MODEL_ARTIFACT = "fragility_model.json"
MODEL_ASSET = "fragility_models"
RET_63D = 63  # the ret_63d model feature: the compounded return of the last 63 sessions

COMPONENT_TABLES = ("stability_vectors", "fragility_measures", "soft_target_classes",
                    "volatility_daily", "profiles")


def alpha_inputs() -> Inputs:
    """What the fragility alpha of date D reads: D's stability vectors, measures, classes,
    volatility and profiles, the returns of the 63 sessions to D (with a margin of 5), the
    market's instruments and the tail model trained before D."""
    return Inputs(*(Read(t) for t in COMPONENT_TABLES),
                  Read("returns_daily", sessions=RET_63D + 5, note="ret_21d and ret_63d"),
                  Read("instruments", reference=True, note="the issuer of each equity"),
                  Read("models", model=True, asset=MODEL_ASSET))


def model_inputs(cfg: FragilityConfig) -> Inputs:
    """What the tail model of refit period P reads: every component table, the returns and
    the delistings dated before P, and the market index when outcomes are relative to it."""
    reads = [*(Read(t, history=True) for t in (*COMPONENT_TABLES, "returns_daily")),
             Read("corporate_actions", history=True, note="delistings"),
             Read("instruments", reference=True)]
    if cfg.tail_outcome.relative_to == "market":
        reads.append(Read("market_correlation_daily", history=True, note="index returns"))
    return Inputs(*reads)


def registered_name(market_id: str, cfg: FragilityConfig) -> str:
    return f"{market_id}.{cfg.model.model_id}"


# --- inputs -----------------------------------------------------------------------------------
def load_components(window: InputWindow, cfg: FragilityConfig) -> pd.DataFrame:
    """Fragility components and model features of every entity with a stability vector in
    ``window`` (its dates, or all history to its last date), from the stored engine tables,
    volatility, returns and profiles (nothing after the last date)."""
    stability = window.frame("stability_vectors")
    if stability.empty:
        return pd.DataFrame()
    measures = window.frame("fragility_measures")
    classes = window.frame("soft_target_classes", columns=["entity_type", "entity_id",
                                                           "as_of_date", "soft_target_class"])
    instruments = window.frame("instruments")
    equities = instruments[instruments["asset_class"] == "EQUITY"]
    issuer_of = equities.set_index("instrument_id")["issuer_id"]
    vol = window.frame("volatility_daily", columns=["instrument_id", "date", "vol_63d",
                                                    "drawdown"])
    rets = window.frame("returns_daily", columns=["instrument_id", "date", "ret_1d", "ret_21d"])
    rets = rets[rets["instrument_id"].isin(issuer_of.index)]
    ret_63d = window_return(rets, RET_63D)
    market = (rets[["instrument_id", "date", "ret_21d"]]
              .merge(ret_63d, on=["instrument_id", "date"], how="left")
              .merge(vol, on=["instrument_id", "date"], how="left"))
    market = market.assign(entity_id=market["instrument_id"].map(issuer_of),
                           as_of_date=pd.to_datetime(market["date"]))
    profiles = window.frame("profiles", columns=["issuer_id", "as_of_date", *FLAG_FEATURES])
    flags = profiles.rename(columns={"issuer_id": "entity_id"})
    return fragility_components(stability, measures, classes, market, flags, cfg)


def read_outcomes(window: InputWindow, cfg: FragilityConfig) -> dict[int, pd.DataFrame]:
    """horizon -> tail outcome of each equity and session whose whole horizon ends on or
    before the window's last date (prices, index and delistings dated up to it only)."""
    rets = window.frame("returns_daily", columns=["instrument_id", "date", "ret_1d"])
    actions = window.frame("corporate_actions", columns=["instrument_id", "date"],
                           action_type="DELISTING")
    delist = actions.groupby("instrument_id")["date"].min()
    levels = total_return_levels(rets)
    to = cfg.tail_outcome
    bench = None
    if to.relative_to == "market":
        idx = window.frame("market_correlation_daily", columns=["date", "index_ret_1d"])
        bench = index_levels(idx.set_index("date")["index_ret_1d"], levels.index)
    return {h: tail_outcomes(levels, delist, h, to.drawdown, to.count_delisting, bench)
            for h in cfg.horizons}


# --- the tail model ---------------------------------------------------------------------------
@dataclass
class TrainedModel:
    model: FragilityModel
    metrics: dict[str, float]


def train_fragility_model(reader: Any, market_id: str, valid_from: pd.Timestamp,
                          cfg: FragilityConfig) -> TrainedModel:
    """The tail model valid from ``valid_from``: fitted on issuer-days dated before it whose
    whole horizon ended before it, with its in-sample figures per horizon."""
    from sklearn.metrics import roc_auc_score

    end = valid_from - pd.Timedelta(days=1)
    window = InputWindow(reader, model_inputs(cfg), market_id, [end])
    components = load_components(window, cfg)
    if components.empty:
        raise FragilityTrainingError(f"no {market_id} stability vectors dated before "
                                     f"{valid_from.date()}")
    outcomes = read_outcomes(window, cfg)
    model = fit_fragility_model(components, outcomes, end, cfg)
    metrics: dict[str, float] = {}
    for h, m in model.horizons.items():
        train = components.merge(outcomes[h], on=["instrument_id", "as_of_date"])
        p = m.probability(feature_matrix(train, model.features))
        metrics.update({f"h{h}_rows": m.rows, f"h{h}_positives": m.positives,
                        f"h{h}_base_rate": m.base_rate})
        if len(set(train["tail_event"])) == 2:
            metrics[f"h{h}_in_sample_auc"] = float(roc_auc_score(train["tail_event"], p))
    return TrainedModel(model, metrics)


# model artifact URI -> the loaded model (a version never changes once registered)
_MODELS: dict[str, FragilityModel] = {}


def load_model(mlflow: Any, source: str) -> FragilityModel:
    if source not in _MODELS:
        path = mlflow.download(source)
        _MODELS[source] = FragilityModel.load(path if path.is_file() else path / MODEL_ARTIFACT)
    return _MODELS[source]


def models_for_dates(mlflow: Any, market_id: str, dates: list[pd.Timestamp],
                     cfg: FragilityConfig) -> dict[pd.Timestamp, tuple[str, FragilityModel]]:
    """date -> (model id, model) of the version trained strictly before it (dates without
    one are left out)."""
    versions = mlflow.resolve_model_versions(registered_name(market_id, cfg), dates)
    return {d: (f"{v['name']}/{v['version']}", load_model(mlflow, str(v["source"])))
            for d, v in versions.items() if v is not None}


# --- fragility alpha --------------------------------------------------------------------------
def compute_fragility_alpha(reader: Any, mlflow: Any, market_id: str, dates: list[pd.Timestamp],
                            cfg: FragilityConfig, config_id: str, log: Any = None
                            ) -> pd.DataFrame:
    """``fragility_alpha`` rows of ``dates`` (empty without stability vectors), a year of
    dates at a time; each date's components and scores depend on that date's rows only."""
    inputs = alpha_inputs()
    frames = []
    for chunk in chunked(sorted(dates), log, f"{market_id} fragility alpha"):
        components = load_components(InputWindow(reader, inputs, market_id, chunk), cfg)
        if components.empty:
            continue
        components = components[components["as_of_date"].isin(set(chunk))]
        models = models_for_dates(mlflow, market_id, chunk, cfg)
        frames.append(fragility_alpha_rows(components, models, cfg, config_id))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def dates_without_model(out: pd.DataFrame) -> list[pd.Timestamp]:
    """Dates whose issuers got no tail probability (no model trained before them)."""
    if out.empty:
        return []
    missing = out.loc[(out["entity_type"] == "ISSUER") & out["model_id"].isna(), "as_of_date"]
    return sorted(pd.Timestamp(d) for d in np.unique(missing))
