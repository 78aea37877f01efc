"""Normalisation of raw column values to the canonical dtypes of ``core.schemas``.

Unlike ``validate_frame`` (which raises at the first bad value), :func:`coerce_column` converts
a whole column and returns a mask of the values it could not convert, so that callers can report
every defective row with its file and line (the file source) or turn them into data-quality
issues (``quality.check_staged``).

Canonical dtypes are those ``validate_frame`` produces: ``str``/``json`` -> object (``None`` for
missing), ``date``/``timestamp`` -> ``datetime64[ns]`` (naive; timestamps in UTC), ``float`` ->
``float64``, ``int`` -> ``Int64``, ``bool`` -> ``boolean``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from prometheus_dagster.core.schemas import Column, vector_to_bytes

# Cell values read as "missing" in numeric, date, timestamp and bool columns. In text columns
# only the empty string is missing (a ticker may well be "NA").
NULL_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "none"})

_EXPECTED = {
    "float": "a number",
    "int": "an integer",
    "date": "a date (YYYY-MM-DD)",
    "timestamp": "a timestamp (ISO 8601, e.g. 2024-01-02T21:30:00Z)",
    "bool": "a boolean (true/false)",
    "str": "text",
    "json": "JSON text",
    "vector": "a vector",
}


@dataclass
class Coerced:
    """Result of :func:`coerce_column`: the converted values, a mask of the values that could not
    be converted (they are missing in ``values``), and what was expected (for messages)."""

    values: pd.Series
    bad: pd.Series
    expected: str

    @property
    def any_bad(self) -> bool:
        return bool(self.bad.any())


def _missing(s: pd.Series) -> pd.Series:
    """True where a raw value means "missing" in a non-text column."""
    out = s.isna()
    if s.dtype == object:
        out |= s.isin(NULL_TOKENS)
    return out


def _padded_missing(s: pd.Series, bad: pd.Series) -> pd.Series:
    """Among the ``bad`` values, those that are missing-value tokens with spaces around."""
    if not bad.any():
        return bad
    stripped = s[bad].map(lambda v: v.strip() if isinstance(v, str) else v)
    return stripped.isin(NULL_TOKENS).reindex(s.index, fill_value=False)


def _no_bad(s: pd.Series) -> pd.Series:
    return pd.Series(False, index=s.index)


def _parse_datetimes(s: pd.Series) -> pd.Series:
    """Parse to naive UTC datetimes: ISO 8601 text (offsets converted to UTC, naive = UTC) and
    already typed values; NaT where parsing fails."""
    if ptypes.is_datetime64_any_dtype(s.dtype):
        out = pd.to_datetime(s, utc=True)
        return out.dt.tz_localize(None).astype("datetime64[ns]")
    kind = ptypes.infer_dtype(s, skipna=True)
    if kind in ("string", "empty"):
        out = pd.to_datetime(s, format="ISO8601", errors="coerce", utc=True)
    else:
        out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
        is_str = s.map(lambda v: isinstance(v, str))
        if is_str.any():
            out[is_str] = pd.to_datetime(s[is_str], format="ISO8601", errors="coerce",
                                         utc=True)
        other = ~is_str & s.notna()
        if other.any():
            out[other] = pd.to_datetime(s[other], errors="coerce", utc=True)
    return out.dt.tz_localize(None).astype("datetime64[ns]")


def coerce_column(col: Column, raw: pd.Series, *, strip_text: bool = False) -> Coerced:
    """Convert ``raw`` to the canonical dtype of ``col``.

    Missing values stay missing (``None``/``NaN``/``NaT``); they are not "bad" here, whether a
    required column may be empty is a separate rule. Values that are present but cannot be
    converted (or are not finite numbers) are marked in ``bad`` and are missing in ``values``.
    Spaces around numbers, dates and missing-value tokens are ignored; ``strip_text`` strips
    text values as well (for values read from CSV files).
    """
    expected = _EXPECTED[col.dtype]
    s = raw
    if col.dtype in ("str", "json"):
        if s.dtype == object:
            kind = ptypes.infer_dtype(s, skipna=True)
            if kind in ("string", "empty"):
                out = s.str.strip() if strip_text else s
                if out.isna().any() or out.eq("").any():
                    out = out.where(out.notna() & out.ne(""), None)
                return Coerced(out.astype(object), _no_bad(s), expected)

            def conv(v: object) -> object:
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    return None
                if isinstance(v, str):
                    v = v.strip() if strip_text else v
                    return v if v != "" else None
                if col.dtype == "json" and isinstance(v, dict | list):
                    return json.dumps(v, sort_keys=True, default=str)
                return str(v)
            return Coerced(s.map(conv).astype(object), _no_bad(s), expected)
        present = s.notna()
        out = s.astype(object).where(present, None)
        return Coerced(out.map(lambda v: v if v is None else str(v)).astype(object),
                       _no_bad(s), expected)

    if col.dtype in ("float", "int"):
        if s.dtype == bool or ptypes.is_bool_dtype(s.dtype):
            bad = s.notna()
            return Coerced(pd.Series(np.nan, index=s.index, dtype="float64"), bad, expected)
        if ptypes.is_numeric_dtype(s.dtype):
            out = s.astype("float64")
            missing = out.isna()
        else:
            missing = _missing(s)
            out = pd.to_numeric(s.where(~missing, None), errors="coerce").astype("float64")
        bad = ~missing & (out.isna() | np.isinf(out))
        bad &= ~_padded_missing(s, bad)
        out = out.where(~bad, np.nan)
        if col.dtype == "int":
            frac = out.notna() & (out != np.round(out))
            bad = bad | frac
            out = out.where(~frac, np.nan).astype("Int64")
        return Coerced(out, bad, expected)

    if col.dtype in ("date", "timestamp"):
        if s.dtype == "datetime64[ns]":
            if col.dtype == "timestamp":
                return Coerced(s, _no_bad(s), expected)
            norm = s.dt.normalize()
            return Coerced(s if norm.equals(s) else norm, _no_bad(s), expected)
        missing = _missing(s)
        parsed = _parse_datetimes(s.where(~missing, None))
        bad = ~missing & parsed.isna()
        if bad.any():  # spaces around a date are fine
            retry = s[bad].map(lambda v: v.strip() if isinstance(v, str) else v)
            parsed[bad] = _parse_datetimes(retry)
            bad = ~missing & parsed.isna()
            bad &= ~_padded_missing(s, bad)
        if col.dtype == "date":
            parsed = parsed.dt.normalize()
        return Coerced(parsed, bad, expected)

    if col.dtype == "bool":
        mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
        missing = _missing(s)

        def conv_bool(v: object) -> object:
            if isinstance(v, bool | np.bool_):
                return bool(v)
            if isinstance(v, int | np.integer) and v in (0, 1):
                return bool(v)
            if isinstance(v, str):
                return mapping.get(v.strip().lower(), "BAD")
            return "BAD"

        conv = s.where(~missing, None).map(lambda v: None if v is None else conv_bool(v))
        bad = conv.map(lambda v: isinstance(v, str))
        out = conv.where(~bad, None).astype("boolean")
        return Coerced(out, bad, expected)

    if col.dtype == "vector":
        return Coerced(s.map(vector_to_bytes).astype(object), _no_bad(s), expected)

    raise AssertionError(col.dtype)


def describe_value(v: object) -> str:
    """A short, quoted rendering of a raw cell value for messages."""
    if isinstance(v, np.generic):
        v = v.item()
    text = repr(v)
    return text if len(text) <= 60 else text[:56] + "...'"
