"""Helpers shared by asset modules: partition dates of a run, config registration, decision
records. Kept tiny: assets read inputs, call one engine function, log and return."""


import pandas as pd
from dagster import AssetExecutionContext

from prometheus_dagster.core.config import LoadedConfig, engine_config_record
from prometheus_dagster.resources.warehouse import Warehouse


def run_dates(context: AssetExecutionContext) -> list[pd.Timestamp]:
    """The partition dates this run materializes (one, or a single-run backfill range)."""
    return [pd.Timestamp(k) for k in context.partition_keys]


def register_config(warehouse: Warehouse, loaded: LoadedConfig) -> str:
    """Record a config in ``engine_configs`` the first time it is used; returns its id."""
    warehouse.insert_missing("engine_configs", pd.DataFrame([engine_config_record(loaded)]))
    return loaded.config_id
