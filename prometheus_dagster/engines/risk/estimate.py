"""Point-in-time estimation of the factor risk model (docs/engines/risk.md).

For a market and date D, using only rows dated on or before D:

* B: each instrument's exposures dated D (a missing exposure takes the cross-sectional median
  of the instruments with one on D, and a note).
* F: EWMA covariance of the last ``factor_window`` sessions of factor returns (complete
  sessions only), shrunk toward its diagonal, eigenvalues floored, times ``annualisation``.
* d: EWMA variance of each instrument's residuals r_t - b_D' f_t over the last
  ``specific_window`` sessions, with D's exposures applied to the whole window; shrunk toward
  the cross-sectional median, annualised, floored at ``min_specific_vol`` squared. Fewer than
  ``min_history`` residuals: the median, and a note.

Every window is computed from its own slice of the inputs, never from running sums, so a
backfill over many dates gives bit-identical results to one call per date.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError, PrometheusError
from prometheus_dagster.engines.risk.config import RiskModelConfig
from prometheus_dagster.engines.risk.model import FactorRiskModel, RiskModelInputs, factor_order
from prometheus_dagster.engines.risk.stats import (
    ewma_weights,
    floor_eigenvalues,
    shrink_to_diagonal,
    weighted_column_variance,
    weighted_covariance,
)

log = logging.getLogger(__name__)

_COLUMNS = {
    "returns": ("instrument_id", "date", "ret_1d"),
    "factor_returns": ("factor_id", "date", "value"),
    "exposures": ("instrument_id", "date", "factor_id", "exposure"),
}


class RiskModelError(PrometheusError):
    """The risk model cannot be estimated for a date from the data given."""


class InsufficientHistoryError(RiskModelError):
    """Too little history on or before the date (skipped by backfills)."""


def _long(frame: pd.DataFrame, name: str, end: pd.Timestamp) -> pd.DataFrame:
    cols = _COLUMNS[name]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataSchemaError(f"risk model input {name}: missing column(s) {', '.join(missing)}")
    out = frame.loc[:, list(cols)].copy()
    out["date"] = pd.to_datetime(out["date"]).dt.normalize()
    out = out[out["date"] <= end]
    value = cols[-1]
    try:
        out[value] = pd.to_numeric(out[value], errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise DataSchemaError(f"risk model input {name}, column {value!r}: {exc}") from None
    key = [c for c in cols if c != value]
    dup = out.duplicated(key, keep=False)
    if dup.any():
        first = out.loc[dup, key].iloc[0].to_dict()
        raise DataSchemaError(f"risk model input {name}: duplicate key {first}")
    return out


class _Panel:
    """The inputs up to ``end``, pivoted once: factor returns (sessions x factors), returns
    (dates x instruments) and the exposure rows of each date."""

    def __init__(self, inputs: RiskModelInputs, end: pd.Timestamp) -> None:
        fr = _long(inputs.factor_returns, "factor_returns", end)
        self.factors = fr.pivot(index="date", columns="factor_id", values="value").sort_index()
        ret = _long(inputs.returns, "returns", end).dropna(subset=["ret_1d"])
        self.returns = ret.pivot(index="date", columns="instrument_id",
                                 values="ret_1d").sort_index()
        self.first_return = ret.groupby("instrument_id")["date"].min()
        ex = _long(inputs.exposures, "exposures", end)
        self.exposures = {d: g for d, g in ex.groupby("date", sort=True)}


def _estimate(panel: _Panel, market_id: str, as_of: pd.Timestamp, config: RiskModelConfig,
              instrument_ids: Iterable[str] | None) -> FactorRiskModel:
    day = str(as_of.date())
    end = int(panel.factors.index.searchsorted(as_of, side="right"))
    fwin = panel.factors.iloc[max(0, end - config.factor_window):end]
    exp_rows = panel.exposures.get(as_of)
    if exp_rows is None or exp_rows["exposure"].notna().sum() == 0:
        raise InsufficientHistoryError(f"risk model {market_id} {day}: no exposures dated {day}")
    exp_wide = exp_rows.pivot(index="instrument_id", columns="factor_id", values="exposure")

    in_window = set(fwin.columns[fwin.notna().any()])
    on_date = set(exp_wide.columns[exp_wide.notna().any()])
    factor_ids = factor_order(in_window & on_date)
    if not factor_ids:
        raise InsufficientHistoryError(f"risk model {market_id} {day}: no factor has both "
                                       "returns in the window and exposures on the date")
    dropped = {f: "no exposures on the date" if f in in_window
               else "no factor returns in the window"
               for f in factor_order((in_window | on_date) - set(factor_ids))}

    # F: complete sessions of the window, weighted by their age within the window.
    fx = fwin[factor_ids].to_numpy(dtype=float)
    complete = ~np.isnan(fx).any(axis=1)
    n_factor_obs = int(complete.sum())
    if n_factor_obs < config.min_factor_history:
        raise InsufficientHistoryError(
            f"risk model {market_id} {day}: {n_factor_obs} complete factor-return sessions, "
            f"min_factor_history is {config.min_factor_history}")
    weights = ewma_weights(len(fx), config.factor_half_life)[complete]
    f_daily = weighted_covariance(np.ascontiguousarray(fx[complete]), weights, config.demean)
    f_daily, psd_adjusted = floor_eigenvalues(shrink_to_diagonal(f_daily, config.shrinkage),
                                              config.eigenvalue_floor)
    factor_cov = f_daily * config.annualisation

    # Universe and exclusions.
    if instrument_ids is None:
        on_day = (panel.returns.loc[as_of].dropna().index if as_of in panel.returns.index
                  else pd.Index([]))
        candidates = set(exp_wide.index) | set(on_day)
    else:
        candidates = set(instrument_ids)
    first = panel.first_return.reindex(sorted(candidates))
    excluded = {i: "no returns on or before the date" for i in first.index[first.isna()]}
    universe = [i for i in first.index if i not in excluded]
    if not universe:
        raise RiskModelError(f"risk model {market_id} {day}: no instrument with returns")

    # B: D's exposures, the cross-sectional median where one is missing.
    cross_section = exp_wide[factor_ids].to_numpy(dtype=float)
    median_exposure = np.nanmedian(cross_section, axis=0)
    b = exp_wide.reindex(index=universe, columns=factor_ids).to_numpy(dtype=float)
    missing_b = np.isnan(b)
    b = np.where(missing_b, median_exposure[None, :], b)
    b = np.ascontiguousarray(b)

    # d: residuals of the last specific_window sessions under D's exposures.
    swin = panel.factors.iloc[max(0, end - config.specific_window):end][factor_ids]
    sf = swin.to_numpy(dtype=float)
    r = panel.returns.reindex(index=swin.index, columns=universe).to_numpy(dtype=float)
    resid = np.ascontiguousarray(r - sf @ b.T)  # NaN where the return or a factor is missing
    var, count = weighted_column_variance(
        resid, ewma_weights(len(sf), config.specific_half_life), config.demean)
    own = count >= config.min_history
    if not own.any():
        raise InsufficientHistoryError(
            f"risk model {market_id} {day}: no instrument has min_history "
            f"({config.min_history}) residuals in the last {config.specific_window} sessions")
    median_var = float(np.median(var[own]))
    s = config.specific_shrinkage
    d_daily = np.where(own, (1.0 - s) * var + s * median_var, median_var)
    specific_var = np.maximum(d_daily * config.annualisation, config.min_specific_vol ** 2)

    instrument_notes: dict[str, str] = {}
    for p, inst in enumerate(universe):
        parts = []
        if missing_b[p].any():
            filled = [f for f, m in zip(factor_ids, missing_b[p], strict=True) if m]
            parts.append(f"median exposure for {', '.join(filled)} (none dated {day})")
        if not own[p]:
            parts.append(f"median specific variance ({int(count[p])} residuals, "
                         f"min_history {config.min_history})")
        if parts:
            instrument_notes[inst] = "; ".join(parts)

    notes = {
        "factor_sessions": n_factor_obs,
        "factor_window_start": str(fwin.index[0].date()),
        "last_session": str(fwin.index[-1].date()),
        "specific_sessions": len(swin),
        "psd_adjusted": psd_adjusted,
        "dropped_factors": dropped,
        "excluded": excluded,
        "instruments": instrument_notes,
    }
    return FactorRiskModel(market_id, as_of, universe, factor_ids, b, factor_cov,
                           specific_var, notes)


def estimate_risk_model(market_id: str, as_of_date: pd.Timestamp, inputs: RiskModelInputs,
                        config: RiskModelConfig,
                        instrument_ids: Iterable[str] | None = None) -> FactorRiskModel:
    """The risk model of ``market_id`` as of ``as_of_date`` from rows dated on or before it.

    The universe is ``instrument_ids`` or, by default, the instruments with an exposure or a
    return dated D; those without any return on or before D are excluded and listed in
    ``notes["excluded"]``. Raises InsufficientHistoryError when D has no exposures or too few
    factor-return sessions."""
    as_of = pd.Timestamp(as_of_date).normalize()
    return _estimate(_Panel(inputs, as_of), market_id, as_of, config, instrument_ids)


def estimate_risk_models(market_id: str, dates: Iterable[pd.Timestamp], inputs: RiskModelInputs,
                         config: RiskModelConfig,
                         instrument_ids: Iterable[str] | None = None) -> list[FactorRiskModel]:
    """Backfill: one model per date (sorted, distinct), bit-identical to
    :func:`estimate_risk_model` for each. Dates without enough history are skipped with a
    warning (a per-date call raises InsufficientHistoryError for them)."""
    days = sorted({pd.Timestamp(d).normalize() for d in dates})
    if not days:
        return []
    universe = None if instrument_ids is None else list(instrument_ids)
    panel = _Panel(inputs, days[-1])
    models = []
    for day in days:
        try:
            models.append(_estimate(panel, market_id, day, config, universe))
        except InsufficientHistoryError as exc:
            log.warning("skipped: %s", exc)
    return models
