"""Regime steps: what a region's regime reads (its declaration), the reads, the prototype fit of a
refit period and the daily regimes made with the version trained strictly before each date.
Shared by the daily chain (``assets/regime.py``, ``assets/regime_models.py``) and the backtest.

A region is a market (its own internals, and the index instrument's returns when its internals
carry no index return) or GLOBAL (the internals of each member market). Both read the macro
series their config maps, from GLOBAL's ``macro_time_series``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

import prometheus_dagster.engines.features  # noqa: F401  (declares internals and returns)
from prometheus_dagster.core.calendars import GLOBAL, global_members, markets_running
from prometheus_dagster.core.config import LoadedConfig, load_engine_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.engines.regime import (
    RegimeConfig,
    RegimeModel,
    RegimeTrainingError,
    RegionInputs,
    assign_regimes,
    combine_internals,
    compute_region_features,
    fit_regime_model,
)
from prometheus_dagster.engines.regime.config import RegionConfig

MODEL_TYPE = "regime_prototypes"
MODEL_ARTIFACT = "regime_model.json"
MODEL_ASSET = "regime_models"
INTERNALS = ["date", "index_ret_1d", "avg_pairwise_corr_63d", "dispersion_1d", "breadth_1d"]
_MODELS: dict[str, RegimeModel] = {}  # parsed prototypes by artifact source (immutable)


def regime_config() -> LoadedConfig:
    return load_engine_config("regime")


def regime_regions(data_markets: list[str]) -> dict[str, RegionConfig]:
    """The regions with regimes, derived from configs/markets.yaml: each ingested market with
    ``runs: regimes`` or more (its macro mapping from ``regions:`` in the regime config, none
    when it has no entry there), and GLOBAL over the ingested ``global_member`` markets."""
    cfg = regime_config().typed(RegimeConfig)
    listed = cfg.regions.get(GLOBAL, RegionConfig()).members
    if listed:
        raise ConfigError("configs/engines/regime.yaml: regions.GLOBAL.members is derived from "
                          "'global_member: true' in configs/markets.yaml; remove it "
                          f"(found {list(listed)})")
    out = {m: cfg.regions.get(m, RegionConfig()) for m in markets_running("regimes")
           if m in data_markets}
    members = tuple(m for m in global_members() if m in data_markets)
    if members:
        out[GLOBAL] = cfg.regions.get(GLOBAL, RegionConfig()).model_copy(
            update={"members": members})
    return out


def registered_name(region: str, cfg: RegimeConfig) -> str:
    return f"{region}.{cfg.model.model_id}"


def macro_series(rc: RegionConfig) -> list[str]:
    return sorted({s for candidates in rc.macro.values() for s in candidates})


def region_inputs(region: str, rc: RegionConfig) -> Inputs:
    """What a region's features of date D read: all history up to D of its internals (GLOBAL:
    each member's), of the mapped macro series and, for a market, of its index instrument's
    returns (the configured ``index_instrument``, else the market's INDEX instrument looked up
    in ``instruments``; used when configured or when the internals carry no index return, read
    in every case so that what a date may draw on is one declared set)."""
    reads = [Read("market_correlation_daily", history=True, members=region == GLOBAL)]
    if region != GLOBAL:
        reads.append(Read("returns_daily", history=True, note="the index instrument's returns"))
        if rc.index_instrument is None:
            reads.append(Read("instruments", reference=True,
                              note="the market's INDEX instrument"))
    if macro_series(rc):
        reads.append(Read("macro_time_series", history=True, market=GLOBAL))
    return Inputs(*reads)


def regimes_inputs(region: str, rc: RegionConfig) -> Inputs:
    """What the regimes of date D read: the region's inputs and the prototypes valid for D."""
    return region_inputs(region, rc) + Inputs(Read("models", model=True, asset=MODEL_ASSET))


def read_region_inputs(reader: Any, region: str, rc: RegionConfig,
                       end: pd.Timestamp) -> RegionInputs:
    """A region's internals and mapped macro series dated on or before ``end``."""
    window = InputWindow(reader, region_inputs(region, rc), region, [end], members=rc.members)
    if region == GLOBAL:
        internals = combine_internals({
            m: window.frame("market_correlation_daily", market=m, columns=INTERNALS)
            for m in rc.members})
    else:
        internals = with_index_instrument(
            window, rc, window.frame("market_correlation_daily", columns=INTERNALS))
    series = macro_series(rc)
    macro = window.frame("macro_time_series", market=GLOBAL, series_id=series).sort_values(
        ["series_id", "date"], ignore_index=True) if series else \
        pd.DataFrame(columns=["series_id", "date", "value", "frequency"])
    return RegionInputs(region, internals, macro, rc.macro)


def with_index_instrument(window: InputWindow, rc: RegionConfig,
                          internals: pd.DataFrame) -> pd.DataFrame:
    """Internals whose index return is the configured index instrument's return, or the
    market's INDEX instrument's when the market has no index of its own (index-only data)."""
    has_index = "index_ret_1d" in internals and internals["index_ret_1d"].notna().any()
    instrument = rc.index_instrument
    if instrument is None:
        found = window.frame("instruments", columns=["instrument_id"], asset_class="INDEX")
        instrument = str(found["instrument_id"].iloc[0]) if len(found) else None
    # instrument None reads no rows (IS NULL on a key column)
    rets = window.frame("returns_daily", columns=["date", "ret_1d"], instrument_id=instrument)
    if instrument is None or (rc.index_instrument is None and has_index):
        return internals
    rets = rets.sort_values("date", ignore_index=True).rename(columns={"ret_1d": "index_ret_1d"})
    rest = internals.drop(columns=["index_ret_1d"], errors="ignore")
    return rets.merge(rest, on="date", how="outer").sort_values("date", ignore_index=True)


@dataclass(frozen=True)
class FittedPrototypes:
    """The prototypes of a refit period, the features they were fitted on and their inputs."""

    model: RegimeModel
    features: pd.DataFrame
    inputs: RegionInputs
    trained_through: pd.Timestamp


def fit_prototypes(reader: Any, region: str, rc: RegionConfig, valid_from: pd.Timestamp,
                   cfg: RegimeConfig) -> FittedPrototypes:
    """The prototypes valid from ``valid_from``: fitted on the features dated before it (the
    last ``refit.max_history_years`` of them)."""
    inputs = read_region_inputs(reader, region, rc, valid_from - pd.Timedelta(days=1))
    features = compute_region_features(inputs, cfg)
    if cfg.refit.max_history_years:
        features = features[features.index >= valid_from
                            - pd.DateOffset(years=cfg.refit.max_history_years)]
    if features.empty:
        raise RegimeTrainingError(f"no {region} internals dated before {valid_from.date()}")
    cut = features.index[-1]
    return FittedPrototypes(fit_regime_model(features, cut, cfg), features, inputs, cut)


def load_model(mlflow: Any, source: str) -> RegimeModel:
    """The prototypes stored at ``source`` (parsed once per process)."""
    if source not in _MODELS:
        path = mlflow.download(source)
        _MODELS[source] = RegimeModel.load(path if path.is_file() else path / MODEL_ARTIFACT)
    return _MODELS[source]


def compute_regimes(reader: Any, mlflow: Any, region: str, rc: RegionConfig,
                    dates: list[pd.Timestamp], cfg: RegimeConfig, config_id: str,
                    ) -> tuple[pd.DataFrame, pd.DataFrame, RegionInputs]:
    """(regimes rows of ``dates``, the whole modelled path up to the last date, the inputs).

    The smoothed label of a date depends on the raw labels before it, so the path is rebuilt
    from the first date any version covers; each date uses its own version (trained strictly
    before it), which makes a single-run backfill and per-date runs agree exactly. A range
    reads its inputs once (up to its last date) and resolves every version at once."""
    inputs = read_region_inputs(reader, region, rc, dates[-1])
    features = compute_region_features(inputs, cfg)
    features = features[features.index <= dates[-1]]
    versions = mlflow.resolve_model_versions(registered_name(region, cfg), list(features.index))
    models = {d: (f"{v['name']}/{v['version']}", load_model(mlflow, str(v["source"])))
              for d, v in versions.items() if v is not None}
    path = assign_regimes(region, features, models, cfg, config_id)
    if path.empty:
        return path, path, inputs
    wanted = set(pd.DatetimeIndex(dates))
    out = path[path["as_of_date"].isin(wanted)].reset_index(drop=True)
    return out, path, inputs


def regime_refs(region: str, rc: RegionConfig, inputs: RegionInputs, cfg: RegimeConfig
                ) -> dict:
    """The ``input_refs`` of a region's regime decisions."""
    return {**regimes_inputs(region, rc).refs(region, rc.members),
            "members": list(rc.members) or [region],
            "macro_series": sorted(set(inputs.macro["series_id"].astype(str)))
            if len(inputs.macro) else [], "window": cfg.window}


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


def imputed_features(out: pd.DataFrame) -> dict[str, int]:
    """Model feature -> number of dates on which it was missing (and imputed)."""
    counts: dict[str, int] = {}
    for diag in out.get("diagnostics", []):
        for f in diag.get("missing_features", []):
            counts[f] = counts.get(f, 0) + 1
    return counts


def history_assignments(region: str, fitted: FittedPrototypes, cfg: RegimeConfig,
                        config_id: str) -> pd.DataFrame:
    """The in-sample regime path of the training features (for the refit's figure)."""
    return assign_regimes(region, fitted.features,
                          {d: ("in-sample", fitted.model) for d in fitted.features.index},
                          cfg, config_id)


def index_returns(inputs: RegionInputs) -> pd.Series:
    """The region's index return by date (empty without one), for figures."""
    if "index_ret_1d" not in inputs.internals:
        return pd.Series(dtype=float)
    return inputs.internals.set_index("date")["index_ret_1d"]
