"""Rows of ``risk_factor_covariance`` and ``risk_specific`` for fitted models, and the model
back from those rows."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.risk.model import FactorRiskModel, factor_order
from prometheus_dagster.engines.risk.schemas import RISK_FACTOR_COVARIANCE, RISK_SPECIFIC


def _model_notes(model: FactorRiskModel) -> dict[str, Any]:
    return {k: v for k, v in model.notes.items() if k != "instruments"}


def risk_model_frames(models: list[FactorRiskModel],
                      config_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``risk_factor_covariance`` rows, ``risk_specific`` rows), validated. Model-level notes
    go on every factor row of the date; per-instrument notes on the instrument's row."""
    factor_rows: list[dict[str, Any]] = []
    specific_rows: list[dict[str, Any]] = []
    for m in models:
        notes = _model_notes(m)
        for a, fa in enumerate(m.factor_ids):
            factor_rows.append({
                "market_id": m.market_id, "as_of_date": m.as_of_date, "factor_id": fa,
                "covariances": {fb: float(m.factor_cov[a, b]) for b, fb in enumerate(m.factor_ids)},
                "factor_vol": float(np.sqrt(m.factor_cov[a, a])), "notes": notes,
                "config_id": config_id,
            })
        total_vols = m.total_vols()
        instrument_notes = m.notes.get("instruments", {})
        for p, inst in enumerate(m.instrument_ids):
            specific_rows.append({
                "market_id": m.market_id, "as_of_date": m.as_of_date, "instrument_id": inst,
                "exposures": dict(zip(m.factor_ids, m.exposures[p].tolist(), strict=True)),
                "specific_vol": float(np.sqrt(m.specific_var[p])),
                "total_vol": float(total_vols[p]), "notes": instrument_notes.get(inst),
                "config_id": config_id,
            })
    factor_df = pd.DataFrame(factor_rows, columns=RISK_FACTOR_COVARIANCE.column_names)
    specific_df = pd.DataFrame(specific_rows, columns=RISK_SPECIFIC.column_names)
    return (validate_frame(RISK_FACTOR_COVARIANCE, factor_df),
            validate_frame(RISK_SPECIFIC, specific_df))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _one_key(frame: pd.DataFrame, table: str) -> tuple[str, pd.Timestamp]:
    keys = frame[["market_id", "as_of_date"]].drop_duplicates()
    if len(keys) != 1:
        raise DataSchemaError(f"{table}: expected the rows of one market and date, got "
                              f"{len(keys)} (market_id, as_of_date) pairs")
    market, day = keys.iloc[0]
    return str(market), pd.Timestamp(day).normalize()


def risk_model_from_frames(factor_rows: pd.DataFrame,
                           specific_rows: pd.DataFrame) -> FactorRiskModel:
    """The model of one market and date from its rows of the two tables (as written or as
    read back from the warehouse)."""
    factor_rows = validate_frame(RISK_FACTOR_COVARIANCE, factor_rows)
    specific_rows = validate_frame(RISK_SPECIFIC, specific_rows)
    key = _one_key(factor_rows, RISK_FACTOR_COVARIANCE.name)
    if _one_key(specific_rows, RISK_SPECIFIC.name) != key:
        raise DataSchemaError("risk_factor_covariance and risk_specific rows are of different "
                              "markets or dates")
    factor_ids = factor_order(list(factor_rows["factor_id"]))
    covs = {r.factor_id: _json(r.covariances) for r in factor_rows.itertuples()}
    factor_cov = np.array([[covs[a][b] for b in factor_ids] for a in factor_ids], dtype=float)

    specific_rows = specific_rows.sort_values("instrument_id", kind="stable")
    instrument_ids = specific_rows["instrument_id"].tolist()
    exposure_maps = [_json(v) for v in specific_rows["exposures"]]
    exposures = np.array([[e[f] for f in factor_ids] for e in exposure_maps],
                         dtype=float).reshape(len(instrument_ids), len(factor_ids))
    specific_var = specific_rows["specific_vol"].to_numpy(dtype=float) ** 2

    first_notes = factor_rows["notes"].iloc[0]
    notes = dict(_json(first_notes)) if first_notes is not None else {}
    notes["instruments"] = {i: n for i, n in zip(instrument_ids, specific_rows["notes"],
                                                 strict=True) if n}
    return FactorRiskModel(key[0], key[1], instrument_ids, factor_ids, exposures, factor_cov,
                           specific_var, notes)
