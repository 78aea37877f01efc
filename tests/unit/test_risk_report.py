"""Portfolio risk report: VaR / ES and scenario P&L against independent computations,
exposures that add up, factor exposures B'w, stability, fragility buckets, the table."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.engines.portfolio.report import (
    empirical_var_es,
    fragility_bucket,
    portfolio_risk_report,
    risk_report_rows,
)
from prometheus_dagster.engines.portfolio.schemas import PORTFOLIO_RISK_REPORTS
from prometheus_dagster.engines.risk import FactorRiskModel

DATE = pd.Timestamp("2024-03-28")
META = dict(strategy_id="s", market_id="US_EQ", as_of_date=DATE, config_id="strategy@1-x")
IDS = [f"I{i}" for i in range(8)]


def _risk() -> FactorRiskModel:
    rng = np.random.default_rng(11)
    b = np.column_stack([rng.normal(1, 0.2, 8), rng.normal(0, 0.5, 8)])
    return FactorRiskModel("US_EQ", DATE, IDS, ["MARKET", "SIZE"], b,
                           np.array([[0.04, 0.004], [0.004, 0.01]]), rng.uniform(0.02, 0.06, 8))


def _weights() -> pd.Series:
    return pd.Series([0.3, 0.25, -0.2, 0.15, -0.1, 0.0, 0.4, 0.2],
                     index=[*IDS[:7], "NORISK"])


def _attributes() -> pd.DataFrame:
    return pd.DataFrame({
        "instrument_id": IDS[:7] + ["NORISK"],
        "sector": ["Tech", "Tech", "Energy", None, "Health", "Tech", "Energy", "Health"],
        "country": ["US", "US", "US", "DE", "DE", "US", None, "US"],
        "currency": ["USD", "USD", "USD", "EUR", "EUR", "USD", "USD", "USD"],
        "fragility_bucket": ["NONE", "WATCHLIST", "SOFT_TARGET", "NONE", None, "NONE", "NONE",
                             "WATCHLIST"],
        "stability_score": [0.8, 0.4, 0.2, 0.9, np.nan, 0.5, 0.7, 0.6],
    })


def _paths(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for set_id, name, n_paths, names in (("A", "bootstrap", 40, IDS[:7] + ["NORISK"]),
                                         ("B", "crash", 13, IDS[:4])):
        for p in range(n_paths):
            for iid in names:
                rows.append({"set_id": set_id, "name": name, "path_id": p,
                             "instrument_id": iid,
                             "cumulative_return": float(rng.normal(-0.01, 0.08))})
    return pd.DataFrame(rows)


def _path_pnl(paths: pd.DataFrame, w: dict[str, float], set_id: str) -> list[float]:
    out: dict[int, float] = {}
    for r in paths[paths["set_id"] == set_id].itertuples():
        out[r.path_id] = out.get(r.path_id, 0.0) + w.get(r.instrument_id, 0.0) * \
            r.cumulative_return
    return [out[p] for p in sorted(out)]


def _reference_var_es(pnl: list[float], c: float) -> tuple[float, float]:
    ordered = sorted(pnl)
    k = 1
    while k < len(ordered) and k < (1 - c) * len(ordered) - 1e-9:
        k += 1
    cut = ordered[k - 1]
    tail = [x for x in ordered if x <= cut]
    return -cut, -sum(tail) / len(tail)


def _report() -> dict:
    return portfolio_risk_report(_weights(), _risk(), _attributes(), _paths(), **META,
                                 binding_constraints=["budget", "gross"])


def test_scenario_pnl_var_es_match_an_independent_computation() -> None:
    rep = _report()
    w = {k: v for k, v in _weights().items() if v != 0}
    pooled: list[float] = []
    for set_id, n_paths, without in (("A", 40, 0), ("B", 13, 3)):
        pnl = _path_pnl(_paths(), w, set_id)
        pooled += pnl
        got = rep["scenario_pnl"][set_id]
        assert got["n_paths"] == n_paths and got["names_without_path"] == without
        assert got["mean"] == pytest.approx(sum(pnl) / len(pnl), abs=1e-12)
        assert got["worst"] == pytest.approx(min(pnl), abs=1e-12)
        for c in (0.95, 0.99):
            var, es = _reference_var_es(pnl, c)
            key = f"{c * 100:g}%"
            assert got["var"][key] == pytest.approx(var, abs=1e-12)
            assert got["es"][key] == pytest.approx(es, abs=1e-12)
    assert rep["scenario_pnl"]["B"]["weight_without_path"] == pytest.approx(0.1 + 0.4 + 0.2)
    assert rep["scenario_pnl"]["A"]["name"] == "bootstrap"
    for c in (0.95, 0.99):
        var, es = _reference_var_es(pooled, c)
        assert rep["scenario_var"][f"{c * 100:g}%"] == pytest.approx(var, abs=1e-12)
        assert rep["scenario_es"][f"{c * 100:g}%"] == pytest.approx(es, abs=1e-12)


def test_empirical_quantile_is_the_kth_order_statistic() -> None:
    pnl = np.arange(1, 101, dtype=float) - 50.0      # -49 .. 50
    var, es = empirical_var_es(pnl, 0.95)             # 5th smallest is -45
    assert var == 45.0 and es == pytest.approx(np.mean([49, 48, 47, 46, 45]))
    var, es = empirical_var_es(pnl, 0.99)
    assert var == 49.0 and es == 49.0
    var, _ = empirical_var_es(np.array([0.01, -0.02, 0.03]), 0.95)
    assert var == 0.02                                # k = 1 for small samples
    assert all(math.isnan(x) for x in empirical_var_es(np.array([]), 0.95))


def test_parametric_var_es_and_factor_risk() -> None:
    rep = _report()
    risk = _risk()
    w = _weights().reindex(IDS).fillna(0.0).to_numpy()
    cov = risk.exposures @ risk.factor_cov @ risk.exposures.T + np.diag(risk.specific_var)
    vol = math.sqrt(w @ cov @ w)
    assert rep["volatility"] == pytest.approx(vol, rel=1e-10)
    b_w = {f: sum(risk.exposures[i, j] * w[i] for i in range(8))
           for j, f in enumerate(risk.factor_ids)}
    assert rep["factor_exposures"] == pytest.approx(b_w)
    x = risk.exposures.T @ w
    assert rep["factor_variance_share"] == pytest.approx(x @ risk.factor_cov @ x / vol ** 2)
    assert sum(rep["factor_contributions"].values()) == pytest.approx(x @ risk.factor_cov @ x)
    nd = NormalDist()
    for c in (0.95, 0.99):
        z = nd.inv_cdf(c)
        for h in (1, 21):
            s = vol * math.sqrt(h / 252)
            key = f"{c * 100:g}%_{h}d"
            assert rep["parametric_var"][key] == pytest.approx(z * s, rel=1e-9)
            assert rep["parametric_es"][key] == pytest.approx(s * nd.pdf(z) / (1 - c),
                                                              rel=1e-9)
    assert any("NORISK" in n and "risk model" in n for n in rep["notes"])


def test_exposures_add_up_to_net_and_gross() -> None:
    rep = _report()
    w = _weights()
    net, gross = float(w.sum()), float(w.abs().sum())
    assert rep["net"] == pytest.approx(net) and rep["gross"] == pytest.approx(gross)
    assert rep["long"] + rep["short"] == pytest.approx(net)
    assert rep["long"] == pytest.approx(1.3) and rep["short"] == pytest.approx(-0.3)
    assert rep["n_names"] == 7
    for col in ("sector_exposures", "country_exposures", "currency_exposures",
                "fragility_bucket_exposures"):
        assert sum(v["net"] for v in rep[col].values()) == pytest.approx(net), col
        assert sum(v["gross"] for v in rep[col].values()) == pytest.approx(gross), col
    assert rep["sector_exposures"]["Tech"] == pytest.approx({"net": 0.55, "gross": 0.55})
    assert rep["sector_exposures"]["UNKNOWN"]["net"] == pytest.approx(0.15)
    assert rep["country_exposures"]["UNKNOWN"]["net"] == pytest.approx(0.4)
    assert rep["currency_exposures"]["EUR"] == pytest.approx({"net": 0.05, "gross": 0.25})
    assert rep["fragility_bucket_exposures"]["SOFT_TARGET"]["net"] == pytest.approx(-0.2)
    assert rep["fragility_bucket_exposures"]["UNKNOWN"]["net"] == pytest.approx(-0.1)


def test_stability_is_absolute_weight_average() -> None:
    rep = _report()
    w = _weights()
    score = _attributes().set_index("instrument_id")["stability_score"]
    num = den = 0.0
    for iid, x in w.items():
        if x != 0 and not math.isnan(score[iid]):
            num += abs(x) * score[iid]
            den += abs(x)
    assert rep["stability"] == pytest.approx(num / den)
    assert any("no stability score for I4" in n for n in rep["notes"])


def test_fragility_bucket_mapping_and_derivation() -> None:
    assert fragility_bucket("NONE", "CRISIS") == "SOFT_TARGET"
    assert fragility_bucket("WATCHLIST", "NONE") == "WATCHLIST"
    assert fragility_bucket(None, "SHORT_CANDIDATE") == "SOFT_TARGET"
    assert fragility_bucket("NONE") == "NONE"
    assert fragility_bucket(None, None) == "UNKNOWN"
    attrs = _attributes().drop(columns="fragility_bucket")
    attrs["soft_target_class"] = ["NONE", "WATCHLIST", None, "NONE", "NONE", "NONE", None,
                                  "NONE"]
    attrs["fragility_class"] = ["NONE", "NONE", "CRISIS", None, None, "NONE", None, "NONE"]
    rep = portfolio_risk_report(_weights(), _risk(), attrs, _paths(), **META)
    expo = rep["fragility_bucket_exposures"]
    assert expo["SOFT_TARGET"]["net"] == pytest.approx(-0.2)
    assert expo["UNKNOWN"]["net"] == pytest.approx(0.4)
    assert expo["WATCHLIST"]["net"] == pytest.approx(0.25)


def test_rows_validate_and_round_trip() -> None:
    rep = _report()
    frame = risk_report_rows([rep])
    assert list(frame.columns) == PORTFOLIO_RISK_REPORTS.column_names
    row = frame.iloc[0]
    assert row["portfolio_id"] == "s:US_EQ"
    assert json.loads(row["binding_constraints"]) == ["budget", "gross"]
    assert json.loads(row["parametric_var"]) == pytest.approx(rep["parametric_var"])
    assert json.loads(row["scenario_pnl"])["B"]["n_paths"] == 13


def test_empty_inputs_and_bad_inputs() -> None:
    empty_paths = pd.DataFrame(columns=["set_id", "name", "path_id", "instrument_id",
                                        "cumulative_return"])
    rep = portfolio_risk_report(pd.Series(dtype=float), _risk(), _attributes(), empty_paths,
                                **META)
    assert rep["n_names"] == 0 and rep["volatility"] is None and rep["scenario_pnl"] == {}
    assert rep["stability"] is None
    risk_report_rows([rep])
    with pytest.raises(DataSchemaError, match="missing column.*cumulative_return"):
        portfolio_risk_report(_weights(), _risk(), _attributes(),
                              _paths().drop(columns="cumulative_return"), **META)
    with pytest.raises(DataSchemaError, match="instrument I0 appears twice"):
        portfolio_risk_report(_weights(), _risk(), pd.concat([_attributes()] * 2), _paths(),
                              **META)
