"""What every layer needs to ask the warehouse for rows, without depending on the warehouse:
the inclusive range condition of a ``where`` mapping (:func:`between`) and the read interface
(:class:`WarehouseReader`) that the warehouse, the backtest's time machine and any test double
offer. Engines type their inputs with these and never import ``prometheus_dagster.resources``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from prometheus_dagster.core.schemas import TableSchema

__all__ = ["Between", "WarehouseReader", "between"]


class Between(NamedTuple):
    """Inclusive range condition for a ``where`` mapping; ``None`` leaves that end open."""

    lo: Any
    hi: Any


def between(lo: Any, hi: Any) -> Between:
    """``where={"date": between("2024-01-01", "2024-01-31")}``: BETWEEN, both ends inclusive.
    Pass ``None`` for an open end."""
    return Between(lo, hi)


@runtime_checkable
class WarehouseReader(Protocol):
    """The warehouse's read interface. ``where`` mappings filter rows: a scalar means equality,
    a list, tuple or set means IN, :func:`between` an inclusive range, ``None`` IS NULL."""

    def read(self, table: str | TableSchema, *, where: Mapping[str, Any] | None = None,
             columns: Sequence[str] | None = None,
             order_by: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of ``table`` matching ``where``."""
        ...

    def read_partitions(self, table: str | TableSchema, *, market_id: str | None = None,
                        start: Any = None, end: Any = None,
                        dates: Iterable[Any] | None = None,
                        extra: Mapping[str, Any] | None = None,
                        columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of the partitions ``dates`` (or ``start``..``end``) of ``market_id``."""
        ...

    def table_exists(self, table: str | TableSchema) -> bool:
        """Whether the table exists."""
        ...

    def sql_name(self, table: str | TableSchema) -> str:
        """The quoted, schema-qualified SQL name of a table."""
        ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Read-only SQL."""
        ...
