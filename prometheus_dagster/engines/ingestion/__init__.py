"""Data ingestion: pluggable sources (the embedded synthetic market, a folder of CSV/Parquet
files), normalisation to canonical frames, and the great-expectations data-quality gate that
every staged batch passes before it is written."""

# registers the "ingestion" config model, so that load_engine_config("ingestion") works alone
from prometheus_dagster.core import ingestion_config as _ingestion_config  # noqa: F401
from prometheus_dagster.engines.ingestion.sources import (
    PROVENANCE_COLUMNS,
    TABLES_BY_MARKET,
    DataSource,
    EmbeddedSource,
    describe_location,
    strip_provenance,
)

__all__ = [
    "PROVENANCE_COLUMNS",
    "TABLES_BY_MARKET",
    "DataSource",
    "EmbeddedSource",
    "FileSource",
    "QualityIssue",
    "QualityReport",
    "check_staged",
    "describe_location",
    "strip_provenance",
]


def __getattr__(name: str):
    # FileSource and the quality gate load on first use (great-expectations imports slowly).
    if name == "FileSource":
        from prometheus_dagster.engines.ingestion.file_source import FileSource

        return FileSource
    if name in ("QualityIssue", "QualityReport", "check_staged"):
        from prometheus_dagster.engines.ingestion import quality

        return getattr(quality, name)
    raise AttributeError(name)
