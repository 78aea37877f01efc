"""Pluggable data sources for ingestion.

A source answers three questions: which markets it knows (``market_ids``), the reference data of a
market (``reference``: issuers and instruments) and the canonical rows of a daily table for a
date range (``fetch``). Fetching is pure: a source never writes anything.

Provenance. Frames returned by ``fetch`` may carry two extra columns, ``_source_file`` (the path
of the file a row came from) and ``_source_row`` (the 1-based number of the data row in that
file: the first row after the header is row 1). For a CSV file the header is line 1, so data row
N is on **line N + 1**; for Parquet files messages say "row N". Downstream code uses them in
messages (see :func:`describe_location`) and drops them with :func:`strip_provenance` before
writing. Every other column of a fetched frame is a column of the table's schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from prometheus_dagster.core.errors import SourceError
from prometheus_dagster.core.schemas import empty_frame, get_schema, validate_frame

TABLES_BY_MARKET = ("prices_daily", "corporate_actions", "fundamentals", "news_articles",
                    "news_links")
GLOBAL_TABLES = ("macro_time_series",)
REFERENCE_TABLES = ("issuers", "instruments")
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
PROVENANCE_COLUMNS = (SOURCE_FILE, SOURCE_ROW)


@runtime_checkable
class DataSource(Protocol):
    """What ingestion reads from. ``name`` is "embedded" or "files:<root>"."""

    name: str

    def market_ids(self) -> list[str]:
        """The markets this source has data for."""
        ...

    def reference(self, market_id: str) -> dict[str, pd.DataFrame]:
        """``{"issuers": ..., "instruments": ...}`` of a market, canonical (issuers may be
        empty)."""
        ...

    def fetch(self, table: str, market_id: str | None, start: dt.date,
              end: dt.date) -> pd.DataFrame:
        """Canonical rows of ``table`` whose partition column (``date``; ``report_date`` for
        fundamentals) lies in ``[start, end]``. ``market_id`` is None for the GLOBAL table
        ``macro_time_series``."""
        ...


def strip_provenance(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the provenance columns (what is written to the warehouse)."""
    cols = [c for c in PROVENANCE_COLUMNS if c in df.columns]
    return df.drop(columns=cols) if cols else df


def describe_location(file: str | None, row: int | None) -> str:
    """Where a row came from, for messages: ``"<file> line N"`` for CSV files (data row N is on
    line N + 1, after the header), ``"<file> row N"`` for other files, ``"row N"`` without a file.
    ``row`` is the 1-based data row number (``_source_row``)."""
    if file is None:
        return f"row {row}" if row is not None else ""
    if row is None:
        return str(file)
    name = str(file).lower()
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return f"{file} line {int(row) + 1}"
    return f"{file} row {int(row)}"


def check_table_name(table: str, market_id: str | None) -> None:
    """Raise SourceError unless ``table`` is a daily table and ``market_id`` fits it."""
    if table in GLOBAL_TABLES:
        if market_id is not None:
            raise SourceError(f"{table} is a GLOBAL table: fetch it with market_id=None")
        return
    if table not in TABLES_BY_MARKET:
        raise SourceError(
            f"cannot fetch table {table!r}: daily tables are "
            f"{', '.join(TABLES_BY_MARKET + GLOBAL_TABLES)} (reference data comes from reference())"
        )
    if market_id is None:
        raise SourceError(f"{table} is a per-market table: fetch it with a market_id")


def _as_date(d: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(d).normalize()


def filter_dates(df: pd.DataFrame, column: str, start: dt.date | str | pd.Timestamp,
                 end: dt.date | str | pd.Timestamp) -> pd.DataFrame:
    """Rows of ``df`` whose ``column`` lies in ``[start, end]`` (dates, inclusive)."""
    if df.empty:
        return df
    s = pd.to_datetime(df[column]).dt.normalize()
    return df[(s >= _as_date(start)) & (s <= _as_date(end))]


class EmbeddedSource:
    """The embedded synthetic market (the default source).

    Wraps a ``prometheus_dagster.engines.synthetic_market.SyntheticMarket``; every call delegates
    to it. The market is built lazily from ``config`` when not given, so importing this module
    never imports the generator.
    """

    name = "embedded"

    def __init__(self, market: Any | None = None, config: Any | None = None):
        self._market = market
        self._config = config

    @property
    def market(self) -> Any:
        """The wrapped generator (built on first use when only a config was given)."""
        if self._market is None:
            from prometheus_dagster.engines.synthetic_market import SyntheticMarket

            self._market = SyntheticMarket(self._config) if self._config is not None \
                else SyntheticMarket()
        return self._market

    def market_ids(self) -> list[str]:
        """Markets the generator simulates."""
        m = self.market
        ids = getattr(m, "market_ids", None)
        if callable(ids):
            return list(ids())
        if ids is not None:
            return list(ids)
        config = getattr(m, "config", None)
        markets = getattr(config, "markets", None)
        if markets is not None:
            return list(markets)
        raise SourceError("the embedded market does not say which markets it simulates")

    def reference(self, market_id: str) -> dict[str, pd.DataFrame]:
        """Issuers and instruments of ``market_id``, in canonical form."""
        issuers = self.market.issuers(market_id)
        instruments = self.market.instruments(market_id)
        return {
            "issuers": validate_frame("issuers", issuers if issuers is not None
                                      else empty_frame("issuers"), source="embedded"),
            "instruments": validate_frame("instruments", instruments, source="embedded"),
        }

    def fetch(self, table: str, market_id: str | None, start: dt.date,
              end: dt.date) -> pd.DataFrame:
        """Rows of ``table`` generated for ``[start, end]`` (fundamentals: by report_date)."""
        check_table_name(table, market_id)
        m = self.market
        if table == "macro_time_series":
            df = m.macro(start, end)
        elif table == "prices_daily":
            df = m.prices(market_id, start, end)
        elif table == "corporate_actions":
            df = m.corporate_actions(market_id, start, end)
        elif table == "fundamentals":
            df = m.fundamentals(market_id, start, end)
        else:
            articles, links = m.news(market_id, start, end)
            df = articles if table == "news_articles" else links
        schema = get_schema(table)
        if df is None:
            return empty_frame(schema)
        df = df.reset_index(drop=True)
        col = schema.partition_column
        if len(df) and col is not None and col in df.columns:
            df = filter_dates(df, col, start, end).reset_index(drop=True)
        return df
