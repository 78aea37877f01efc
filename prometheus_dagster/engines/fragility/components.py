"""Fragility-alpha components per entity and date, each in [0, 1]
(docs/engines/fragility.md):

* ``weak_profile``: profile weakness (1 - the stability vector's fundamental component);
* ``instability``: 1 - stability score;
* ``high_fragility``: from the scenario losses;
* ``complacent_pricing``: weakness the market has not priced: weak_profile x (1 - priced_in),
  priced_in = mean cross-sectional rank (issuers of the date) of the measures that would show
  it: 63-session volatility, drawdown depth and the 63-session loss. Issuers only.

``soft_target_score`` is the mean of the ``aligned`` largest components (missing ones count
0), so a single high component scores at most 1 / aligned: the score is high only when
several align."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_dagster.engines.fragility.config import COMPONENTS, FragilityConfig

KEYS = ["entity_type", "entity_id", "as_of_date"]
MARKET_MEASURES = ("vol_63d", "drawdown", "ret_21d", "ret_63d")
FLAG_FEATURES = ("leverage_score", "earnings_quality_score", "liquidity_risk")
_PRICED_IN_SIGN = {"vol_63d": 1.0, "drawdown": -1.0, "ret_63d": -1.0}


def soft_target_score(components: pd.DataFrame, aligned: int) -> pd.Series:
    """Mean of the ``aligned`` largest of the component columns per row (NaN counts 0)."""
    values = np.nan_to_num(components[list(COMPONENTS)].to_numpy(dtype=float), nan=0.0)
    top = -np.sort(-values, axis=1)[:, :aligned]
    return pd.Series(top.sum(axis=1) / aligned, index=components.index)


def priced_in(measures: pd.DataFrame, config: FragilityConfig) -> pd.Series:
    """Mean percentile rank, within each date, of the measures that show priced-in weakness
    (higher volatility, deeper drawdown, larger loss -> more priced in)."""
    parts = []
    for m in config.components.priced_in_measures:
        signed = _PRICED_IN_SIGN[m] * measures[m].astype(float)
        parts.append(signed.groupby(measures["as_of_date"]).rank(pct=True))
    return pd.concat(parts, axis=1).mean(axis=1, skipna=True)


def fragility_components(stability: pd.DataFrame, measures: pd.DataFrame,
                         soft_classes: pd.DataFrame, market: pd.DataFrame,
                         flags: pd.DataFrame, config: FragilityConfig) -> pd.DataFrame:
    """One row per entity and date with a stability vector: the four components, the score,
    the soft-target class and every model feature (``ModelSettings.features``).

    ``market``: entity_id (issuer), as_of_date, instrument_id and the market measures of its
    instrument; ``flags``: entity_id (issuer), as_of_date and the profile risk flags."""
    def on_keys(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        if frame is None or frame.empty:
            return pd.DataFrame(columns=[*KEYS, *cols])
        out = frame.copy()
        if "entity_type" not in out:
            out["entity_type"] = "ISSUER"
        out["as_of_date"] = pd.to_datetime(out["as_of_date"])
        return out[[*KEYS, *cols]]

    base = stability.copy()
    base["as_of_date"] = pd.to_datetime(base["as_of_date"])
    out = (base.merge(on_keys(measures, ["high_fragility", "expected_shortfall",
                                         "worst_case_loss"]), on=KEYS, how="left")
           .merge(on_keys(soft_classes, ["soft_target_class"]), on=KEYS, how="left")
           .merge(on_keys(market, ["instrument_id", *MARKET_MEASURES]), on=KEYS, how="left")
           .merge(on_keys(flags, list(FLAG_FEATURES)), on=KEYS, how="left"))
    for c in ("high_fragility", "expected_shortfall", "worst_case_loss", *MARKET_MEASURES,
              *FLAG_FEATURES):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    out["soft_target_class"] = out["soft_target_class"].fillna("NONE")
    out["weak_profile"] = (1.0 - out["fundamental"].astype(float)).clip(0, 1)
    out["instability"] = (1.0 - out["stability_score"].astype(float)).clip(0, 1)
    issuers = out["entity_type"] == "ISSUER"
    complacent = pd.Series(np.nan, index=out.index)
    if issuers.any():
        pin = priced_in(out[issuers], config)
        complacent[issuers] = (out.loc[issuers, "weak_profile"] * (1.0 - pin)).clip(0, 1)
    out["complacent_pricing"] = complacent
    out["soft_target_score"] = soft_target_score(out, config.components.aligned)
    return out.sort_values(["as_of_date", "entity_type", "entity_id"], ignore_index=True)


def window_return(returns: pd.DataFrame, sessions: int) -> pd.DataFrame:
    """Long rows (instrument_id, date, ret_<sessions>d): the compounded return of the last
    ``sessions`` rows of ``ret_1d`` (NaN when any is missing). Each window is summed on its
    own, so a value never depends on how much history was read before it."""
    from numpy.lib.stride_tricks import sliding_window_view

    name = f"ret_{sessions}d"
    wide = returns.pivot_table(index="date", columns="instrument_id", values="ret_1d")
    if len(wide) < sessions:
        return pd.DataFrame(columns=["instrument_id", "date", name])
    logs = np.log1p(wide.to_numpy(dtype=float))
    sums = sliding_window_view(logs, sessions, axis=0).sum(axis=-1)
    out = pd.DataFrame(np.expm1(sums), index=wide.index[sessions - 1:], columns=wide.columns)
    return out.stack().rename(name).reset_index()


def feature_matrix(components: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    """The model's feature columns as a float matrix (missing columns are NaN)."""
    cols = [components[f].astype(float).to_numpy() if f in components
            else np.full(len(components), np.nan) for f in features]
    return np.column_stack(cols) if cols else np.empty((len(components), 0))
