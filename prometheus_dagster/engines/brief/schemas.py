"""The ``daily_briefs`` table: where each date's brief was written."""

from __future__ import annotations

from prometheus_dagster.core.schemas import Column, TableSchema, register_table

DAILY_BRIEFS = register_table(TableSchema("daily_briefs", (
    Column("date", "date", False), Column("html_path", "str", False),
    Column("png_path", "str", False), Column("markets", "json", True),
    Column("sections", "json", True, "row counts of what the brief shows"),
    Column("mlflow_run_id", "str", True), Column("dagster_run_id", "str", True),
), primary_key=("date",), partition_column="date",
    description="Daily briefs (HTML + PNG) per date, also logged to MLflow"))
