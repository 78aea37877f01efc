"""The ``qc_reports`` table: one row per pre-open check and subject."""

from __future__ import annotations

from prometheus_dagster.core.schemas import Column, TableSchema, register_table

QC_REPORTS = register_table(TableSchema("qc_reports", (
    Column("market_id", "str", False), Column("date", "date", False, "the session checked"),
    Column("check_name", "str", False), Column("subject", "str", False),
    Column("status", "str", False, "PASS, WARN, FAIL or SKIP"), Column("detail", "str", True),
), primary_key=("market_id", "date", "check_name", "subject"), partition_column="date",
    market_column="market_id", description="Pre-open quality checks of the previous session"))
