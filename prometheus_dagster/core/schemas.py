"""Table schemas, declared once. Every write to the warehouse is validated against these.

A schema names its columns with a logical type, the primary key, the column that dates a
partition (``partition_column``) and the column that names the market (``market_column``), which
together define the unit a partitioned write replaces atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.vector_storage import check_format

LOGICAL_TYPES = ("str", "date", "timestamp", "float", "int", "bool", "json", "vector")
SQL_TYPES = {
    # logical: (duckdb, postgres)
    "str": ("VARCHAR", "TEXT"),
    "json": ("VARCHAR", "TEXT"),
    "date": ("DATE", "DATE"),
    "timestamp": ("TIMESTAMP", "TIMESTAMP"),
    "float": ("DOUBLE", "DOUBLE PRECISION"),
    "int": ("BIGINT", "BIGINT"),
    "bool": ("BOOLEAN", "BOOLEAN"),
    # float32 little-endian bytes in frames; stored as the column's vector_format
    "vector": ("BLOB", "BYTEA"),
}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    nullable: bool = True
    description: str = ""
    # a vector column's stored format and dimension (core.vector_storage); frames and readers
    # always see float32 bytes
    vector_format: str = "float32"
    vector_dim: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in LOGICAL_TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.dtype!r}")
        if self.dtype != "vector" and (self.vector_format != "float32"
                                       or self.vector_dim is not None):
            raise ValueError(f"column {self.name}: only a vector column has a vector format")
        try:
            check_format(self.vector_format, self.vector_dim)
        except ValueError as exc:
            raise ValueError(f"column {self.name}: {exc}") from None
        if not isinstance(self.nullable, bool):
            raise ValueError(f"column {self.name}: nullable must be True or False, got "
                             f"{self.nullable!r} (a description is passed as description=)")


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    partition_column: str | None = None
    market_column: str | None = None
    namespace: str = "main"
    description: str = ""
    extra_key_columns: tuple[str, ...] = field(default=())
    # False: the key is checked on every written frame but the database keeps no index for it
    # (an index on a bulky table costs more than its rows). Only for tables written by
    # partition replacement whose key includes or implies the partition.
    key_index: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def qualified_name(self) -> str:
        return self.name if self.namespace == "main" else f"{self.namespace}.{self.name}"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, dtype: str, nullable: bool = True, description: str = "") -> Column:
    return Column(name, dtype, nullable, description)


def _req(name: str, dtype: str, description: str = "") -> Column:
    return Column(name, dtype, False, description)


def required(name: str, dtype: str, description: str = "") -> Column:
    """A column that may not be empty (for engines declaring their tables)."""
    return _req(name, dtype, description)


def optional(name: str, dtype: str, description: str = "") -> Column:
    """A nullable column (for engines declaring their tables)."""
    return _c(name, dtype, True, description)


_FUNDAMENTAL_ITEMS = (
    "total_assets", "total_liabilities", "equity", "revenue", "ebitda", "net_income",
    "operating_cash_flow", "free_cash_flow", "interest_expense", "cash", "short_term_debt",
    "long_term_debt", "shares_outstanding",
)

TABLES: dict[str, TableSchema] = {}


def register_table(schema: TableSchema) -> TableSchema:
    """Declare a table. Engines add their output tables here, at import time."""
    if schema.qualified_name in TABLES and TABLES[schema.qualified_name] != schema:
        raise ValueError(f"table {schema.qualified_name} declared twice with different schemas")
    for key in (*schema.primary_key, schema.partition_column, schema.market_column):
        if key is not None and key not in schema.column_names:
            raise ValueError(f"table {schema.name}: key column {key} is not a column")
    TABLES[schema.qualified_name] = schema
    return schema


# --- reference data -------------------------------------------------------------------------
register_table(TableSchema("markets", (
    _req("market_id", "str"), _req("name", "str"), _req("region", "str"),
    _req("timezone", "str"), _req("calendar_code", "str"), _req("currency", "str"),
), primary_key=("market_id",), description="Logical markets and their calendars"))

register_table(TableSchema("calendar_sessions", (
    _req("market_id", "str"), _req("date", "date"), _req("open_utc", "timestamp"),
    _req("close_utc", "timestamp"), _req("early_close", "bool"),
), primary_key=("market_id", "date"), partition_column="date", market_column="market_id",
    description="One row per trading session of a market"))

register_table(TableSchema("issuers", (
    _req("issuer_id", "str"), _req("issuer_type", "str"), _req("name", "str"),
    _c("country", "str"), _c("sector", "str"), _c("industry", "str"), _req("market_id", "str"),
    _c("metadata", "json"),
), primary_key=("issuer_id",), market_column="market_id"))

register_table(TableSchema("instruments", (
    _req("instrument_id", "str"), _c("issuer_id", "str"), _req("market_id", "str"),
    _req("asset_class", "str"), _req("symbol", "str"), _c("exchange", "str"),
    _req("currency", "str"), _req("multiplier", "float"), _req("status", "str"),
    _c("listed_date", "date"),
), primary_key=("instrument_id",), market_column="market_id",
    description="Static instrument attributes; status as of a date comes from corporate_actions"))

# --- market history -------------------------------------------------------------------------
register_table(TableSchema("prices_daily", (
    _req("market_id", "str"), _req("instrument_id", "str"), _req("date", "date"),
    _c("open", "float"), _c("high", "float"), _c("low", "float"), _req("close", "float"),
    _c("adjusted_close", "float", description="total-return index, adjusted point-in-time"),
    _c("volume", "float"), _req("currency", "str"),
), primary_key=("instrument_id", "date"), partition_column="date", market_column="market_id"))

register_table(TableSchema("corporate_actions", (
    _req("market_id", "str"), _req("instrument_id", "str"), _req("date", "date"),
    _req("action_type", "str", "SPLIT, DIVIDEND or DELISTING"),
    _c("value", "float", description="split ratio (new shares per old) or cash dividend per share"),
    _c("details", "json"),
), primary_key=("instrument_id", "date", "action_type"), partition_column="date",
    market_column="market_id"))

register_table(TableSchema("fundamentals", (
    _req("market_id", "str"), _req("issuer_id", "str"), _req("period_end", "date"),
    _req("report_date", "date", "first date the statement may be used"),
    *(_c(item, "float") for item in _FUNDAMENTAL_ITEMS), _req("currency", "str"),
), primary_key=("issuer_id", "period_end"), partition_column="report_date",
    market_column="market_id"))

register_table(TableSchema("macro_time_series", (
    _req("series_id", "str"), _req("date", "date"), _req("value", "float"),
    _req("frequency", "str", "D, W, M or Q"),
), primary_key=("series_id", "date"), partition_column="date"))

register_table(TableSchema("news_articles", (
    _req("article_id", "str"), _req("market_id", "str"), _req("timestamp", "timestamp"),
    _req("date", "date"), _req("source", "str"), _req("language", "str"),
    _req("headline", "str"), _c("body", "str"),
), primary_key=("article_id",), partition_column="date", market_column="market_id"))

register_table(TableSchema("news_links", (
    _req("article_id", "str"), _req("market_id", "str"), _req("date", "date"),
    _c("issuer_id", "str"), _c("instrument_id", "str"),
), primary_key=("article_id", "issuer_id"), partition_column="date", market_column="market_id"))

# --- runtime --------------------------------------------------------------------------------
register_table(TableSchema("ingestion_runs", (
    _req("ingestion_run_id", "str"), _req("market_id", "str"), _req("date", "date"),
    _req("source", "str"), _req("table_name", "str"), _req("status", "str", "SUCCESS/FAILED"),
    _req("row_count", "int"), _c("warnings", "json"), _c("error", "str"),
    _req("started_at", "timestamp"), _req("finished_at", "timestamp"), _c("dagster_run_id", "str"),
    _c("config_id", "str"),
), primary_key=("ingestion_run_id",), description="Append-only log of ingestion units"))

register_table(TableSchema("engine_configs", (
    _req("config_id", "str"), _req("engine_name", "str"), _req("version", "str"),
    _req("config_body", "json"), _req("content_hash", "str"), _c("source_path", "str"),
    _req("created_at", "timestamp"), _req("created_by", "str"),
), primary_key=("config_id",)))

register_table(TableSchema("engine_decisions", (
    _req("decision_id", "str"), _req("engine_name", "str"), _req("config_id", "str"),
    _req("context_id", "str"), _req("market_id", "str"), _req("as_of_date", "date"),
    _c("model_id", "str"), _c("input_refs", "json"), _c("proposed_action", "json"),
    _c("dagster_run_id", "str"), _c("mlflow_run_id", "str"),
), primary_key=("decision_id",), partition_column="as_of_date", market_column="market_id",
    extra_key_columns=("engine_name",)))

register_table(TableSchema("models", (
    _req("model_id", "str", "registered name / version"),
    _req("model_name", "str", "MLflow Model Registry name"), _req("version", "int"),
    _req("market_id", "str"), _req("model_type", "str"),
    _req("valid_from", "date", "first date the model is meant for (its refit partition)"),
    _req("trained_through", "date", "last date of its training data"),
    _req("artifact_uri", "str"),
    _c("training_spec", "json", description="what it was trained on, with which config"),
    _c("metrics", "json", description="training and held-out metrics"),
    _c("mlflow_run_id", "str"), _c("dagster_run_id", "str"), _req("config_id", "str"),
), primary_key=("model_id",), partition_column="valid_from", market_column="market_id",
    description="Trained models and the MLflow run and artifact behind each version"))

# --- ground truth of the embedded market (never read by engines) ------------------------------
register_table(TableSchema("regime_path", (
    _req("market_id", "str"), _req("date", "date"), _req("regime", "str"),
), primary_key=("market_id", "date"), partition_column="date", market_column="market_id",
    namespace="truth"))

register_table(TableSchema("distress_events", (
    _req("issuer_id", "str"), _req("market_id", "str"), _c("instrument_id", "str"),
    _req("onset_date", "date", "deterioration starts"), _req("event_date", "date"),
    _req("event_type", "str", "CRASH or DEFAULT_DELISTING"),
    _c("peak_to_trough", "float"),
), primary_key=("issuer_id", "event_date"), market_column="market_id", namespace="truth"))


def get_schema(table: str) -> TableSchema:
    try:
        return TABLES[table]
    except KeyError:
        raise DataSchemaError(
            f"unknown table {table!r}; declared tables: {', '.join(sorted(TABLES))}"
        ) from None


def _json_default(v: object) -> object:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(v).date())
    return str(v)


def _first_bad(df: pd.DataFrame, mask: pd.Series) -> str:
    idx = mask[mask].index[0]
    pos = df.index.get_loc(idx)
    return f"row {pos}"


def _coerce(schema: TableSchema, col: Column, s: pd.Series, source: str) -> pd.Series:
    where = f"{source}table {schema.qualified_name}, column {col.name!r}"
    present = s.notna()
    try:
        if col.dtype in ("str", "json"):
            out = s.astype(object).where(present, None)
            if pd.api.types.infer_dtype(out, skipna=True) in ("string", "empty"):
                return out  # already text (the common case: skip a per-row map)
            if col.dtype == "str":
                out = out.map(lambda v: v if v is None or isinstance(v, str) else str(v))
            else:  # json: mappings and lists are serialised, strings kept as given
                out = out.map(lambda v: v if v is None or isinstance(v, str)
                              else json.dumps(v, sort_keys=True, default=_json_default))
            return out
        if col.dtype == "date":
            out = pd.to_datetime(s, errors="coerce")
            bad = present & out.isna()
            if bad.any():
                raise DataSchemaError(
                    f"{where}: {_first_bad(s.to_frame(), bad)} value {s[bad].iloc[0]!r} "
                    "is not a date"
                )
            if getattr(out.dt, "tz", None) is not None:
                out = out.dt.tz_convert("UTC").dt.tz_localize(None)
            return out.dt.normalize().astype("datetime64[ns]")
        if col.dtype == "timestamp":
            out = pd.to_datetime(s, errors="coerce", utc=True)
            bad = present & out.isna()
            if bad.any():
                raise DataSchemaError(
                    f"{where}: {_first_bad(s.to_frame(), bad)} value {s[bad].iloc[0]!r} "
                    "is not a timestamp"
                )
            return out.dt.tz_localize(None).astype("datetime64[ns]")
        if col.dtype in ("float", "int"):
            if s.dtype == bool:
                raise DataSchemaError(f"{where}: boolean values where numbers are expected")
            out = pd.to_numeric(s, errors="coerce")
            bad = present & out.isna()
            if bad.any():
                raise DataSchemaError(
                    f"{where}: {_first_bad(s.to_frame(), bad)} value {s[bad].iloc[0]!r} "
                    f"is not a number"
                )
            if col.dtype == "int":
                frac = out.notna() & (out != np.round(out))
                if frac.any():
                    raise DataSchemaError(
                        f"{where}: {_first_bad(s.to_frame(), frac)} value "
                        f"{s[frac].iloc[0]!r} is not an integer"
                    )
                return out.astype("Int64")
            return out.astype("float64")
        if col.dtype == "bool":
            mapping = {True: True, False: False, "true": True, "false": False, "True": True,
                       "False": False}
            out = s.map(lambda v: mapping.get(v, "BAD") if v is not None and v == v else None)
            bad = out.astype(object) == "BAD"
            if bad.any():
                raise DataSchemaError(
                    f"{where}: {_first_bad(s.to_frame(), bad)} value {s[bad].iloc[0]!r} "
                    "is not a boolean"
                )
            return out.astype("boolean")
        if col.dtype == "vector":
            if pd.api.types.infer_dtype(s, skipna=True) == "bytes":
                return s.astype(object).where(present, None)
            return s.map(vector_to_bytes).astype(object)
    except DataSchemaError:
        raise
    except (TypeError, ValueError) as exc:
        raise DataSchemaError(f"{where}: cannot convert to {col.dtype}: {exc}") from exc
    raise AssertionError(col.dtype)


def validate_frame(table: str | TableSchema, df: pd.DataFrame, source: str = "") -> pd.DataFrame:
    """Check ``df`` against the table's schema and return it with canonical column order and
    dtypes. Raises DataSchemaError naming the table, column, row and value at fault.
    ``source`` (e.g. a file path) is prefixed to messages."""
    schema = table if isinstance(table, TableSchema) else get_schema(table)
    prefix = f"{source}: " if source else ""
    if not isinstance(df, pd.DataFrame):
        raise DataSchemaError(f"{prefix}table {schema.qualified_name}: expected a DataFrame, "
                              f"got {type(df).__name__}")
    missing = [c for c in schema.column_names if c not in df.columns]
    if missing:
        required_missing = [c for c in missing if not schema.column(c).nullable]
        if required_missing:
            raise DataSchemaError(
                f"{prefix}table {schema.qualified_name}: missing required column(s) "
                f"{', '.join(required_missing)}"
            )
    extra = [c for c in df.columns if c not in schema.column_names]
    if extra:
        raise DataSchemaError(
            f"{prefix}table {schema.qualified_name}: unexpected column(s) "
            f"{', '.join(map(str, extra))}"
        )
    df = df.reset_index(drop=True)
    out = {}
    for col in schema.columns:
        s = df[col.name] if col.name in df.columns else pd.Series([None] * len(df), dtype=object)
        s = _coerce(schema, col, s, prefix)
        if not col.nullable and s.isna().any():
            bad = s.isna()
            raise DataSchemaError(
                f"{prefix}table {schema.qualified_name}, column {col.name!r}: "
                f"{_first_bad(df, bad)} is empty but the column is required"
            )
        out[col.name] = s
    result = pd.DataFrame(out, index=df.index)
    if schema.primary_key and len(result):
        dup = result.duplicated(list(schema.primary_key), keep=False)
        if dup.any():
            first = result.loc[dup, list(schema.primary_key)].iloc[0].to_dict()
            raise DataSchemaError(
                f"{prefix}table {schema.qualified_name}: duplicate key {first} "
                f"({int(dup.sum())} rows share keys) at {_first_bad(result, dup)}"
            )
    return result


def empty_frame(table: str | TableSchema) -> pd.DataFrame:
    schema = table if isinstance(table, TableSchema) else get_schema(table)
    return validate_frame(schema, pd.DataFrame({c: [] for c in schema.column_names}))


def vector_to_bytes(v: object) -> bytes | None:
    """A vector (sequence of floats or stored bytes) as little-endian float32 bytes."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    return np.asarray(v, dtype="<f4").tobytes()


@overload
def vector_to_array(blob: bytes) -> np.ndarray: ...
@overload
def vector_to_array(blob: None) -> None: ...
@overload
def vector_to_array(blob: bytes | None) -> np.ndarray | None: ...
def vector_to_array(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f4")
