"""A small market loaded from the file-source fixture: reference data, then ingestion and
features over a range, in a fresh DuckDB warehouse and MLflow store (shared by tests)."""

from pathlib import Path

from dagster import AssetKey, materialize

from prometheus_dagster.assets.features import features_assets
from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
from prometheus_dagster.engines.features import FEATURE_TABLES
from prometheus_dagster.resources import build_resources
from prometheus_dagster.resources.sources import SourceResource
from prometheus_dagster.resources.warehouse import Warehouse

FIXTURE = Path(__file__).parents[1] / "fixtures" / "file_source"


def span(a: str, b: str) -> dict:
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def load_file_market(tmp: Path, market: str, extra_assets: list, start: str, end: str):
    """(warehouse, resources, assets) with ``market``'s tables ingested and its features
    computed over [start, end]; ``extra_assets`` join the asset list."""
    url = f"duckdb:///{tmp / 'wh.duckdb'}"
    resources = build_resources(warehouse_url=url, mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="files", files_root=str(FIXTURE))
    assets = [*ingestion_assets([market]), *features_assets([market]), *extra_assets]
    for selection, kw in (
            ([AssetKey([market, "instruments"]), AssetKey([market, "issuers"])], {}),
            ([AssetKey([market, t]) for t in MARKET_TABLES], {"tags": span(start, end)}),
            ([AssetKey([market, t]) for t in FEATURE_TABLES], {"tags": span(start, end)})):
        assert materialize(assets, resources=resources, selection=selection, **kw).success
    return Warehouse.from_url(url), resources, assets
