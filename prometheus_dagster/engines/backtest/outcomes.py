"""Realised outcomes of engine decisions (the ``decision_outcomes`` table).

A decision taken on date D holds a book of weights (instrument -> fraction of capital, negative
for shorts, the rest in cash at zero return). Its outcome over a horizon of h sessions uses only
the returns of the sessions D+1..D+h: each name is bought and held (its value compounds with its
own daily returns, no rebalancing), so the book value after k sessions is

    V_k = 1 + sum_i w_i * (prod_{s=1..k} (1 + r_i,s) - 1),   V_0 = 1.

``realised_return`` is V_h - 1, ``realised_pnl`` that return per unit of gross weight
(sum |w_i|), ``max_drawdown`` the worst V_k / max_{j<=k} V_j - 1 over k = 0..h.

The sessions are the dates of ``returns`` after D (of the decision's market when ``returns``
has a ``market_id`` column). A name without a return on one of them counts as flat that session.
When fewer than h sessions follow D in the data, the row covers those there are and is marked
``complete`` false; a decision with no session after D yields no row yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import empty_frame, validate_frame
from prometheus_dagster.engines.backtest.schemas import DECISION_OUTCOMES

__all__ = ["DEFAULT_HORIZONS", "decision_outcomes", "parse_weights"]

DEFAULT_HORIZONS = (1, 5, 21)
_DECISION_COLUMNS = ("decision_id", "engine_name", "market_id", "as_of_date", "weights")
_RETURN_COLUMNS = ("instrument_id", "date", "ret_1d")


def parse_weights(weights: Any, decision_id: str = "?") -> dict[str, float]:
    """A decision's weights (a mapping, a JSON object or a Series) as instrument -> float,
    without zero or missing weights."""
    if weights is None or (isinstance(weights, float) and np.isnan(weights)):
        return {}
    if isinstance(weights, str):
        try:
            weights = json.loads(weights)
        except json.JSONDecodeError as exc:
            raise DataSchemaError(f"decision {decision_id}: weights are not JSON: {exc}") from exc
    if isinstance(weights, pd.Series):
        weights = weights.to_dict()
    if not isinstance(weights, Mapping):
        raise DataSchemaError(f"decision {decision_id}: weights must map instrument -> weight, "
                              f"got {type(weights).__name__}")
    out: dict[str, float] = {}
    for name, w in weights.items():
        try:
            value = float(w)
        except (TypeError, ValueError) as exc:
            raise DataSchemaError(
                f"decision {decision_id}: weight of {name!r} is not a number: {w!r}") from exc
        if np.isfinite(value) and value != 0.0:
            out[str(name)] = value
    return out


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataSchemaError(f"{what} lacks column(s) {', '.join(missing)}")


def _return_panels(returns: pd.DataFrame) -> dict[Any, pd.DataFrame]:
    """Wide daily returns (sessions x instruments) per market (key None without a market)."""
    r = returns.assign(date=pd.to_datetime(returns["date"]).dt.normalize(),
                       ret_1d=pd.to_numeric(returns["ret_1d"], errors="coerce"))
    key = [*(["market_id"] if "market_id" in r.columns else []), "instrument_id", "date"]
    dup = r.duplicated(key, keep=False)
    if dup.any():
        first = r.loc[dup, key].iloc[0]
        raise DataSchemaError(f"returns: {int(dup.sum())} rows share ({', '.join(key)}), "
                              f"first {first['instrument_id']} on {first['date'].date()}")
    groups = r.groupby("market_id") if "market_id" in r.columns else [(None, r)]
    return {m: g.pivot(index="date", columns="instrument_id", values="ret_1d").sort_index()
            for m, g in groups}


def _paths(panel: pd.DataFrame, as_of: pd.Timestamp, weights: dict[str, float],
           steps: int) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Book values V_0..V_k (k <= steps sessions after ``as_of``) and the sessions used."""
    after = panel.loc[panel.index > as_of].iloc[:steps]
    names = list(weights)
    block = after.reindex(columns=names).fillna(0.0).to_numpy(dtype=float)
    w = np.array([weights[n] for n in names], dtype=float)
    growth = np.cumprod(1.0 + block, axis=0) - 1.0 if len(names) else np.zeros((len(after), 0))
    values = np.concatenate([[1.0], 1.0 + growth @ w])
    return values, pd.DatetimeIndex(after.index)


def decision_outcomes(decisions: pd.DataFrame, returns: pd.DataFrame,
                      horizons: Iterable[int] = DEFAULT_HORIZONS) -> pd.DataFrame:
    """Rows of ``decision_outcomes``, one per decision and horizon with at least one session
    after the decision date (see the module docstring). ``decisions``: decision_id,
    engine_name, market_id, as_of_date, weights (instrument -> weight). ``returns``:
    instrument_id, date, ret_1d (optionally market_id)."""
    hs = sorted({int(h) for h in horizons})
    if not hs or hs[0] < 1:
        raise DataSchemaError(f"horizons must be positive session counts, got {list(horizons)}")
    _require(decisions, _DECISION_COLUMNS, "decisions")
    _require(returns, _RETURN_COLUMNS, "returns")
    if decisions.empty:
        return empty_frame(DECISION_OUTCOMES)
    panels = _return_panels(returns)
    rows: list[dict[str, Any]] = []
    for dec in decisions.itertuples(index=False):
        market = dec.market_id if None not in panels else None
        panel = panels.get(market)
        if panel is None:
            continue
        as_of = pd.Timestamp(dec.as_of_date).normalize()
        weights = parse_weights(dec.weights, str(dec.decision_id))
        values, sessions = _paths(panel, as_of, weights, hs[-1])
        if len(sessions) == 0:
            continue
        gross = float(sum(abs(w) for w in weights.values()))
        for h in hs:
            k = min(h, len(sessions))
            path = values[: k + 1]
            ret = float(path[-1] - 1.0)
            dd = path / np.maximum.accumulate(path) - 1.0  # the peak is >= V_0 = 1
            rows.append({
                "decision_id": dec.decision_id, "engine_name": dec.engine_name,
                "market_id": dec.market_id, "as_of_date": as_of, "horizon_days": h,
                "end_date": sessions[k - 1], "sessions": k, "realised_return": ret,
                "realised_pnl": ret / gross if gross > 0 else None,
                "max_drawdown": float(dd.min()),
                "n_names": len(weights), "complete": k == h,
            })
    if not rows:
        return empty_frame(DECISION_OUTCOMES)
    return validate_frame(DECISION_OUTCOMES, pd.DataFrame(rows))
