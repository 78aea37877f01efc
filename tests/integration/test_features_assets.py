"""Feature assets on data brought through the file source: materialization, look-ahead
invariance, and single-run backfill equal to per-partition runs."""

from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, materialize

from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source"
M = "US_EQ"
INGEST = [AssetKey([M, t]) for t in MARKET_TABLES]
FEATURES = [AssetKey([M, t]) for t in FEATURE_TABLES]
DAYS = ["2024-03-18", "2024-03-19", "2024-03-20", "2024-03-21", "2024-03-22"]


def span(a: str, b: str) -> dict:
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def make_env(tmp_path: Path, name: str):
    url = f"duckdb:///{tmp_path / f'{name}.duckdb'}"
    resources = build_resources(warehouse_url=url,
                                mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="files", files_root=str(FIXTURE))
    assets = [*ingestion_assets([M]), *features_assets([M])]
    ok = materialize(assets, resources=resources,
                     selection=[AssetKey([M, "instruments"]), AssetKey([M, "issuers"])]).success
    assert ok
    return Warehouse.from_url(url), resources, assets


def rows(wh: Warehouse, table: str, days: list[str]) -> pd.DataFrame:
    return wh.read_partitions(table, market_id=M, dates=days).reset_index(drop=True)


def run(assets, resources, selection, **kw) -> None:
    assert materialize(assets, resources=resources, selection=selection, **kw).success


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("features")
    wh, resources, assets = make_env(tmp, "range")
    run(assets, resources, INGEST, tags=span("2024-01-02", "2024-03-28"))
    run(assets, resources, FEATURES, tags=span(DAYS[0], DAYS[-1]))
    return tmp, wh, resources, assets


def test_feature_tables_are_written_with_config_id(backfilled):
    _, wh, _, _ = backfilled
    # five names are too few for quintile factor portfolios, so factors/exposures stay empty
    for table in ("returns_daily", "volatility_daily", "liquidity_daily",
                  "market_correlation_daily"):
        frame = rows(wh, table, DAYS)
        assert len(frame) > 0, table
        assert frame["config_id"].str.startswith("features@").all()
    ret = rows(wh, "returns_daily", DAYS)
    assert ret["instrument_id"].nunique() >= 5
    assert "features" in set(wh.read("engine_configs")["engine_name"])


def test_single_run_backfill_equals_per_partition(backfilled):
    tmp, wh_range, _, _ = backfilled
    wh2, res2, assets2 = make_env(tmp, "each")
    run(assets2, res2, INGEST, tags=span("2024-01-02", "2024-03-28"))
    for day in DAYS:
        run(assets2, res2, FEATURES, partition_key=day)
    for table in FEATURE_TABLES:
        pd.testing.assert_frame_equal(rows(wh_range, table, DAYS), rows(wh2, table, DAYS),
                                      obj=table)


def test_features_do_not_look_ahead(tmp_path):
    day = "2024-03-14"
    wh, resources, assets = make_env(tmp_path, "la")
    run(assets, resources, INGEST, tags=span("2024-01-02", day))
    run(assets, resources, FEATURES, partition_key=day)
    first = {t: rows(wh, t, [day]) for t in FEATURE_TABLES}
    run(assets, resources, INGEST, tags=span("2024-03-15", "2024-03-28"))
    run(assets, resources, FEATURES, partition_key=day)
    for table in FEATURE_TABLES:
        pd.testing.assert_frame_equal(first[table], rows(wh, table, [day]), obj=table)
    assert len(first["returns_daily"]) > 0
