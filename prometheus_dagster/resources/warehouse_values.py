"""Column values between pandas and the databases: database output typed as
``validate_frame`` types it (:func:`_typed`), and a validated frame as an Arrow table for DuckDB
(:func:`_arrow_table`) or as Python values and COPY text for PostgreSQL (:func:`_py_values`,
:func:`_copy_text`); compact vector columns encoded on the way in (:func:`storage_frame`) and
decoded on the way out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.schemas import TableSchema
from prometheus_dagster.core.vector_storage import decode_vectors, encode_vectors


def _to_bytes(v: Any) -> bytes | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return bytes(v)


def _typed(schema: TableSchema, df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Database output -> the dtypes ``validate_frame`` produces (dates as datetime64[ns],
    ints as Int64, bools as boolean, vectors as bytes, missing text as None)."""
    out: dict[str, pd.Series] = {}
    n = len(df)
    for name in columns:
        dtype = schema.column(name).dtype
        s = df[name] if name in df.columns else pd.Series([None] * n, dtype=object)
        s = s.reset_index(drop=True)
        if dtype in ("str", "json"):
            s = s.astype(object).where(s.notna(), None)
        elif dtype in ("date", "timestamp"):
            s = pd.to_datetime(s).astype("datetime64[ns]")
            if dtype == "date":
                s = s.dt.normalize()
        elif dtype == "float":
            if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s):
                s = s.astype("float64")
            else:
                s = pd.to_numeric(s.astype(object).where(s.notna(), np.nan)).astype("float64")
        elif dtype == "int":
            if pd.api.types.is_integer_dtype(s.dtype):
                s = s.astype("Int64")
            else:
                s = pd.Series(
                    pd.array([None if pd.isna(v) else int(v) for v in s.tolist()], dtype="Int64")
                )
        elif dtype == "bool":
            s = s.astype(object).where(s.notna(), None).astype("boolean")
        elif dtype == "vector":
            stored = [_to_bytes(v) for v in s.tolist()]
            s = pd.Series(decode_vectors(stored, schema.column(name).vector_dim), dtype=object)
        out[name] = s
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def storage_frame(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """A validated frame with its compact vector columns in their stored format."""
    compact = [c for c in schema.columns if c.dtype == "vector" and c.vector_format != "float32"]
    if not compact:
        return frame
    frame = frame.copy()
    for c in compact:
        frame[c.name] = pd.Series(encode_vectors(frame[c.name].tolist(), c.vector_format,
                                                 c.vector_dim), index=frame.index, dtype=object)
    return frame


def _py_values(dtype: str, s: pd.Series) -> list[Any]:
    """A validated column as plain Python values for psycopg2 (NaN/NaT/NA -> None)."""
    if dtype == "date":
        return [None if pd.isna(v) else v for v in s.dt.date.tolist()]
    if dtype == "timestamp":
        return [None if pd.isna(v) else v.to_pydatetime() for v in s.astype(object).tolist()]
    if dtype == "float":
        return [None if v != v else v for v in s.tolist()]
    return [None if v is None or v is pd.NA else v for v in s.tolist()]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(dtype: str, values: list[Any]) -> list[str]:
    """Plain Python values as fields of PostgreSQL's COPY text format (NULL is ``\\N``)."""
    if dtype in ("str", "json"):
        return ["\\N" if v is None else v.translate(_COPY_ESCAPES) for v in values]
    if dtype == "vector":
        return ["\\N" if v is None else "\\\\x" + v.hex() for v in values]
    if dtype == "bool":
        return ["\\N" if v is None else ("t" if v else "f") for v in values]
    if dtype == "float":
        return ["\\N" if v is None else repr(v) for v in values]
    return ["\\N" if v is None else str(v) for v in values]


def _arrow_table(schema: TableSchema, frame: pd.DataFrame) -> Any:
    import pyarrow as pa

    arrays = []
    for col in schema.columns:
        s = frame[col.name]
        if col.dtype in ("str", "json"):
            arr = pa.array(s, type=pa.string(), from_pandas=True)
        elif col.dtype == "date":
            arr = pa.array(s, type=pa.timestamp("ns"), from_pandas=True).cast(pa.date32())
        elif col.dtype == "timestamp":
            arr = pa.array(s, type=pa.timestamp("ns"), from_pandas=True)
        elif col.dtype == "float":
            arr = pa.array(s, type=pa.float64(), from_pandas=True)
        elif col.dtype == "int":
            arr = pa.array(s, type=pa.int64(), from_pandas=True)
        elif col.dtype == "bool":
            arr = pa.array(s, type=pa.bool_(), from_pandas=True)
        else:
            arr = pa.array(s, type=pa.binary(), from_pandas=True)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=schema.column_names)
