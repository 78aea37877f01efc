"""What an asset reads, declared once.

Each engine step declares its inputs as an :class:`Inputs` of :class:`Read` entries: the table,
and how much of it a partition ``D`` reads (the date itself, a look-back of ``sessions`` before
it, all history up to it, an undated reference table, or the model refit valid for ``D``).
From that one declaration come

* the Dagster dependencies with their partition mappings (``assets.lineage.asset_deps``), so the
  lineage and staleness in the UI are what the code reads;
* the reads themselves (:class:`InputWindow` refuses a table that is not declared and computes
  the look-back window from the market's calendar);
* the ``input_refs`` of the engine's decision records (:meth:`Inputs.refs`).

The lineage test materializes each market's chain through a recording reader and fails when an
asset reads a table it does not declare or declares one it never reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["Read", "Inputs", "ConcreteRead", "InputWindow", "UndeclaredReadError"]

# tables an asset reads for bookkeeping, not as data: the quality gate's ingestion records and
# the config registry (written by every asset); they carry no lineage
BOOKKEEPING_TABLES = frozenset({"ingestion_runs", "engine_configs"})


class UndeclaredReadError(KeyError):
    """A step asked for a table its asset does not declare."""


@dataclass(frozen=True)
class Read:
    """One input of an asset.

    ``sessions``: look-back of that many sessions before the partition date (0: the date
    itself). ``history``: every partition dated on or before the date. ``reference``: an undated
    table (``instruments``, ``issuers``): the market's rows. ``model``: the refit valid for the
    date (trained strictly before it; read from MLflow). ``market``: another market's table
    (``"GLOBAL"`` for macro series); None is the asset's own market. ``members``: the table of
    each member market of a region (GLOBAL). ``asset``: the upstream asset's name when it is
    not the table's (``regime_models`` for the ``models`` table). ``note``: why, when not obvious.
    """

    table: str
    sessions: int = 0
    history: bool = False
    reference: bool = False
    model: bool = False
    market: str | None = None
    members: bool = False
    asset: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        kinds = sum([self.sessions > 0, self.history, self.reference, self.model])
        if kinds > 1:
            raise ValueError(f"input {self.table}: choose one of sessions / history / "
                             "reference / model")
        if self.sessions < 0:
            raise ValueError(f"input {self.table}: sessions must be >= 0")

    @property
    def span(self) -> str:
        if self.reference:
            return "reference"
        if self.model:
            return "model valid for D"
        if self.history:
            return "all history to D"
        return f"D-{self.sessions}..D" if self.sessions else "D"


@dataclass(frozen=True)
class ConcreteRead:
    """A :class:`Read` of a given market: the upstream asset key path and the read."""

    market: str
    read: Read

    @property
    def key_path(self) -> list[str]:
        return [self.market, self.read.asset or self.read.table]

    @property
    def table(self) -> str:
        return self.read.table

    def describe(self) -> str:
        return f"{self.market}/{self.read.asset or self.read.table} [{self.read.span}]"


class Inputs:
    """The inputs of one asset (or multi-asset step)."""

    def __init__(self, *reads: Read) -> None:
        tables = [(r.market, r.members, r.asset, r.table) for r in reads]
        dup = {t for t in tables if tables.count(t) > 1}
        if dup:
            raise ValueError(f"inputs declared twice: {sorted(str(d) for d in dup)}")
        self.reads: tuple[Read, ...] = tuple(reads)

    def __iter__(self):
        return iter(self.reads)

    def __add__(self, other: Inputs) -> Inputs:
        return Inputs(*self.reads, *other.reads)

    def only(self, *tables: str) -> Inputs:
        """The declared reads of ``tables`` (a sub-step's share of its asset's inputs)."""
        return Inputs(*(r for r in self.reads if r.table in tables or r.asset in tables))

    def concrete(self, market_id: str, members: Sequence[str] = ()) -> list[ConcreteRead]:
        out = []
        for r in self.reads:
            if r.members:
                out += [ConcreteRead(m, r) for m in members]
            else:
                out.append(ConcreteRead(r.market or market_id, r))
        return out

    def pairs(self, market_id: str, members: Sequence[str] = (),
              data_only: bool = True) -> set[tuple[str, str]]:
        """(market, table) pairs read from the warehouse (model reads come from MLflow)."""
        return {(c.market, c.table) for c in self.concrete(market_id, members)
                if not (data_only and c.read.model)}

    def refs(self, market_id: str, members: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
        """The ``input_refs`` of a decision record: tables, and each input with its window."""
        concrete = self.concrete(market_id, members)
        return {"tables": sorted({c.table for c in concrete if not c.read.model}),
                "inputs": [c.describe() for c in concrete], **extra}

    def describe(self, market_id: str, members: Sequence[str] = ()) -> str:
        return ", ".join(c.describe() for c in self.concrete(market_id, members))


class InputWindow:
    """Reads an asset's declared inputs for a run's dates through any reader (the warehouse or
    the time machine): ``frame("returns_daily")`` returns the declared look-back up to the last
    date; a table that is not declared raises :class:`UndeclaredReadError`."""

    def __init__(self, reader: Any, inputs: Inputs, market_id: str,
                 dates: Iterable[pd.Timestamp], members: Sequence[str] = ()) -> None:
        self.reader = reader
        self.inputs = inputs
        self.market_id = market_id
        self.members = tuple(members)
        self.dates = sorted(pd.Timestamp(d) for d in dates)
        if not self.dates:
            raise ValueError(f"{market_id}: no dates to read inputs for")

    @property
    def first(self) -> pd.Timestamp:
        return self.dates[0]

    @property
    def last(self) -> pd.Timestamp:
        return self.dates[-1]

    def declared(self, table: str, market: str | None = None) -> ConcreteRead:
        market = market or self.market_id
        for c in self.inputs.concrete(self.market_id, self.members):
            if c.table == table and c.market == market:
                return c
        raise UndeclaredReadError(
            f"{self.market_id}: {market}/{table} is not a declared input "
            f"(declared: {self.inputs.describe(self.market_id, self.members)})")

    def start(self, table: str, market: str | None = None) -> pd.Timestamp | None:
        """The first date the declared window of ``table`` reaches (None: all history)."""
        from prometheus_dagster.core.calendars import GLOBAL, trading_calendar

        c = self.declared(table, market)
        if c.read.history:
            return None
        if c.read.sessions == 0:
            return self.first
        if c.market == GLOBAL:  # business days
            return self.first - pd.offsets.BDay(c.read.sessions)
        return trading_calendar(c.market).lookback_start(self.first, c.read.sessions)

    def frame(self, table: str, *, market: str | None = None, columns: Sequence[str] | None = None,
              end: pd.Timestamp | None = None, **where: Any) -> pd.DataFrame:
        """The declared window of ``table`` (of ``market``, default the asset's own), up to the
        last date (or ``end``, never later than the last date); ``where`` narrows it further."""
        c = self.declared(table, market)
        if c.read.model:
            raise UndeclaredReadError(f"{table} is a model input: resolve it through MLflow")
        from prometheus_dagster.core.schemas import get_schema

        schema = get_schema(table)
        market_id = c.market if schema.market_column else None
        last = self.last if end is None else min(pd.Timestamp(end), self.last)
        if c.read.reference:
            cond = dict(where)
            if schema.market_column:
                cond.setdefault(schema.market_column, c.market)
            return self.reader.read(table, where=cond or None, columns=columns)
        extra = where or None
        if c.read.sessions == 0 and not c.read.history:
            return self.reader.read_partitions(table, market_id=market_id,
                                               dates=[d for d in self.dates if d <= last],
                                               extra=extra, columns=columns)
        return self.reader.read_partitions(table, market_id=market_id,
                                           start=self.start(table, market), end=last,
                                           extra=extra, columns=columns)
