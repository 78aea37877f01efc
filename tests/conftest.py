"""Test-wide settings: every test session gets its own PROMETHEUS_HOME and DAGSTER_HOME so that
tests never touch a user's data; the network is never needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
os.environ["PROMETHEUS_HOME"] = str(_SESSION_HOME)
os.environ["DAGSTER_HOME"] = str(_SESSION_HOME / "dagster_home")
os.environ["MPLCONFIGDIR"] = str(_SESSION_HOME / "matplotlib")
os.environ.pop("PROMETHEUS_WAREHOUSE_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
(_SESSION_HOME / "dagster_home").mkdir(parents=True, exist_ok=True)

import prometheus_dagster  # noqa: E402,F401  (sets the offline environment defaults)
