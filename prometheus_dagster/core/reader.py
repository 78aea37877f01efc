"""The read interface every engine step is written against, and a recorder of what is read.

Both the warehouse (``resources.warehouse.Warehouse``) and the strict time machine
(``engines.backtest.timemachine.TimeMachine``) satisfy :class:`Reader`
(``core.query.WarehouseReader``), so the functions that
read an engine's inputs and make its decisions run unchanged in the daily chain and in a
backtest. :class:`RecordingReader` wraps any reader and notes each table read (with the
markets and the partition window asked for); the lineage test compares those notes with what
each asset declares.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prometheus_dagster.core.query import Between, WarehouseReader

__all__ = ["Reader", "ReadRecord", "RecordingReader", "recording", "active_recording"]


# the one read interface (``core.query.WarehouseReader``), under the name steps use
Reader = WarehouseReader


@dataclass(frozen=True)
class ReadRecord:
    """One read: the table, the markets it was narrowed to (empty: not narrowed) and the
    earliest / latest partition date asked for (None: open or undated)."""

    table: str
    markets: tuple[str, ...]
    first: pd.Timestamp | None
    last: pd.Timestamp | None


def _table_name(table: Any) -> str:
    return str(getattr(table, "name", table))


def _markets(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _bounds(value: Any) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """(first, last) date of a ``where`` value: a date, a list of dates or a ``Between``."""
    if value is None:
        return None, None
    if isinstance(value, Between):
        return (None if value.lo is None else pd.Timestamp(value.lo),
                None if value.hi is None else pd.Timestamp(value.hi))
    values = [value] if isinstance(value, (str, pd.Timestamp)) or not isinstance(
        value, Iterable) else list(value)
    stamps = [pd.Timestamp(v) for v in values]
    return (min(stamps), max(stamps)) if stamps else (None, None)


@dataclass
class Recording:
    """Reads noted per owner (an asset step's name), in order."""

    reads: dict[str, list[ReadRecord]] = field(default_factory=dict)

    def note(self, owner: str, record: ReadRecord) -> None:
        self.reads.setdefault(owner, []).append(record)

    def tables(self, owner: str) -> set[tuple[str, str]]:
        """(market or '', table) pairs ``owner`` read."""
        out: set[tuple[str, str]] = set()
        for r in self.reads.get(owner, []):
            for m in r.markets or ("",):
                out.add((m, r.table))
        return out


_ACTIVE: contextvars.ContextVar[Recording | None] = contextvars.ContextVar(
    "prometheus_recording", default=None)


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """Within the block, readers handed to assets record what they read (see
    ``resources.io_manager.WarehouseResource.get``)."""
    rec = Recording()
    token = _ACTIVE.set(rec)
    try:
        yield rec
    finally:
        _ACTIVE.reset(token)


def active_recording() -> Recording | None:
    return _ACTIVE.get()


class RecordingReader:
    """A reader that notes every read in ``recording`` under ``owner`` and passes everything
    (reads, writes, other attributes) to ``inner``."""

    def __init__(self, inner: Any, recording_: Recording, owner: str) -> None:
        self._inner = inner
        self._recording = recording_
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self, table: Any, *, where: Mapping[str, Any] | None = None,
             columns: Sequence[str] | None = None,
             order_by: Sequence[str] | None = None) -> pd.DataFrame:
        where = dict(where or {})
        markets, first, last = _where_facts(table, where)
        self._recording.note(self._owner, ReadRecord(_table_name(table), markets, first, last))
        return self._inner.read(table, where=where or None, columns=columns, order_by=order_by)

    def read_partitions(self, table: Any, *, market_id: str | None = None, start: Any = None,
                        end: Any = None, dates: Iterable[Any] | None = None,
                        extra: Mapping[str, Any] | None = None,
                        columns: Sequence[str] | None = None) -> pd.DataFrame:
        if dates is not None:
            dates = list(dates)
            first, last = _bounds(dates)
        else:
            first = None if start is None else pd.Timestamp(start)
            last = None if end is None else pd.Timestamp(end)
        self._recording.note(self._owner, ReadRecord(
            _table_name(table), _markets(market_id), first, last))
        return self._inner.read_partitions(table, market_id=market_id, start=start, end=end,
                                           dates=dates, extra=extra, columns=columns)

    def table_exists(self, table: Any) -> bool:
        return self._inner.table_exists(table)


def _where_facts(table: Any, where: Mapping[str, Any]
                 ) -> tuple[tuple[str, ...], pd.Timestamp | None, pd.Timestamp | None]:
    """(markets, first date, last date) a ``where`` mapping narrows ``table`` to."""
    from prometheus_dagster.core.schemas import get_schema

    try:
        schema = get_schema(_table_name(table))
    except Exception:  # an unknown table: the inner reader raises the real error
        return (), None, None
    markets = _markets(where.get(schema.market_column)) if schema.market_column else ()
    part = schema.partition_column
    first, last = _bounds(where.get(part)) if part else (None, None)
    return markets, first, last
