"""Scenario steps on a DuckDB warehouse: a partition range gives exactly the sets and paths of
date-by-date runs (each date's view is its own declared look-back, also when an instrument
stops trading or starts inside the range's longer window), and the steps read only what they
declare."""

import numpy as np
import pandas as pd
import pytest

from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.inputs import BOOKKEEPING_TABLES
from prometheus_dagster.core.reader import Recording, RecordingReader
from prometheus_dagster.engines.fragility import FragilityConfig
from prometheus_dagster.engines.scenarios import ScenariosConfig
from prometheus_dagster.resources.warehouse import Warehouse
from prometheus_dagster.steps.fragility import compute_fragility_measures
from prometheus_dagster.steps.scenarios import (
    compute_scenario_paths,
    compute_scenario_sets,
    drop_older_step_returns,
    full_scenario_paths,
    paths_as_stored,
    scenario_inputs,
    scenario_path_inputs,
    step_returns_kept_from,
)

M = "US_EQ"
CID = "scenarios@steps-test"
N = 16
IDS = [f"EQ{i:02d}" for i in range(N)]
SECTORS = ["Financials", "Tech", "Energy", "Health"]
# a short base window keeps the test fast; the range's look-back then starts well before the
# look-back of its later dates, which is what the date-by-date equality must survive
CFG = ScenariosConfig.model_validate({
    **ScenariosConfig().model_dump(mode="json"),
    "sets": [{**s.model_dump(mode="json", exclude_defaults=True), "base_window_sessions": 80,
              "min_base_sessions": 40, "num_paths": min(s.num_paths, 8)}
             for s in ScenariosConfig().sets]})


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Warehouse, list[pd.Timestamp]]:
    wh = Warehouse.from_url(f"duckdb:///{tmp_path_factory.mktemp('steps') / 'wh.duckdb'}")
    sessions = trading_calendar(M).sessions("2022-01-03", "2022-08-31")
    rng = np.random.default_rng(5)
    market = rng.normal(0.0003, 0.012, len(sessions))
    beta = np.linspace(0.5, 1.5, N)
    values = market[:, None] * beta + rng.normal(0, 0.01, (len(sessions), N))
    # stops trading inside the first date's look-back (106 sessions) but before the last one's
    values[-110:, 3] = np.nan
    values[:-30, 4] = np.nan        # listed 30 sessions before the end
    values[::7, 5] = np.nan         # scattered gaps
    ret = pd.DataFrame(values, index=sessions, columns=IDS).stack(future_stack=True)
    ret = ret.rename("ret_1d").rename_axis(["date", "instrument_id"]).reset_index()
    ret = ret[ret["ret_1d"].notna() | (ret["instrument_id"] == "EQ05")]
    wh.write_partitions("returns_daily", ret.assign(market_id=M, config_id="f"), market_id=M,
                        dates=sessions)
    fac = pd.DataFrame({"date": sessions, "factor_id": "MARKET", "value": market,
                        "n_long": N, "n_short": 0})
    wh.write_partitions("factors_daily", fac.assign(market_id=M, config_id="f"), market_id=M,
                        dates=sessions)
    days = list(sessions[-8:])
    exposures = pd.DataFrame([{"date": d, "instrument_id": i, "factor_id": "MARKET",
                               "exposure": b} for d in days for i, b in zip(IDS[1:], beta[1:],
                                                                            strict=True)])
    wh.write_partitions("instrument_factors_daily", exposures.assign(market_id=M, config_id="f"),
                        market_id=M, dates=days)
    stability = pd.DataFrame([{"as_of_date": d, "entity_type": "ISSUER", "entity_id": f"IS{k:02d}",
                               "stability_score": float(s), "fundamental": float(f)}
                              for j, d in enumerate(days) for k, (s, f) in enumerate(
                                  rng.uniform(0, 1, (N - 2, 2)) if j % 2 else
                                  rng.uniform(0.3, 1, (N - 2, 2)))])
    wh.write_partitions("stability_vectors", stability.assign(market_id=M, config_id="f"),
                        market_id=M, dates=days)
    labels = np.where(np.arange(len(sessions)) % 9 < 3, "RISK_OFF_PANIC", "RISK_ON_LOW_VOL")
    regimes = pd.DataFrame({"as_of_date": sessions, "regime_label": labels, "confidence": 0.9,
                            "alert_level": "GREEN", "warning_count": 0, "model_id": "m"})
    wh.write_partitions("regimes", regimes.assign(market_id=M, config_id="r"), market_id=M,
                        dates=sessions)
    wh.replace_all("issuers", pd.DataFrame({
        "issuer_id": [f"IS{k:02d}" for k in range(N)], "issuer_type": "COMPANY",
        "name": [f"Issuer {k}" for k in range(N)], "market_id": M,
        "sector": [SECTORS[k % 4] for k in range(N)]}), where={"market_id": M})
    wh.replace_all("instruments", pd.DataFrame({
        "instrument_id": IDS, "issuer_id": [f"IS{k:02d}" for k in range(N)], "market_id": M,
        "asset_class": "EQUITY", "symbol": IDS, "currency": "USD", "multiplier": 1.0,
        "status": "ACTIVE"}), where={"market_id": M})
    return wh, days


def _by_date(wh: Warehouse, days: list[pd.Timestamp]) -> pd.DataFrame:
    frames = [compute_scenario_sets(wh, M, [d], CFG, CID).frame for d in days]
    return pd.concat(frames, ignore_index=True)


def test_a_range_gives_the_sets_of_date_by_date_runs(warehouse):
    wh, days = warehouse
    ranged = compute_scenario_sets(wh, M, days, CFG, CID)
    assert not ranged.partial and not ranged.skipped
    assert set(ranged.frame["family"]) == {s.family for s in CFG.sets}
    # EQ03 stopped trading inside the first date's look-back (it is listed as excluded there)
    # and before the last date's: not an instrument of that date at all
    excluded = ranged.frame.groupby("as_of_date")["excluded_instruments"].first()
    assert "EQ03" in excluded.iloc[0] and "EQ03" not in excluded.iloc[-1]
    pd.testing.assert_frame_equal(ranged.frame, _by_date(wh, days), check_exact=True)


def test_a_range_gives_the_paths_of_date_by_date_runs(warehouse):
    wh, days = warehouse
    sets = compute_scenario_sets(wh, M, days, CFG, CID).frame
    wh.write_partitions("scenario_sets", sets, market_id=M, dates=days)
    ranged, stored = compute_scenario_paths(wh, M, days, CFG)
    assert len(stored) == len(sets)
    single = pd.concat([compute_scenario_paths(wh, M, [d], CFG)[0] for d in days],
                       ignore_index=True)
    pd.testing.assert_frame_equal(ranged, single, check_exact=True)


def test_the_steps_read_what_they_declare(warehouse):
    wh, days = warehouse
    rec = Recording()
    compute_scenario_sets(RecordingReader(wh, rec, "sets"), M, days, CFG, CID)
    compute_scenario_paths(RecordingReader(wh, rec, "paths"), M, days, CFG)
    for owner, inputs in (("sets", scenario_inputs(CFG, True)),
                          ("paths", scenario_path_inputs(CFG, True))):
        read = {(m, t) for m, t in rec.tables(owner) if t not in BOOKKEEPING_TABLES}
        assert read == inputs.pairs(M), owner
        # nothing before the declared look-back of the first date, nothing after the last
        start = trading_calendar(M).previous_trading_day(days[0],
                                                          max(s.base_window_sessions + s.horizon
                                                              for s in CFG.sets) + 5)
        for r in rec.reads[owner]:
            assert r.last is None or r.last <= days[-1], r
            assert r.first is None or r.first >= start, r


def test_step_returns_window_follows_the_config():
    last = pd.Timestamp("2022-08-31")
    sessions = trading_calendar(M).sessions("2022-07-01", last)
    keep = {n: CFG.model_copy(update={"store_paths_sessions": n}) for n in (0, 21, "all")}
    assert step_returns_kept_from(M, last, keep[21]) == sessions[-21]
    assert step_returns_kept_from(M, last, keep[0]) > last
    assert step_returns_kept_from(M, last, keep["all"]) is None
    with pytest.raises(ValueError, match="store_paths_sessions"):
        CFG.model_copy().model_validate({**CFG.model_dump(mode="json"),
                                         "store_paths_sessions": -1})


def test_paths_without_stored_step_returns_regenerate_and_read_the_same(warehouse):
    """Full paths stored, or only the recent dates' step returns: regeneration gives the
    stored rows to the bit, and the fragility measures read the same losses."""
    wh, days = warehouse
    sets = compute_scenario_sets(wh, M, days, CFG, CID).frame
    wh.write_partitions("scenario_sets", sets, market_id=M, dates=days)
    paths, _ = compute_scenario_paths(wh, M, days, CFG)
    wh.write_partitions("scenario_paths", paths, market_id=M, dates=days)
    stored = wh.read_partitions("scenario_paths", market_id=M, dates=days)
    assert stored["step_returns"].notna().all()
    pd.testing.assert_frame_equal(full_scenario_paths(wh, M, days, CFG), stored,
                                  check_exact=True)
    measures, _ = compute_fragility_measures(wh, M, days, FragilityConfig(), "frag@test")
    assert len(measures)

    kept_from = days[-3]   # the last 3 dates keep their step returns
    recent = paths[pd.to_datetime(paths["as_of_date"]) >= days[-4]]
    wh.write_partitions("scenario_paths", paths_as_stored(recent, kept_from), market_id=M,
                        dates=days[-4:])
    assert drop_older_step_returns(wh, M, kept_from) > 0
    trimmed = wh.read_partitions("scenario_paths", market_id=M, dates=days)
    older = pd.to_datetime(trimmed["as_of_date"]) < kept_from
    assert trimmed.loc[older, "step_returns"].isna().all()
    assert trimmed.loc[~older, "step_returns"].notna().all()
    pd.testing.assert_series_equal(trimmed["cumulative_return"], stored["cumulative_return"],
                                   check_exact=True)
    pd.testing.assert_frame_equal(full_scenario_paths(wh, M, days, CFG), stored,
                                  check_exact=True)
    again, _ = compute_fragility_measures(wh, M, days, FragilityConfig(), "frag@test")
    pd.testing.assert_frame_equal(again, measures, check_exact=True)
