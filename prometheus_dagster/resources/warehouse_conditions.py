"""Warehouse ``where`` mappings, checked against the table's schema and normalised once
(:class:`_Cond`), then used three ways: as a SQL ``WHERE`` clause (:func:`_where_sql`), as a row
mask that checks a written frame belongs to the slice it replaces (:func:`_check_rows`), and as
text in error messages (:func:`_describe`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.query import Between
from prometheus_dagster.core.schemas import TableSchema


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Cond:
    column: str
    dtype: str
    op: Literal["eq", "null", "in", "between"]
    values: tuple[Any, ...]  # normalised pandas-comparable values (Timestamps for dates)


def _norm_value(schema: TableSchema, column: str, dtype: str, value: Any) -> Any:
    where = f"table {schema.qualified_name}, column {column!r}"
    try:
        if dtype == "date":
            ts = pd.Timestamp(value)
            if ts.tzinfo is not None:
                ts = ts.tz_convert("UTC").tz_localize(None)
            return ts.normalize()
        if dtype == "timestamp":
            ts = pd.Timestamp(value)
            return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
        if dtype == "int":
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError("not an integer")
            return int(value)
        if dtype == "float":
            return float(value)
        if dtype == "bool":
            if not isinstance(value, bool | np.bool_):
                raise ValueError("not a boolean")
            return bool(value)
        if dtype in ("str", "json"):
            return str(value)
    except (TypeError, ValueError) as exc:
        raise DataSchemaError(f"{where}: filter value {value!r} is not a {dtype}: {exc}") from exc
    raise DataSchemaError(f"{where}: cannot filter on a {dtype} column")


def _conditions(schema: TableSchema, where: Mapping[str, Any] | None) -> list[_Cond]:
    conds: list[_Cond] = []
    for column, value in (where or {}).items():
        if column not in schema.column_names:
            raise DataSchemaError(
                f"table {schema.qualified_name}: filter column {column!r} is not a column "
                f"(columns: {', '.join(schema.column_names)})"
            )
        dtype = schema.column(column).dtype

        def norm(v: Any, column: str = column, dtype: str = dtype) -> Any:
            return _norm_value(schema, column, dtype, v)

        if isinstance(value, Between):
            lo = None if value.lo is None else norm(value.lo)
            hi = None if value.hi is None else norm(value.hi)
            conds.append(_Cond(column, dtype, "between", (lo, hi)))
        elif isinstance(value, list | tuple | set | frozenset | pd.Index | pd.Series | np.ndarray):
            items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
            normed = list(dict.fromkeys(norm(v) for v in items if v is not None))
            conds.append(_Cond(column, dtype, "in", tuple(normed)))
        elif value is None:
            conds.append(_Cond(column, dtype, "null", ()))
        else:
            conds.append(_Cond(column, dtype, "eq", (norm(value),)))
    return conds


def _cond_mask(cond: _Cond, s: pd.Series) -> pd.Series:
    if cond.op == "null":
        return s.isna()
    if cond.op == "eq":
        return (s == cond.values[0]).fillna(False).astype(bool)
    if cond.op == "in":
        return s.isin(list(cond.values)).fillna(False).astype(bool)
    lo, hi = cond.values
    mask = s.notna()
    if lo is not None:
        mask &= (s >= lo).fillna(False).astype(bool)
    if hi is not None:
        mask &= (s <= hi).fillna(False).astype(bool)
    return mask


def _describe(cond: _Cond) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, pd.Timestamp):
            return v.strftime("%Y-%m-%d") if cond.dtype == "date" else v.isoformat()
        return repr(v)

    if cond.op == "null":
        return f"{cond.column} IS NULL"
    if cond.op == "eq":
        return f"{cond.column} = {fmt(cond.values[0])}"
    if cond.op == "in":
        shown = ", ".join(fmt(v) for v in cond.values[:10])
        more = f", ... ({len(cond.values)} values)" if len(cond.values) > 10 else ""
        return f"{cond.column} IN [{shown}{more}]"
    lo, hi = cond.values
    return f"{cond.column} BETWEEN {fmt(lo) if lo is not None else '-inf'} AND " \
           f"{fmt(hi) if hi is not None else '+inf'}"


def _check_rows(schema: TableSchema, frame: pd.DataFrame, conds: list[_Cond]) -> None:
    """Every row written must belong to the slice it replaces (else DataSchemaError)."""
    for cond in conds:
        mask = _cond_mask(cond, frame[cond.column])
        if not mask.all():
            pos = int(np.flatnonzero(~mask.to_numpy())[0])
            value = frame[cond.column].iloc[pos]
            if isinstance(value, pd.Timestamp) and cond.dtype == "date":
                value = value.strftime("%Y-%m-%d")
            raise DataSchemaError(
                f"table {schema.qualified_name}: row {pos} has {cond.column}={value!r}, outside "
                f"the slice being replaced ({_describe(cond)}); "
                f"{int((~mask).sum())} row(s) do not belong to it"
            )


def _param(dtype: str, value: Any) -> Any:
    """A normalised condition value as a DB-API parameter."""
    if isinstance(value, pd.Timestamp):
        return value.date() if dtype == "date" else value.to_pydatetime()
    return value


def _where_sql(conds: list[_Cond], ph: str) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for cond in conds:
        col = _ident(cond.column)
        if cond.op == "null":
            parts.append(f"{col} IS NULL")
        elif cond.op == "eq":
            parts.append(f"{col} = {ph}")
            params.append(_param(cond.dtype, cond.values[0]))
        elif cond.op == "in":
            if not cond.values:
                parts.append("FALSE")
            else:
                parts.append(f"{col} IN ({', '.join([ph] * len(cond.values))})")
                params.extend(_param(cond.dtype, v) for v in cond.values)
        else:
            lo, hi = cond.values
            if lo is not None:
                parts.append(f"{col} >= {ph}")
                params.append(_param(cond.dtype, lo))
            if hi is not None:
                parts.append(f"{col} <= {ph}")
                params.append(_param(cond.dtype, hi))
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def _market_filter(schema: TableSchema, market_id: str | None, action: str) -> dict[str, Any]:
    """``{market_column: market_id}`` (empty without a market); an error if the table has no
    market column."""
    if market_id is None:
        return {}
    if schema.market_column is None:
        raise DataSchemaError(
            f"table {schema.qualified_name} has no market column; cannot {action} market "
            f"{market_id!r}"
        )
    return {schema.market_column: market_id}
