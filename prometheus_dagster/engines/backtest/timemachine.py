"""The time machine: a read-only view of the warehouse as it was known on one date.

A backtest walks trading days and, on each, runs the same engines as production against a
:class:`TimeMachine` in place of the warehouse. It wraps any object with the warehouse's read
interface (:class:`~prometheus_dagster.core.query.WarehouseReader`: ``read``,
``read_partitions``, ``table_exists``, ``sql_name``, ``query``), offers that same interface, and
gates every read of a dated table (a table whose schema has a ``partition_column``) to
partitions on or before :attr:`TimeMachine.current_date`:

* **strict** (the default): a read that requests a date after the current date, or that has no
  upper bound on the partition column, raises :class:`LookAheadError` naming the table, the
  requested date and the current date. An engine must say how far back it reads *and* that it
  reads no further than its as-of date.
* **non-strict**: the upper bound is clipped to the current date (or added when missing) and a
  warning is logged.

Undated tables (``markets``, ``issuers``, ``instruments``...) pass through. As a second line of
defence every returned row is checked: a partition date after the current date raises in strict
mode and is dropped otherwise.

Raw SQL cannot be gated: ``query`` raises :class:`LookAheadError` in strict mode (and runs with a
warning otherwise). Writes and DDL (``write_partitions``, ``insert_missing``, ``replace_all``...,
and any other warehouse attribute) raise :class:`TimeMachineAccessError`: a backtest never
writes production tables through the time machine.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError, LookAheadError, WarehouseError
from prometheus_dagster.core.query import Between, WarehouseReader, between
from prometheus_dagster.core.schemas import TableSchema, get_schema

__all__ = ["TimeMachine", "TimeMachineAccessError"]

log = logging.getLogger(__name__)

_WRITES = ("write_partitions", "replace_partition", "replace_all", "append", "insert_missing",
           "clear_values", "ensure_table")
_LIST_LIKE = (list, tuple, set, frozenset, pd.Index, pd.Series, np.ndarray)
_UNBOUNDED = object()


class TimeMachineAccessError(WarehouseError, AttributeError):
    """An operation the time machine does not offer: writes, DDL and anything but the gated
    reads. (Also an ``AttributeError``, so ``hasattr``/``getattr(..., default)`` behave.)"""


def _fmt(ts: pd.Timestamp | None) -> str:
    return "none" if ts is None else ts.strftime("%Y-%m-%d")


class TimeMachine:
    """Point-in-time, read-only view of ``warehouse``; see the module docstring.

    ``advance_to(d)`` sets :attr:`current_date` (never backwards). :attr:`reads` counts reads per
    table for the run's metadata, :attr:`clipped` the reads non-strict mode had to clip.
    """

    def __init__(self, warehouse: WarehouseReader, *, strict: bool = True) -> None:
        self._warehouse = warehouse
        self.strict = bool(strict)
        self._current: pd.Timestamp | None = None
        self._reads: Counter[str] = Counter()
        self._clipped: Counter[str] = Counter()

    def __repr__(self) -> str:
        mode = "strict" if self.strict else "non-strict"
        return f"TimeMachine({self._warehouse!r}, {mode}, at {_fmt(self._current)})"

    # -- the clock ---------------------------------------------------------------------------------
    @property
    def current_date(self) -> pd.Timestamp | None:
        """The as-of date reads are gated to (None before the first ``advance_to``)."""
        return self._current

    def advance_to(self, date: Any) -> TimeMachine:
        """Move the clock to ``date`` (the same date again is fine; earlier is an error, since
        what was read at the later date would leak into the earlier one). Returns ``self``."""
        try:
            ts = pd.Timestamp(date)
        except (TypeError, ValueError) as exc:
            raise DataSchemaError(f"time machine: {date!r} is not a date") from exc
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        ts = ts.normalize()
        if self._current is not None and ts < self._current:
            raise LookAheadError(
                f"time machine: cannot move back from {_fmt(self._current)} to {_fmt(ts)}; "
                "data read at the later date would leak into the earlier one (start a new "
                "TimeMachine for a new walk)"
            )
        self._current = ts
        return self

    @property
    def reads(self) -> dict[str, int]:
        """Reads per table (``read``/``read_partitions`` calls; ``<sql>`` for raw queries)."""
        return dict(self._reads)

    @property
    def clipped(self) -> dict[str, int]:
        """Reads per table whose date range non-strict mode clipped to the current date."""
        return dict(self._clipped)

    # -- names and existence pass through ---------------------------------------------------------
    def sql_name(self, table: str | TableSchema) -> str:
        """The quoted SQL name of a table (as :meth:`Warehouse.sql_name`)."""
        return self._warehouse.sql_name(table)

    def table_exists(self, table: str | TableSchema) -> bool:
        """Whether the table exists (its existence is not dated)."""
        return self._warehouse.table_exists(table)

    # -- gated reads ------------------------------------------------------------------------------
    def read(self, table: str | TableSchema, *, where: Mapping[str, Any] | None = None,
             columns: Sequence[str] | None = None,
             order_by: Sequence[str] | None = None) -> pd.DataFrame:
        """:meth:`Warehouse.read`, with ``where`` bounded on the partition column of a dated
        table to the current date (strict: a missing or later bound raises)."""
        schema = _schema(table)
        self._reads[schema.qualified_name] += 1
        part = schema.partition_column
        if part is None:
            return self._warehouse.read(schema, where=where, columns=columns, order_by=order_by)
        limit = self._limit(schema)
        gated = dict(where or {})
        if part in gated:
            gated[part] = self._gate(schema, gated[part], "where", limit)
        else:
            gated[part] = self._gate(schema, _UNBOUNDED, "where", limit)
        cols, drop = _with_partition(schema, columns)
        out = self._warehouse.read(schema, where=gated, columns=cols, order_by=order_by)
        return self._check_rows(schema, out, limit, drop)

    def read_partitions(self, table: str | TableSchema, *, market_id: str | None = None,
                        start: Any = None, end: Any = None,
                        dates: Iterable[Any] | None = None,
                        extra: Mapping[str, Any] | None = None,
                        columns: Sequence[str] | None = None) -> pd.DataFrame:
        """:meth:`Warehouse.read_partitions`, with ``end`` and ``dates`` gated to the current
        date (strict: ``end`` or a date after it, or neither ``end`` nor ``dates``, raises)."""
        schema = _schema(table)
        part = schema.partition_column
        if part is None:  # the warehouse says why this cannot work
            return self._warehouse.read_partitions(schema, market_id=market_id, start=start,
                                                   end=end, dates=dates, extra=extra,
                                                   columns=columns)
        self._reads[schema.qualified_name] += 1
        limit = self._limit(schema)
        if dates is not None:
            dates = self._gate(schema, list(dates), "dates", limit)
            if end is not None:
                end = self._gate(schema, between(None, end), "end", limit).hi
        else:
            end = self._gate(schema, between(None, end), "end", limit).hi
        if extra and part in extra:
            extra = {**extra, part: self._gate(schema, extra[part], "extra", limit)}
        cols, drop = _with_partition(schema, columns)
        out = self._warehouse.read_partitions(schema, market_id=market_id, start=start, end=end,
                                              dates=dates, extra=extra, columns=cols)
        return self._check_rows(schema, out, limit, drop)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Raw SQL cannot be gated by date: strict mode raises :class:`LookAheadError`;
        non-strict mode runs it on the warehouse and logs a warning."""
        if self.strict:
            raise LookAheadError(
                f"time machine at {_fmt(self._current)}: raw SQL cannot be gated by date and is "
                "refused in strict mode; use read()/read_partitions() with a date bound "
                f"(query: {sql[:120]!r})"
            )
        log.warning("time machine at %s: running raw SQL ungated (non-strict mode): %.120s",
                    _fmt(self._current), sql)
        self._reads["<sql>"] += 1
        return self._warehouse.query(sql, params)

    # -- everything else is refused ----------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _WRITES:
            raise TimeMachineAccessError(
                f"time machine: {name} refused; a backtest never writes production tables "
                "through the time machine"
            )
        raise TimeMachineAccessError(
            f"time machine: no {name!r}; it offers only the gated reads (read, read_partitions, "
            "table_exists, sql_name, query)"
        )

    # -- gating -----------------------------------------------------------------------------------
    def _limit(self, schema: TableSchema) -> pd.Timestamp:
        if self._current is None:
            raise LookAheadError(
                f"time machine: read of dated table {schema.qualified_name} before the clock is "
                "set; call advance_to(date) first"
            )
        if schema.column(schema.partition_column or "").dtype == "timestamp":
            return self._current + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
        return self._current

    def _gate(self, schema: TableSchema, value: Any, arg: str, limit: pd.Timestamp) -> Any:
        """``value`` (a ``where`` value on the partition column, or ``_UNBOUNDED``) bounded to
        ``limit``: returned unchanged when within it; else LookAheadError (strict) or clipped."""
        part = schema.partition_column or ""
        if value is None:  # IS NULL: no dated row
            return value
        if value is _UNBOUNDED or (isinstance(value, Between) and value.hi is None):
            lo = value.lo if isinstance(value, Between) else None
            self._refuse_or_warn(schema, arg, None)
            return between(lo, limit)
        if isinstance(value, Between):
            hi = _ts(schema, part, value.hi)
            if hi <= limit:
                return value
            self._refuse_or_warn(schema, arg, hi)
            return between(value.lo, limit)
        if isinstance(value, _LIST_LIKE):
            items = [v for v in value if v is not None]
            late = [v for v in items if _ts(schema, part, v) > limit]
            if not late:
                return value
            self._refuse_or_warn(schema, arg, max(_ts(schema, part, v) for v in late))
            return [v for v in items if _ts(schema, part, v) <= limit]
        ts = _ts(schema, part, value)
        if ts <= limit:
            return value
        self._refuse_or_warn(schema, arg, ts)
        return []  # a single date after the current one: nothing may be read

    def _refuse_or_warn(self, schema: TableSchema, arg: str,
                        requested: pd.Timestamp | None) -> None:
        part = schema.partition_column
        asked = (f"{part} with no upper bound" if requested is None
                 else f"{part} up to {_fmt(requested)}")
        if self.strict:
            raise LookAheadError(
                f"look-ahead read of {schema.qualified_name}: {arg} requests {asked}, but the "
                f"time machine is at {_fmt(self._current)}; bound the read to dates on or "
                "before it"
            )
        self._clipped[schema.qualified_name] += 1
        log.warning("time machine at %s: read of %s requested %s; clipped to %s",
                    _fmt(self._current), schema.qualified_name, asked, _fmt(self._current))

    def _check_rows(self, schema: TableSchema, out: pd.DataFrame, limit: pd.Timestamp,
                    drop: bool) -> pd.DataFrame:
        part = schema.partition_column or ""
        if part in out.columns and len(out):
            values = pd.to_datetime(out[part])
            late = (values > limit).fillna(False).to_numpy(dtype=bool)
            if late.any():
                first = _fmt(pd.Timestamp(values[late].min()))
                if self.strict:
                    raise LookAheadError(
                        f"look-ahead rows from {schema.qualified_name}: {int(late.sum())} row(s) "
                        f"dated after the time machine's {_fmt(self._current)} were returned "
                        f"(first {part} {first})"
                    )
                log.warning("time machine at %s: dropped %d row(s) of %s dated after it "
                            "(first %s)", _fmt(self._current), int(late.sum()),
                            schema.qualified_name, first)
                out = out[~late].reset_index(drop=True)
        return out.drop(columns=[part]) if drop and part in out.columns else out


def _schema(table: str | TableSchema) -> TableSchema:
    return table if isinstance(table, TableSchema) else get_schema(table)


def _with_partition(schema: TableSchema,
                    columns: Sequence[str] | None) -> tuple[list[str] | None, bool]:
    """Columns to read (the partition column added for the row check) and whether to drop it."""
    if columns is None:
        return None, False
    cols = list(columns)
    part = schema.partition_column
    if part is None or part in cols:
        return cols, False
    return [*cols, part], True


def _ts(schema: TableSchema, column: str, value: Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataSchemaError(
            f"table {schema.qualified_name}, column {column!r}: filter value {value!r} is not a "
            f"date: {exc}"
        ) from exc
    if ts is pd.NaT:
        raise DataSchemaError(
            f"table {schema.qualified_name}, column {column!r}: filter value {value!r} is not a "
            "date"
        )
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize() if schema.column(column).dtype == "date" else ts
