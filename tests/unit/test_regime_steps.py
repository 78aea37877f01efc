"""Regime steps on a DuckDB warehouse and a local MLflow store: prototypes of two refit periods
fitted on the data before each, and the daily regimes of a range (crossing the second refit)
equal to date-by-date calls exactly; the steps read what they declare."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.inputs import BOOKKEEPING_TABLES
from prometheus_dagster.core.reader import Recording, RecordingReader
from prometheus_dagster.engines.regime import RegimeConfig
from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
from prometheus_dagster.resources.warehouse import Warehouse
from prometheus_dagster.steps.regime import (
    MODEL_ARTIFACT,
    compute_regimes,
    fit_prototypes,
    regime_config,
    regime_regions,
    region_inputs,
    registered_name,
)

M = "US_EQ"
REFITS = [pd.Timestamp("2023-01-01"), pd.Timestamp("2023-04-01")]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("regime_steps")
    wh = Warehouse.from_url(f"duckdb:///{tmp / 'wh.duckdb'}")
    sessions = trading_calendar(M).sessions("2021-01-04", "2023-05-31")
    rng = np.random.default_rng(8)
    calm = np.arange(len(sessions)) % 120 < 90  # stress episodes every 120 sessions
    vol = np.where(calm, 0.008, 0.025)
    wh.write_partitions("market_correlation_daily", pd.DataFrame({
        "market_id": M, "date": sessions, "index_ret_1d": rng.normal(0, vol),
        "avg_pairwise_corr_63d": np.where(calm, 0.3, 0.6) + rng.normal(0, 0.02, len(sessions)),
        "dispersion_1d": vol * rng.uniform(0.8, 1.2, len(sessions)),
        "breadth_1d": rng.uniform(0.3, 0.7, len(sessions)), "n_names": 50, "config_id": "f"}),
        market_id=M, dates=sessions)
    days = pd.bdate_range(sessions[0], sessions[-1])
    wh.write_partitions("macro_time_series", pd.DataFrame({
        "series_id": "VIX", "date": days, "frequency": "D",
        "value": 15 + 20 * (~pd.Series(calm, index=sessions).reindex(days).ffill()
                            .fillna(True).to_numpy()) + rng.normal(0, 1, len(days))}),
        dates=days)
    mlflow = MlflowTracking(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                            artifact_root=str(tmp / "artifacts"))
    cfg = regime_config().typed(RegimeConfig)
    rc = regime_regions([M])[M]
    for valid_from in REFITS:
        fitted = fit_prototypes(wh, M, rc, valid_from, cfg)
        with mlflow.start_run("regime-steps-test", f"refit {valid_from.date()}") as run:
            with tempfile.TemporaryDirectory() as t:
                run.log_artifact(fitted.model.save(Path(t) / MODEL_ARTIFACT))
            mlflow.register_model_version(registered_name(M, cfg),
                                          run.artifact_uri(MODEL_ARTIFACT), run.run_id,
                                          fitted.trained_through)
    dates = list(sessions[(sessions >= "2023-03-20") & (sessions <= "2023-04-14")])
    return wh, mlflow, cfg, rc, dates


def test_a_range_gives_the_regimes_of_date_by_date_calls(store):
    wh, mlflow, cfg, rc, dates = store
    ranged, path, _ = compute_regimes(wh, mlflow, M, rc, dates, cfg, "cfg")
    assert list(ranged["as_of_date"]) == dates
    assert ranged["model_id"].nunique() == 2  # the range crosses the second refit
    single = pd.concat([compute_regimes(wh, mlflow, M, rc, [d], cfg, "cfg")[0] for d in dates],
                       ignore_index=True)
    pd.testing.assert_frame_equal(ranged, single, check_exact=True)


def test_the_steps_read_what_they_declare(store):
    wh, mlflow, cfg, rc, dates = store
    rec = Recording()
    compute_regimes(RecordingReader(wh, rec, "regimes"), mlflow, M, rc, dates, cfg, "cfg")
    fit_prototypes(RecordingReader(wh, rec, "refit"), M, rc, REFITS[1], cfg)
    declared = {(m if m != "GLOBAL" else "", t) for m, t in region_inputs(M, rc).pairs(M)}
    for owner, last in (("regimes", dates[-1]), ("refit", REFITS[1] - pd.Timedelta(days=1))):
        read = {(m, t) for m, t in rec.tables(owner) if t not in BOOKKEEPING_TABLES}
        assert read == declared, owner
        dated = [r for r in rec.reads[owner] if r.table != "instruments"]  # a reference table
        assert all(r.last is not None and r.last <= last for r in dated), owner
