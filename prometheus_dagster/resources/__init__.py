"""Resources: the warehouse (and its IO manager) and MLflow tracking."""

from __future__ import annotations

import os
from typing import Any


def build_resources(
    warehouse_url: str | None = None, mlflow_uri: str | None = None
) -> dict[str, Any]:
    """The resources every job uses. ``PROMETHEUS_WAREHOUSE_URL`` selects PostgreSQL
    (``postgresql://user@host:port/db``); the default is the DuckDB file under PROMETHEUS_HOME."""
    from prometheus_dagster.resources.io_manager import WarehouseIOManager, WarehouseResource
    from prometheus_dagster.resources.mlflow_tracking import MlflowTracking
    from prometheus_dagster.resources.sources import SourceResource

    url = warehouse_url if warehouse_url is not None else os.environ.get(
        "PROMETHEUS_WAREHOUSE_URL", ""
    )
    return {
        "io_manager": WarehouseIOManager(url=url),
        "warehouse": WarehouseResource(url=url),
        # PROMETHEUS_SOURCE=files and PROMETHEUS_FILES_ROOT=<folder> override the ingestion config
        "source": SourceResource(kind=os.environ.get("PROMETHEUS_SOURCE", ""),
                                 files_root=os.environ.get("PROMETHEUS_FILES_ROOT", "")),
        "mlflow": MlflowTracking(
            tracking_uri=mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI", ""),
            ui_url=os.environ.get("PROMETHEUS_MLFLOW_UI", "http://127.0.0.1:5000"),
        ),
    }
