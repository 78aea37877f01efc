"""Ingestion of the embedded market through Dagster: single-run backfills equal per-partition
runs, re-runs are idempotent, and no ingestion asset looks ahead."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import AssetKey, materialize

from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

START, END = "2023-01-03", "2023-03-31"
MARKET = "US_EQ"
RANGE = {"dagster/asset_partition_range_start": "2023-02-01",
         "dagster/asset_partition_range_end": "2023-02-10"}
DAYS = ["2023-02-01", "2023-02-02", "2023-02-03", "2023-02-06", "2023-02-07", "2023-02-08",
        "2023-02-09", "2023-02-10"]
KEYS = [AssetKey([MARKET, t]) for t in MARKET_TABLES]
MACRO = AssetKey(["GLOBAL", "macro_time_series"])


def tiny_config(tmp_path: Path, end: str = END, name: str = "tiny.yaml") -> Path:
    body = {
        "engine": "synthetic_market", "version": "test", "seed": 11,
        "start_date": "2022-06-01", "end_date": end,
        "markets": {"US_EQ": {"n_instruments": 12}, "EU_EQ": {"n_instruments": 8}},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return path


def env(tmp_path: Path, name: str, config: Path):
    url = f"duckdb:///{tmp_path / f'{name}.duckdb'}"
    resources = build_resources(warehouse_url=url,
                                mlflow_uri=f"sqlite:///{tmp_path / f'{name}-mlflow.db'}")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(config))
    assets = ingestion_assets([MARKET])
    res = materialize(assets, resources=resources, selection=[
        AssetKey([MARKET, "instruments"]), AssetKey([MARKET, "issuers"]),
        AssetKey(["GLOBAL", "truth_regime_path"]), AssetKey(["GLOBAL", "truth_distress_events"])])
    assert res.success
    return Warehouse.from_url(url), resources, assets


def ingest(assets, resources, *, key: str | None = None, tags: dict | None = None,
           selection=KEYS) -> None:
    res = materialize(assets, resources=resources, selection=selection, partition_key=key,
                      tags=tags)
    assert res.success


def table_rows(wh: Warehouse, table: str, days: list[str]) -> pd.DataFrame:
    col = "report_date" if table == "fundamentals" else "date"
    frame = wh.read(table)
    frame = frame[frame[col].isin(pd.to_datetime(days))]
    return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)


@pytest.fixture(scope="module")
def single_run_backfill(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embedded")
    wh, resources, assets = env(tmp, "range", tiny_config(tmp))
    ingest(assets, resources, tags=RANGE)
    ingest(assets, resources, tags=RANGE, selection=[MACRO])
    return tmp, wh, resources, assets


def test_single_run_backfill_equals_per_partition_runs(single_run_backfill, tmp_path):
    _, wh_range, _, _ = single_run_backfill
    wh, resources, assets = env(tmp_path, "each", tiny_config(tmp_path))
    for day in DAYS:
        ingest(assets, resources, key=day)
    for table in MARKET_TABLES:
        pd.testing.assert_frame_equal(table_rows(wh_range, table, DAYS),
                                      table_rows(wh, table, DAYS), check_like=True)
    assert len(table_rows(wh, "prices_daily", DAYS)) >= 12 * len(DAYS) * 0.9


def test_rerun_is_idempotent(single_run_backfill):
    _, wh, resources, assets = single_run_backfill
    before = {t: table_rows(wh, t, DAYS) for t in MARKET_TABLES}
    ingest(assets, resources, tags=RANGE)
    for t in MARKET_TABLES:
        pd.testing.assert_frame_equal(before[t], table_rows(wh, t, DAYS))
    runs = wh.read("ingestion_runs")
    assert set(runs["status"]) == {"SUCCESS"}
    assert len(runs[runs["table_name"] == "prices_daily"]) == 2 * len(DAYS)


def test_no_ingestion_asset_looks_ahead(tmp_path):
    """Ingest D; then the source extends past D (D+1.. arrive, the generator runs further) and
    D+1..D+5 are ingested; re-ingesting D gives identical rows for every table."""
    day = "2023-02-06"
    later = ["2023-02-07", "2023-02-08", "2023-02-09", "2023-02-10", "2023-02-13"]
    wh, resources, assets = env(tmp_path, "la", tiny_config(tmp_path, end="2023-02-06"))
    ingest(assets, resources, key=day)
    ingest(assets, resources, key=day, selection=[MACRO])
    first = {t: table_rows(wh, t, [day]) for t in (*MARKET_TABLES, "macro_time_series")}
    resources["source"] = SourceResource(
        kind="embedded", synthetic_config=str(tiny_config(tmp_path, end=END, name="long.yaml")))
    for d in [*later, day]:
        ingest(assets, resources, key=d)
        ingest(assets, resources, key=d, selection=[MACRO])
    for table, rows in first.items():
        pd.testing.assert_frame_equal(rows, table_rows(wh, table, [day]), obj=table)
    assert len(first["prices_daily"]) > 0 and len(first["macro_time_series"]) > 0


def test_truth_is_kept_apart_from_engine_tables(single_run_backfill):
    _, wh, _, _ = single_run_backfill
    truth = wh.read("truth.regime_path")
    assert len(truth) > 0 and set(truth["regime"]) <= {
        "CALM", "HIGH_VOL", "GRINDING", "CRASH", "RECOVERY"}
    main = wh.query("select table_name from information_schema.tables "
                    "where table_schema = 'main'")["table_name"]
    assert "regime_path" not in set(main)  # not in the namespace engines read
    assert wh.table_exists("truth.distress_events")
