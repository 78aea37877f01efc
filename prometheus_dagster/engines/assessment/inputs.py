"""What the assessment engine reads: long frames as the warehouse tables store them, checked
and put in canonical form (dates as naive midnight timestamps, numbers as float64, ids as
str). Bad input raises :class:`AssessmentInputError` naming the table and column."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal, overload

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError
from prometheus_dagster.core.schemas import vector_to_array


class AssessmentInputError(DataSchemaError):
    """An assessment input frame lacks a column, repeats a key or holds a non-number."""


@dataclass(frozen=True)
class TableSpec:
    keys: tuple[str, ...]
    dates: tuple[str, ...]
    numbers: tuple[str, ...]
    strings: tuple[str, ...] = ()
    # the column a point-in-time cut applies to
    known_on: str | None = None


_STATEMENT_ITEMS = ("total_assets", "total_liabilities", "equity", "revenue", "ebitda",
                    "net_income", "operating_cash_flow", "free_cash_flow", "cash",
                    "short_term_debt", "long_term_debt", "shares_outstanding")

SPECS: dict[str, TableSpec] = {
    "prices": TableSpec(("instrument_id", "date"), ("date",), ("close",), known_on="date"),
    "returns": TableSpec(("instrument_id", "date"), ("date",), ("ret_1d",), known_on="date"),
    "volatility": TableSpec(("instrument_id", "date"), ("date",), ("vol_63d", "drawdown"),
                            known_on="date"),
    "liquidity": TableSpec(("instrument_id", "date"), ("date",), ("adv_21d",),
                           known_on="date"),
    "exposures": TableSpec(("instrument_id", "date", "factor_id"), ("date",), ("exposure",),
                           ("factor_id",), known_on="date"),
    "instruments": TableSpec(("instrument_id",), (), (), ("issuer_id", "asset_class")),
    "fundamentals": TableSpec(("issuer_id", "period_end"), ("period_end", "report_date"),
                              _STATEMENT_ITEMS, known_on="report_date"),
    "dividends": TableSpec(("instrument_id", "date"), ("date",), ("value",), known_on="date"),
    "profiles": TableSpec(("issuer_id", "as_of_date"), ("as_of_date",),
                          ("leverage_score", "earnings_quality_score", "liquidity_risk",
                           "profile_weakness"), known_on="as_of_date"),
    "stability": TableSpec(("entity_id", "as_of_date"), ("as_of_date",), ("stability_score",),
                           known_on="as_of_date"),
    "fragility": TableSpec(("entity_id", "as_of_date", "horizon_days"), ("as_of_date",),
                           ("horizon_days", "soft_target_score", "tail_probability",
                            "high_fragility"), known_on="as_of_date"),
    "regimes": TableSpec(("as_of_date",), ("as_of_date",), ("confidence",), ("regime_label",),
                         known_on="as_of_date"),
}
REQUIRED_TABLES: tuple[str, ...] = ("prices", "returns", "instruments")
# columns an optional table may lack (they are then NaN)
_OPTIONAL_COLUMNS = {"profiles": ("leverage_score", "earnings_quality_score", "liquidity_risk",
                                  "profile_weakness", "profile_embedding"),
                     "fragility": ("tail_probability", "high_fragility"),
                     "regimes": ("confidence",), "volatility": ("vol_63d", "drawdown"),
                     "fundamentals": _STATEMENT_ITEMS}
# warehouse table names, for messages
WAREHOUSE_NAMES = {"prices": "prices_daily", "returns": "returns_daily",
                   "volatility": "volatility_daily", "liquidity": "liquidity_daily",
                   "exposures": "instrument_factors_daily", "instruments": "instruments",
                   "fundamentals": "fundamentals", "dividends": "corporate_actions (DIVIDEND)",
                   "profiles": "profiles", "stability": "stability_vectors",
                   "fragility": "fragility_alpha", "regimes": "regimes"}


@dataclass(frozen=True, eq=False)
class AssessmentInputs:
    """The history one market's assessment reads. ``prices``, ``returns`` and ``instruments``
    are required; the others may be None or empty (their features are then NaN and the rows
    say so in ``notes``).

    * ``prices``: instrument_id, date, close; ``returns``: instrument_id, date, ret_1d;
    * ``volatility``: instrument_id, date, vol_63d, drawdown; ``liquidity``: ..., adv_21d;
    * ``exposures``: instrument_id, date, factor_id, exposure (MARKET is used);
    * ``instruments``: instrument_id, issuer_id, asset_class (EQUITY rows are scored);
    * ``fundamentals``: issuer_id, period_end, report_date and the line items;
    * ``dividends``: instrument_id, date, value (cash per share on the ex-date);
    * ``profiles``: issuer_id, as_of_date, risk flags, profile_weakness, profile_embedding;
    * ``stability``: ISSUER rows of stability_vectors (entity_id, as_of_date, stability_score);
    * ``fragility``: ISSUER rows of fragility_alpha (entity_id, as_of_date, horizon_days,
      soft_target_score, tail_probability, high_fragility);
    * ``regimes``: the market's regimes (as_of_date, regime_label, confidence).
    """

    prices: pd.DataFrame
    returns: pd.DataFrame
    instruments: pd.DataFrame
    volatility: pd.DataFrame | None = None
    liquidity: pd.DataFrame | None = None
    exposures: pd.DataFrame | None = None
    fundamentals: pd.DataFrame | None = None
    dividends: pd.DataFrame | None = None
    profiles: pd.DataFrame | None = None
    stability: pd.DataFrame | None = None
    fragility: pd.DataFrame | None = None
    regimes: pd.DataFrame | None = None

    def present(self, table: str) -> bool:
        df = getattr(self, table)
        return df is not None and len(df) > 0

    def truncated(self, as_of_date: object) -> AssessmentInputs:
        """What was known at the end of ``as_of_date`` (rows dated <= it, statements reported
        <= it)."""
        d = pd.Timestamp(as_of_date).normalize()
        cuts = {}
        for f in fields(self):
            df, spec = getattr(self, f.name), SPECS[f.name]
            if df is not None and spec.known_on is not None and len(df):
                cuts[f.name] = df[pd.to_datetime(df[spec.known_on]).dt.normalize() <= d]
        return replace(self, **cuts)


def _dates(s: pd.Series, table: str, column: str) -> np.ndarray:
    out = pd.to_datetime(s, errors="coerce")
    bad = out.isna() & s.notna()
    if bad.any() or out.isna().any():
        value = s[bad].iloc[0] if bad.any() else None
        raise AssessmentInputError(f"assessment: table {table}, column {column!r}: "
                                   f"{value!r} is not a date")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.dt.normalize().astype("datetime64[ns]").to_numpy()


def _numbers(s: pd.Series, table: str, column: str) -> np.ndarray:
    if s.dtype == bool:
        raise AssessmentInputError(f"assessment: table {table}, column {column!r}: booleans "
                                   "where numbers are expected")
    out = pd.to_numeric(s, errors="coerce")
    bad = out.isna() & s.notna()
    if bad.any():
        raise AssessmentInputError(f"assessment: table {table}, column {column!r}: "
                                   f"{s[bad].iloc[0]!r} is not a number")
    return out.to_numpy(dtype=float)


def _require(df: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AssessmentInputError(f"assessment: table {table} lacks column(s) "
                                   f"{', '.join(missing)}")


RequiredTable = Literal["prices", "returns", "instruments"]  # REQUIRED_TABLES


@overload
def clean_table(name: RequiredTable, df: pd.DataFrame | None) -> pd.DataFrame: ...
@overload
def clean_table(name: str, df: pd.DataFrame | None) -> pd.DataFrame | None: ...
def clean_table(name: str, df: pd.DataFrame | None) -> pd.DataFrame | None:
    """The canonical form of one input (None when absent or empty and optional)."""
    table = WAREHOUSE_NAMES[name]
    if df is not None and not isinstance(df, pd.DataFrame):
        raise AssessmentInputError(f"assessment: table {table}: expected a DataFrame, got "
                                   f"{type(df).__name__}")
    if df is not None and name in ("stability", "fragility") and "entity_type" in df.columns:
        df = df[df["entity_type"].astype(str) == "ISSUER"]
    if df is None or len(df) == 0:
        if name in REQUIRED_TABLES:
            raise AssessmentInputError(f"assessment: table {table} is required but empty")
        return None
    spec = SPECS[name]
    optional = set(_OPTIONAL_COLUMNS.get(name, ()))
    needed = [c for c in dict.fromkeys((*spec.keys, *spec.dates, *spec.numbers, *spec.strings))
              if c not in optional]
    _require(df, table, needed)
    out = {}
    for c in spec.keys:
        if c not in spec.dates and c not in spec.numbers:
            out[c] = df[c].astype(str).to_numpy()
    for c in spec.strings:
        if c not in out:
            out[c] = df[c].astype(object).where(df[c].notna(), None).to_numpy()
    for c in spec.dates:
        out[c] = _dates(df[c], table, c)
    for c in spec.numbers:
        out[c] = _numbers(df[c], table, c) if c in df.columns else np.full(len(df), np.nan)
    if name == "profiles":
        out["profile_embedding"] = (df["profile_embedding"].map(_vector).to_numpy()
                                    if "profile_embedding" in df.columns
                                    else np.full(len(df), None, dtype=object))
    frame = pd.DataFrame(out)
    dup = frame.duplicated(list(spec.keys), keep=False)
    if dup.any():
        first = frame.loc[dup, list(spec.keys)].iloc[0].to_dict()
        raise AssessmentInputError(f"assessment: table {table}: duplicate key {first} "
                                   f"({int(dup.sum())} rows share keys)")
    return frame


def _vector(v: object) -> np.ndarray | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, bytes | bytearray | memoryview):
        return vector_to_array(bytes(v)).astype(float)
    return np.asarray(v, dtype=float)


def required(tables: Mapping[str, pd.DataFrame | None], name: str) -> pd.DataFrame:
    """A required table of ``clean_inputs`` (``clean_table`` raises when one is absent)."""
    df = tables[name]
    if df is None:
        raise AssessmentInputError(f"assessment: table {WAREHOUSE_NAMES[name]} is required "
                                   "but empty")
    return df


def clean_inputs(inputs: AssessmentInputs) -> dict[str, pd.DataFrame | None]:
    """Every input in canonical form (optional ones None when absent)."""
    return {f.name: clean_table(f.name, getattr(inputs, f.name)) for f in fields(inputs)}
