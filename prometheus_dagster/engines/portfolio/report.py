"""The risk report of one portfolio on one date (docs/engines/portfolio.md): exposures by
factor, sector, country, currency and fragility bucket, parametric and scenario VaR / ES,
scenario P&L per scenario set and the portfolio's stability.

Conventions:

* VaR and ES are positive losses. Parametric (normal, zero mean, the factor model's
  annualised vol scaled by sqrt(h / 252)): VaR = z_c s, ES = s phi(z_c) / (1 - c).
* Scenario P&L of a path = sum_i w_i * cumulative_return_i over the held names with a row in
  the path; a held name without one contributes 0 and is counted per set
  (``names_without_path``). Empirical VaR_c = -q, q the k-th smallest P&L with
  k = ceil((1 - c) n) (at least 1): numpy's ``inverted_cdf`` quantile of level 1 - c, with
  (1 - c) n rounded to 9 decimals so that 5% of 100 paths is exactly the 5th. ES_c = minus
  the mean of the P&Ls at or below -VaR_c. ``worst`` is the smallest P&L (signed).
* Fragility bucket of a name (``fragility_bucket``): the more severe of its soft-target class
  (NONE, WATCHLIST, SOFT_TARGET) and its fragility class mapped onto the same scale
  (NONE -> NONE, WATCHLIST -> WATCHLIST, SHORT_CANDIDATE and CRISIS -> SOFT_TARGET);
  UNKNOWN when it has neither.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import validate_frame
from prometheus_dagster.engines.portfolio.schemas import PORTFOLIO_RISK_REPORTS
from prometheus_dagster.engines.risk.model import FactorRiskModel
from prometheus_dagster.engines.strategy.config import TRADING_DAYS
from prometheus_dagster.engines.strategy.loader import portfolio_id

UNKNOWN = "UNKNOWN"
BUCKETS: tuple[str, ...] = ("NONE", "WATCHLIST", "SOFT_TARGET")
_FRAGILITY_TO_BUCKET = {"NONE": "NONE", "WATCHLIST": "WATCHLIST",
                        "SHORT_CANDIDATE": "SOFT_TARGET", "CRISIS": "SOFT_TARGET"}
SCENARIO_COLUMNS: tuple[str, ...] = ("set_id", "path_id", "instrument_id", "cumulative_return")


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def fragility_bucket(soft_target_class: str | None, fragility_class: str | None = None) -> str:
    """NONE, WATCHLIST, SOFT_TARGET or UNKNOWN (see the module docstring)."""
    levels = []
    if not _missing(soft_target_class) and soft_target_class in BUCKETS:
        levels.append(BUCKETS.index(str(soft_target_class)))
    if not _missing(fragility_class) and fragility_class in _FRAGILITY_TO_BUCKET:
        levels.append(BUCKETS.index(_FRAGILITY_TO_BUCKET[str(fragility_class)]))
    return BUCKETS[max(levels)] if levels else UNKNOWN


def level_key(confidence: float) -> str:
    """0.95 -> '95%', 0.975 -> '97.5%'."""
    return f"{confidence * 100:g}%"


def parametric_var_es(volatility: float, confidence: float, horizon_days: int
                      ) -> tuple[float, float]:
    """Normal, zero-mean VaR and ES at ``confidence`` over ``horizon_days`` sessions of a
    portfolio with annualised ``volatility``."""
    scale = volatility * math.sqrt(horizon_days / TRADING_DAYS)
    z = float(norm.ppf(confidence))
    return z * scale, scale * float(norm.pdf(z)) / (1.0 - confidence)


def empirical_var_es(pnl: np.ndarray, confidence: float) -> tuple[float, float]:
    """Empirical VaR and ES (positive losses) of the P&L sample (see the module docstring)."""
    x = np.sort(np.asarray(pnl, dtype=float))
    if x.size == 0:
        return math.nan, math.nan
    k = max(1, math.ceil(round((1.0 - confidence) * x.size, 9)))
    q = x[k - 1]
    return float(-q), float(-x[x <= q].mean())


def _weights(weights: pd.Series) -> pd.Series:
    w = pd.Series(weights, dtype=float)
    w.index = w.index.map(str)
    if w.index.duplicated().any():
        raise DataSchemaError(f"risk report weights: instrument "
                              f"{w.index[w.index.duplicated()][0]} appears twice")
    if not np.isfinite(w.to_numpy()).all():
        raise DataSchemaError("risk report weights: NaN or infinite weight")
    return w[w != 0.0].sort_index()


def _attributes(attributes: pd.DataFrame, ids: pd.Index, notes: list[str]) -> pd.DataFrame:
    if "instrument_id" not in attributes.columns:
        raise DataSchemaError("risk report attributes: missing column instrument_id")
    attrs = attributes.copy()
    attrs["instrument_id"] = attrs["instrument_id"].astype(str)
    if attrs["instrument_id"].duplicated().any():
        dup = attrs.loc[attrs["instrument_id"].duplicated(), "instrument_id"].iloc[0]
        raise DataSchemaError(f"risk report attributes: instrument {dup} appears twice")
    attrs = attrs.set_index("instrument_id").reindex(ids)
    lacking = [i for i in ids if i not in set(attributes["instrument_id"].astype(str))]
    if lacking:
        notes.append(f"no attributes for {', '.join(lacking)}: UNKNOWN buckets")
    out = pd.DataFrame(index=ids)
    for col in ("sector", "country", "currency"):
        out[col] = (attrs[col] if col in attrs.columns else pd.Series(None, index=ids)
                    ).map(lambda v: UNKNOWN if _missing(v) else str(v))
    if "fragility_bucket" in attrs.columns:
        out["fragility_bucket"] = attrs["fragility_bucket"].map(
            lambda v: UNKNOWN if _missing(v) else str(v))
    else:
        soft = attrs.get("soft_target_class", pd.Series(None, index=ids))
        frag = attrs.get("fragility_class", pd.Series(None, index=ids))
        out["fragility_bucket"] = [fragility_bucket(s, f) for s, f in zip(soft, frag,
                                                                           strict=True)]
    out["stability_score"] = pd.to_numeric(
        attrs["stability_score"] if "stability_score" in attrs.columns
        else pd.Series(np.nan, index=ids), errors="coerce").astype(float)
    return out


def _exposures(w: pd.Series, labels: pd.Series) -> dict[str, dict[str, float]]:
    frame = pd.DataFrame({"w": w, "label": labels})
    out = {}
    for label, g in frame.groupby("label", sort=True):
        out[str(label)] = {"net": float(g["w"].sum()), "gross": float(g["w"].abs().sum())}
    return out


def _risk(w: pd.Series, risk: FactorRiskModel, notes: list[str]) -> dict[str, Any]:
    pos = {iid: p for p, iid in enumerate(risk.instrument_ids)}
    lacking = [i for i in w.index if i not in pos]
    if lacking:
        notes.append(f"not in the risk model, left out of volatility and factor exposures: "
                     f"{', '.join(lacking)}")
    vec = np.zeros(len(risk.instrument_ids))
    for iid, x in w.items():
        if iid in pos:
            vec[pos[iid]] = x
    if not vec.any():
        return {"volatility": None, "factor_variance_share": None,
                "factor_exposures": dict.fromkeys(risk.factor_ids, 0.0),
                "factor_contributions": dict.fromkeys(risk.factor_ids, 0.0)}
    dec = risk.risk_decomposition(vec)
    return {"volatility": dec["total_vol"], "factor_variance_share": dec["factor_share"],
            "factor_exposures": dec["factor_exposures"],
            "factor_contributions": dec["factor_contributions"]}


def _scenarios(w: pd.Series, paths: pd.DataFrame, confidences: Sequence[float]
               ) -> tuple[dict[str, Any], dict[str, float] | None, dict[str, float] | None]:
    missing = [c for c in SCENARIO_COLUMNS if c not in paths.columns]
    if missing:
        raise DataSchemaError(f"risk report scenario paths: missing column(s) "
                              f"{', '.join(missing)}")
    per_set: dict[str, Any] = {}
    pooled: list[np.ndarray] = []
    if paths.empty:
        return per_set, None, None
    frame = paths.loc[:, [*SCENARIO_COLUMNS, *(["name"] if "name" in paths else [])]].copy()
    frame["instrument_id"] = frame["instrument_id"].astype(str)
    frame["cumulative_return"] = pd.to_numeric(frame["cumulative_return"], errors="coerce")
    for set_id, g in frame.groupby("set_id", sort=True):
        path_ids = pd.Index(sorted(g["path_id"].unique()))
        g = g[g["cumulative_return"].notna()]
        held = g["instrument_id"].map(w).fillna(0.0)
        pnl = (held * g["cumulative_return"]).groupby(g["path_id"]).sum()
        pnl = pnl.reindex(path_ids, fill_value=0.0).to_numpy(dtype=float)
        with_path = set(g["instrument_id"])
        without = [i for i in w.index if i not in with_path]
        name = str(g["name"].iloc[0]) if "name" in g and len(g) else str(set_id)
        stats = [empirical_var_es(pnl, c) for c in confidences]
        per_set[str(set_id)] = {
            "name": name, "n_paths": int(pnl.size), "mean": float(pnl.mean()),
            "worst": float(pnl.min()),
            "var": {level_key(c): v for c, (v, _) in zip(confidences, stats, strict=True)},
            "es": {level_key(c): e for c, (_, e) in zip(confidences, stats, strict=True)},
            "names_without_path": len(without),
            "weight_without_path": float(w[without].abs().sum()),
        }
        pooled.append(pnl)
    allp = np.concatenate(pooled)
    stats = [empirical_var_es(allp, c) for c in confidences]
    return (per_set,
            {level_key(c): v for c, (v, _) in zip(confidences, stats, strict=True)},
            {level_key(c): e for c, (_, e) in zip(confidences, stats, strict=True)})


def _stability(w: pd.Series, score: pd.Series, notes: list[str]) -> float | None:
    known = score.notna()
    if not known.all():
        notes.append(f"no stability score for {', '.join(score.index[~known])}")
    a = w[known].abs()
    return float((a * score[known]).sum() / a.sum()) if a.sum() > 0 else None


def portfolio_risk_report(weights: pd.Series, risk: FactorRiskModel, attributes: pd.DataFrame,
                          scenario_paths: pd.DataFrame,
                          confidences: Sequence[float] = (0.95, 0.99),
                          horizons: Sequence[int] = (1, 21), *, strategy_id: str,
                          market_id: str, as_of_date: pd.Timestamp, config_id: str,
                          binding_constraints: Iterable[str] = ()) -> dict[str, Any]:
    """One ``portfolio_risk_reports`` row (json columns as Python objects).

    ``weights``: instrument_id -> weight (zeros ignored). ``attributes``: instrument_id with
    sector, country, currency, stability_score and fragility_bucket (or soft_target_class /
    fragility_class to derive it). ``scenario_paths``: set_id, path_id, instrument_id,
    cumulative_return and optionally the set's name."""
    notes: list[str] = []
    w = _weights(weights)
    attrs = _attributes(attributes, w.index, notes)
    risk_part = _risk(w, risk, notes)
    vol = risk_part["volatility"]
    p_var: dict[str, float] | None = None
    p_es: dict[str, float] | None = None
    if vol is not None:
        p_var, p_es = {}, {}
        for c in confidences:
            for h in horizons:
                v, e = parametric_var_es(vol, c, h)
                p_var[f"{level_key(c)}_{h}d"] = v
                p_es[f"{level_key(c)}_{h}d"] = e
    per_set, s_var, s_es = _scenarios(w, scenario_paths, confidences)
    return {
        "portfolio_id": portfolio_id(strategy_id, market_id), "strategy_id": strategy_id,
        "market_id": market_id, "as_of_date": pd.Timestamp(as_of_date).normalize(),
        "n_names": int(w.size), "gross": float(w.abs().sum()), "net": float(w.sum()),
        "long": float(w[w > 0].sum()), "short": float(w[w < 0].sum()),
        **risk_part, "parametric_var": p_var, "parametric_es": p_es,
        "sector_exposures": _exposures(w, attrs["sector"]),
        "country_exposures": _exposures(w, attrs["country"]),
        "currency_exposures": _exposures(w, attrs["currency"]),
        "fragility_bucket_exposures": _exposures(w, attrs["fragility_bucket"]),
        "scenario_pnl": per_set, "scenario_var": s_var, "scenario_es": s_es,
        "stability": _stability(w, attrs["stability_score"], notes),
        "binding_constraints": list(binding_constraints), "notes": notes,
        "config_id": config_id,
    }


def risk_report_rows(reports: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Validated ``portfolio_risk_reports`` frame of report rows."""
    frame = pd.DataFrame(list(reports), columns=PORTFOLIO_RISK_REPORTS.column_names)
    return validate_frame(PORTFOLIO_RISK_REPORTS, frame)
