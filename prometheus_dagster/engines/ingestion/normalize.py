"""Normalisation of raw column values to the canonical dtypes of ``core.schemas``.

Unlike ``validate_frame`` (which raises at the first bad value), :func:`coerce_column` converts
a whole column and returns a mask of the values it could not convert, so that callers can report
every defective row with its file and line (the file source) or turn them into data-quality
issues (``quality.check_staged``).

Canonical dtypes are those ``validate_frame`` produces: ``str``/``json`` -> object (``None`` for
missing), ``date``/``timestamp`` -> ``datetime64[ns]`` (naive; timestamps in UTC), ``float`` ->
``float64``, ``int`` -> ``Int64``, ``bool`` -> ``boolean``.

A date column holds a calendar date. A value with a time of day (or a time-zone offset) in a date
column is refused rather than cut to a day: converting ``2024-02-05T23:30:00-05:00`` to UTC and
keeping the day would silently move the row to 2024-02-06. Only midnight in the value's own
clock is accepted (``2024-02-05T00:00:00Z`` and a Parquet timestamp at local midnight are the
date 2024-02-05).
"""

from __future__ import annotations

import datetime as dt
import json
import re
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


DATE_WITH_TIME = ("is a timestamp, not a date (rule: a date column holds YYYY-MM-DD without a "
                  "time of day or time-zone offset; give the market's session date)")

# "no reason" in np.where: the numpy stubs take arrays, not a bare None, as a branch
_NONE = np.array(None, dtype=object)

# A date followed by a time of day and an optional offset; group 2 is the time of day.
_DATE_TIME_TEXT = re.compile(
    r"^(\d{4}-?\d{2}-?\d{2})[T ](\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?)\s*"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?$")
_MIDNIGHT_TEXT = re.compile(r"^00(?::?00(?::?00(?:[.,]0+)?)?)?$")


@dataclass
class Coerced:
    """Result of :func:`coerce_column`: the converted values, a mask of the values that could not
    be converted (they are missing in ``values``), and what was expected (for messages).
    ``reasons`` holds, for some bad values, a more specific explanation than ``expected``."""

    values: pd.Series
    bad: pd.Series
    expected: str
    reasons: pd.Series | None = None

    @property
    def any_bad(self) -> bool:
        return bool(self.bad.any())

    def problem(self, position: int) -> str:
        """Why the value at ``position`` (0-based) was refused, e.g. ``"is not a number"``."""
        if self.reasons is not None:
            why = self.reasons.iat[position]
            if isinstance(why, str):
                return why
        return f"is not {self.expected}"


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


def _wall_clock(v: object) -> object:
    """A datetime value on its own clock (offset dropped, not converted); other values as is."""
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return pd.Timestamp(v).tz_localize(None)
    return v


def _coerce_dates(s: pd.Series, expected: str) -> Coerced:
    """Dates: ISO text, date objects or datetime values at midnight on their own clock. A value
    with a time of day is bad (reason :data:`DATE_WITH_TIME`), never moved to another day."""
    timed = pd.Series(False, index=s.index)
    if ptypes.is_datetime64_any_dtype(s.dtype):
        wall = s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
        wall = wall.astype("datetime64[ns]")
        timed = wall.notna() & wall.ne(wall.dt.normalize())
        reasons = pd.Series(np.where(timed, DATE_WITH_TIME, _NONE), index=s.index, dtype=object)
        return Coerced(wall.where(~timed), timed, expected, reasons if timed.any() else None)
    missing = _missing(s)
    s = s.where(~missing, None)
    if s.dtype == object:
        if ptypes.infer_dtype(s, skipna=True) == "string":
            text = s.str.strip()
            long_text = text.str.len().gt(10)
        else:
            text = s.map(lambda v: v.strip() if isinstance(v, str) else _wall_clock(v))
            long_text = text.map(lambda v: isinstance(v, str) and len(v) > 10)
        if long_text.any():  # rare: a time part after the date
            parts = text[long_text].str.extract(_DATE_TIME_TEXT)
            matched = parts[0].notna()
            midnight = parts[1].fillna("").str.match(_MIDNIGHT_TEXT)
            text = text.copy()
            text[matched[matched & midnight].index] = parts.loc[matched & midnight, 0]
            timed[matched[matched & ~midnight].index] = True
        s = text.where(~timed, None)
    parsed = _parse_datetimes(s)
    bad = ~missing & ~timed & parsed.isna()
    bad &= ~_padded_missing(s, bad)
    # other forms that parse (datetime objects, exotic ISO text) must still be a midnight
    off_midnight = parsed.notna() & parsed.ne(parsed.dt.normalize())
    timed |= off_midnight
    parsed = parsed.where(~timed)
    reasons = pd.Series(np.where(timed, DATE_WITH_TIME, _NONE), index=s.index, dtype=object)
    return Coerced(parsed, bad | timed, expected, reasons if timed.any() else None)


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

    if col.dtype == "date":
        return _coerce_dates(s, expected)

    if col.dtype == "timestamp":
        if s.dtype == "datetime64[ns]":
            return Coerced(s, _no_bad(s), expected)
        missing = _missing(s)
        parsed = _parse_datetimes(s.where(~missing, None))
        bad = ~missing & parsed.isna()
        if bad.any():  # spaces around a date are fine
            retry = s[bad].map(lambda v: v.strip() if isinstance(v, str) else v)
            parsed[bad] = _parse_datetimes(retry)
            bad = ~missing & parsed.isna()
            bad &= ~_padded_missing(s, bad)
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

        flags = s.where(~missing, None).map(lambda v: None if v is None else conv_bool(v))
        bad = flags.map(lambda v: isinstance(v, str))
        out = flags.where(~bad, None).astype("boolean")
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
