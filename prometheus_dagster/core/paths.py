"""Where Prometheus keeps its files. Everything lives under ``$PROMETHEUS_HOME``
(default ``./.prometheus``) unless configured otherwise."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(os.environ.get("PROMETHEUS_CONFIG_DIR", REPO_ROOT / "configs"))


def prometheus_home_path() -> Path:
    """Where the data directory is, without creating it."""
    return Path(os.environ.get("PROMETHEUS_HOME", REPO_ROOT / ".prometheus")).resolve()


def prometheus_home() -> Path:
    """The data directory (created): warehouse, MLflow store and artifacts, caches."""
    home = prometheus_home_path()
    home.mkdir(parents=True, exist_ok=True)
    return home


def warehouse_path() -> Path:
    return prometheus_home() / "warehouse.duckdb"


def mlflow_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{prometheus_home() / 'mlflow.db'}"


def mlflow_artifact_root() -> Path:
    return prometheus_home() / "mlartifacts"
