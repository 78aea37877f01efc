"""Helpers every step uses: config registration and the ingestion quality gate."""

from __future__ import annotations

from typing import Any

import pandas as pd

from prometheus_dagster.core.config import LoadedConfig, engine_config_record
from prometheus_dagster.core.errors import DataQualityError


def register_config(warehouse: Any, loaded: LoadedConfig) -> str:
    """Record a config in ``engine_configs`` the first time it is used; returns its id."""
    warehouse.insert_missing("engine_configs", pd.DataFrame([engine_config_record(loaded)]))
    return loaded.config_id


def require_quality_passed(reader: Any, market_id: str, dates: list[pd.Timestamp],
                           tables: list[str]) -> None:
    """Refuse to compute on inputs whose latest ingestion of a (table, date) unit FAILED: a
    failed quality gate stops downstream assets in later runs too, not only in its own run.
    The rows kept from before are good data, but the day's delivery was not, so the decision is
    left to a person (fix the source and re-ingest)."""
    runs = reader.read("ingestion_runs", where={"market_id": market_id, "date": list(dates)})
    runs = runs[runs["table_name"].isin(tables)]
    if runs.empty:
        return
    latest = runs.sort_values("finished_at").groupby(["table_name", "date"]).tail(1)
    failed = latest[latest["status"] == "FAILED"]
    if not failed.empty:
        units = ", ".join(
            f"{r.table_name} {pd.Timestamp(r.date).date()}" for r in failed.itertuples()
        )
        raise DataQualityError(
            f"{market_id}: upstream data failed its quality gate and was not refreshed ({units}); "
            "fix the source and re-ingest these partitions first"
        )


def lookback_start(first_date: pd.Timestamp, sessions: int) -> pd.Timestamp:
    """A calendar date at least ``sessions`` trading sessions before ``first_date`` (about
    252 sessions a year, with a margin for holidays)."""
    return pd.Timestamp(first_date) - pd.Timedelta(days=int(sessions * 7 / 5 * 1.05) + 10)
