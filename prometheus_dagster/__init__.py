"""Prometheus: a quantitative research and trading pipeline on Dagster and MLflow."""

import os

# The product runs offline: no telemetry, no model hub look-ups. Users may override any of these.
for _key, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DAGSTER_DISABLE_TELEMETRY": "true",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

__version__ = "0.1.0"

import warnings  # noqa: E402

# Single-run backfill policies and partition-mapping options are marked beta by Dagster; they are
# a deliberate part of this design, so the per-definition warning is noise for users.
warnings.filterwarnings("ignore", message=r".*is currently in beta")


from collections.abc import Sequence  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


def sql(query: str, params: Sequence[Any] | None = None) -> "pd.DataFrame":
    """Run read-only SQL on the warehouse and return a DataFrame; safe while the pipeline runs
    (see :func:`prometheus_dagster.resources.warehouse.sql`)."""
    from prometheus_dagster.resources.warehouse import sql as warehouse_sql

    return warehouse_sql(query, params)
