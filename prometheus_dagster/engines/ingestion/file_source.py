"""The file source: real data dropped into a folder as CSV or Parquet files.

Layout (documented for users in ``docs/bring_your_own_data.md``): for each table either one file
``<root>/<table>.csv`` / ``<root>/<table>.parquet`` or a folder ``<root>/<table>/`` holding any
number of such files (searched recursively, e.g. one per year or per market). ``instruments`` is
required; every other table is optional (an absent table fetches as an empty canonical frame).

Columns are named as in the table's schema (``core.schemas``); optional columns may be left out
and some required ones can be derived (see :data:`DERIVED_COLUMNS`). Parsing is cached per file
(keyed by path, size and modification time), so repeated fetches over a long backfill read each
file once, and a file that changes is read again.

Failure scoping:

* a file that cannot be parsed, has unknown columns or misses a required column makes every fetch
  of its table fail with a ``SourceError`` naming the file;
* a row-level defect (a value of the wrong type, a required key that cannot be derived) fails only
  the fetches whose date range contains the row (and whose market is the row's market, when that
  is known); if the row's own date is missing or unparsable, every fetch of the table fails;
* ``instruments`` (and ``issuers``) must be entirely clean: any defect there fails every call that
  needs them.

Rules on values (positive prices, duplicate keys, ...) are not checked here: they are the job of
``quality.check_staged``, which names the same file and line from the provenance columns.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import ConfigError, SourceError
from prometheus_dagster.core.schemas import TableSchema, empty_frame, get_schema
from prometheus_dagster.engines.ingestion.file_errors import (
    empty_file,
    is_parquet,
    unreadable_file,
)
from prometheus_dagster.engines.ingestion.normalize import (
    NULL_TOKENS,
    coerce_column,
    describe_value,
)
from prometheus_dagster.engines.ingestion.sources import (
    GLOBAL_TABLES,
    PROVENANCE_COLUMNS,
    SOURCE_FILE,
    SOURCE_ROW,
    TABLES_BY_MARKET,
    check_table_name,
    describe_location,
)

log = logging.getLogger(__name__)

FILE_TABLES = ("instruments", "issuers", *TABLES_BY_MARKET, *GLOBAL_TABLES)
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")

# Required schema columns a file may leave out, per table, and where their values come from.
DERIVED_COLUMNS: dict[str, dict[str, str]] = {
    "instruments": {
        "multiplier": "1.0",
        "status": "ACTIVE",
        "issuer_id": "in a market that lists no issuer (prices only), an EQUITY instrument's own "
                     "instrument_id: it becomes a COMPANY issuer of its own, named by its symbol",
    },
    "issuers": {
        "market_id": "the market of the issuer's first instrument (instruments.issuer_id)",
    },
    "prices_daily": {
        "market_id": "instruments.market_id of instrument_id",
        "currency": "instruments.currency of instrument_id",
    },
    "corporate_actions": {
        "market_id": "instruments.market_id of instrument_id",
    },
    "fundamentals": {
        "market_id": "issuers.market_id of issuer_id, else the market of its first instrument",
        "currency": "the currency of the issuer's first instrument",
    },
    "news_articles": {
        "market_id": "the market of a linked instrument or issuer (news_links), else the only "
                     "market of instruments",
        "date": "the first session of the market whose close is at or after the timestamp",
    },
    "news_links": {
        "market_id": "news_articles.market_id of article_id, else the instrument's or issuer's "
                     "market",
        "date": "news_articles.date of article_id",
    },
}
MAX_LISTED_DEFECTS = 10
FileDefect = tuple[str, int, str, str]  # file, data row, rule, message


@dataclass
class _FileFrame:
    """One parsed file: canonical columns present in the file plus provenance, and row defects
    (``_source_row`` -> message)."""

    path: Path
    frame: pd.DataFrame
    present: frozenset[str]
    defects: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class _Table:
    """A whole table: canonical frame (+ provenance), split per market and sorted by date."""

    frame: pd.DataFrame
    by_market: dict[str | None, tuple[pd.DataFrame, np.ndarray]]
    defects: pd.DataFrame  # columns: date (datetime64), market_id (object), message


def _rel(path: Path) -> str:
    return str(path)


def _at(path: Path | str, row: int) -> str:
    """``"<file>: line N"`` for CSV files (N = data row + 1, the header being line 1) or
    ``"<file>: row N"`` for Parquet files."""
    loc = describe_location(str(path), int(row))
    head, sep, tail = loc.rpartition(" line ")
    if not sep:
        head, sep, tail = loc.rpartition(" row ")
    return f"{head}: {sep.strip()} {tail}"


class FileSource:
    """Reads the documented CSV/Parquet layout under ``root``.

    ``name`` is ``"files:<root>"``. Raises :class:`SourceError` with the file (and line) at fault
    for every problem a user can cause; see the module docstring for which fetches a defect
    affects.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: data folder does not exist (files source)")
        self.name = f"files:{self.root}"
        self._lock = threading.RLock()
        self._file_cache: dict[tuple[str, str], tuple[tuple, _FileFrame]] = {}
        self._table_cache: dict[str, tuple[tuple, _Table]] = {}
        self._ref_cache: dict[str, tuple[tuple, pd.DataFrame]] = {}
        if not self.files("instruments"):
            raise SourceError(
                f"{self.root}: no instruments file (expected instruments.csv, "
                "instruments.parquet or a folder instruments/ of such files)"
            )
        self._warn_unrecognized()

    def __repr__(self) -> str:
        return f"FileSource({str(self.root)!r})"

    # --- layout ------------------------------------------------------------------------------
    def _warn_unrecognized(self) -> None:
        known = set(FILE_TABLES)
        odd = []
        for p in sorted(self.root.iterdir()):
            if p.name.startswith((".", "_")):
                continue
            stem = p.name if p.is_dir() else _strip_suffix(p.name)
            if stem not in known:
                odd.append(p.name)
        if odd:
            log.warning("%s: ignoring entries that name no table: %s (tables: %s)",
                        self.root, ", ".join(odd), ", ".join(FILE_TABLES))

    def files(self, table: str) -> list[Path]:
        """The files holding ``table`` (empty when the table is absent)."""
        singles = [self.root / f"{table}{s}" for s in SUFFIXES
                   if (self.root / f"{table}{s}").is_file()]
        folder = self.root / table
        in_folder: list[Path] = []
        if folder.is_dir():
            in_folder = sorted(
                p for p in folder.rglob("*")
                if p.is_file() and _strip_suffix(p.name) != p.name
                and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
            )
        found = singles + ([folder] if folder.is_dir() else [])
        if len(found) > 1:
            raise SourceError(
                f"{self.root}: table {table} is given more than once "
                f"({', '.join(p.name for p in found)}); keep one file or one folder"
            )
        return singles or in_folder

    def _signature(self, table: str) -> tuple:
        sig = []
        for p in self.files(table):
            st = p.stat()
            sig.append((str(p), st.st_size, st.st_mtime_ns))
        return tuple(sig)

    # --- parsing -----------------------------------------------------------------------------
    def _read_raw(self, path: Path, schema: TableSchema) -> pd.DataFrame:
        """The file as a frame: Parquet as typed; CSV with numeric columns parsed by the CSV
        reader when every value is a number (fast path), else every column as text (then
        ``coerce_column`` finds the bad values). Provenance columns added; blank lines dropped
        after numbering."""
        if path.stat().st_size == 0:
            raise empty_file(path)
        try:
            if is_parquet(path):
                df = pd.read_parquet(path)
                for c in df.columns:
                    if isinstance(df[c].dtype, pd.CategoricalDtype):
                        df[c] = df[c].astype(object)
                    elif pd.api.types.is_string_dtype(df[c].dtype) and df[c].dtype != object:
                        df[c] = df[c].astype(object).where(df[c].notna(), None)
                df = df.reset_index(drop=True)
                rows = np.arange(1, len(df) + 1)
            else:
                df = _read_csv(path, schema)
                rows = np.arange(1, len(df) + 1)
                if len(df) and len(df.columns):
                    # blank lines (kept so that row numbers match lines) and all-empty rows
                    first = df.iloc[:, 0]
                    cand = first.isna() | (first.astype(str).str.strip() == "")
                    if cand.any():
                        sub = df[cand].astype(object)
                        empty = (sub.isna() | sub.apply(
                            lambda c: c.astype(str).str.strip() == "")).all(axis=1)
                        blank = np.zeros(len(df), dtype=bool)
                        blank[np.flatnonzero(cand.to_numpy())[empty.to_numpy()]] = True
                        df, rows = df[~blank], rows[~blank]
        except Exception as exc:  # pandas and pyarrow raise many types; all mean "unreadable"
            raise unreadable_file(path, exc) from None
        df.columns = [str(c).strip() for c in df.columns]
        df = df.reset_index(drop=True)
        df[SOURCE_FILE] = _rel(path)
        df[SOURCE_ROW] = rows.astype("int64")
        return df

    def _parse_file(self, table: str, path: Path) -> _FileFrame:
        st = path.stat()
        key = (table, str(path))
        stamp = (st.st_size, st.st_mtime_ns)
        hit = self._file_cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        schema = get_schema(table)
        raw = self._read_raw(path, schema)
        cols = [c for c in raw.columns if c not in PROVENANCE_COLUMNS]
        unknown = [c for c in cols if c not in schema.column_names]
        if unknown:
            raise SourceError(
                f"{path}: unknown column(s) {', '.join(unknown)}; the columns of {table} are "
                f"{', '.join(schema.column_names)}"
            )
        derivable = DERIVED_COLUMNS.get(table, {})
        missing = [c.name for c in schema.columns
                   if not c.nullable and c.name not in cols and c.name not in derivable]
        if missing:
            raise SourceError(f"{path}: missing required column(s) {', '.join(missing)}")
        out: dict[str, pd.Series] = {}
        defects: list[tuple[int, str]] = []
        rows = raw[SOURCE_ROW]
        for name in cols:
            col = schema.column(name)
            res = coerce_column(col, raw[name], strip_text=True)
            out[name] = res.values
            if res.any_bad:
                for i in np.flatnonzero(res.bad.to_numpy()):
                    r = int(rows.iloc[i])
                    defects.append((r, f"{_at(path, r)}: column {name!r} value "
                                       f"{describe_value(raw[name].iloc[i])} "
                                       f"{res.problem(int(i))}"))
        frame = pd.DataFrame(out, index=raw.index)
        frame[SOURCE_FILE] = raw[SOURCE_FILE]
        frame[SOURCE_ROW] = rows
        parsed = _FileFrame(path, frame, frozenset(cols), defects)
        self._file_cache[key] = (stamp, parsed)
        return parsed

    def _parse_table(self, table: str) -> tuple[pd.DataFrame, list[tuple[str, int, str]]] | None:
        """All files of ``table`` stacked (canonical columns, absent ones null) and their row
        defects as ``(file, row, message)``; None when the table is absent."""
        files = self.files(table)
        if not files:
            return None
        schema = get_schema(table)
        frames, defects = [], []
        for p in files:
            ff = self._parse_file(table, p)
            frames.append(ff.frame)
            defects += [(_rel(p), r, m) for r, m in ff.defects]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else \
            frames[0].reset_index(drop=True).copy()
        for c in schema.columns:
            if c.name not in frame.columns:
                empty = pd.Series([None] * len(frame), index=frame.index, dtype=object)
                frame[c.name] = coerce_column(c, empty).values
            elif len(frames) > 1 and c.dtype in ("str", "json") and frame[c.name].isna().any():
                # a column some files lack: concat filled it with NaN
                frame[c.name] = frame[c.name].astype(object).where(frame[c.name].notna(), None)
        return frame[[*schema.column_names, *PROVENANCE_COLUMNS]], defects

    # --- reference data ----------------------------------------------------------------------
    def reference_defects(self, table: str, frame: pd.DataFrame,
                          defects: list[tuple[str, int, str]]) -> list[FileDefect]:
        """Every defect of a reference table ``frame``: values of the wrong type (``defects``),
        empty required values, duplicate keys; as ``(file, row, rule, message)``."""
        schema = get_schema(table)
        problems: list[FileDefect] = [(f, r, "type", m) for f, r, m in defects]
        for c in schema.columns:
            if not c.nullable:
                for i in np.flatnonzero(frame[c.name].isna().to_numpy()):
                    f, r = frame[SOURCE_FILE].iat[i], int(frame[SOURCE_ROW].iat[i])
                    problems.append((f, r, "required",
                                     f"{_at(f, r)}: column {c.name!r} is empty but required"))
        key = list(schema.primary_key)
        dup = frame.duplicated(key, keep=False) & frame[key].notna().all(axis=1)
        if dup.any():
            for _, grp in frame[dup].groupby(key, sort=False):
                places = [_at(f, r) for f, r in zip(grp[SOURCE_FILE], grp[SOURCE_ROW],
                                                    strict=True)]
                keyval = ", ".join(f"{k}={grp[k].iat[0]}" for k in key)
                problems.append((grp[SOURCE_FILE].iat[0], int(grp[SOURCE_ROW].iat[0]),
                                 f"unique ({', '.join(key)})",
                                 f"{places[0]}: duplicate key {keyval} (also at "
                                 f"{'; '.join(places[1:])})"))
        return problems

    def _strict(self, table: str, frame: pd.DataFrame, defects: list) -> None:
        """Reference tables must be clean: raise on any defect, empty required value or
        duplicate key, naming the file and line."""
        problems = [m for _, _, _, m in self.reference_defects(table, frame, defects)]
        if problems:
            raise SourceError(_join_problems(f"{table}", problems))

    def file_problems(self, table: str) -> list[str]:
        """Why files of ``table`` cannot be read at all (layout, parsing, columns), one message
        per file; empty when every file parses."""
        try:
            files = self.files(table)
        except SourceError as exc:
            return [str(exc)]
        problems = []
        for path in files:
            try:
                self._parse_file(table, path)
            except SourceError as exc:
                problems.append(str(exc))
        return problems

    def unchecked_reference(self, table: str) -> tuple[pd.DataFrame, list[tuple[str, int, str]]]:
        """``instruments`` / ``issuers`` with their documented defaults and derived columns,
        and their type defects, before the strict check of :meth:`reference_defects`."""
        parsed = self._parse_table(table)
        if parsed is None:
            return _with_provenance(empty_frame(table)), []
        frame, defects = parsed
        frame = frame.copy()
        if table == "instruments":
            # absent or empty: the documented defaults
            frame["multiplier"] = frame["multiplier"].fillna(1.0)
            frame["status"] = frame["status"].where(frame["status"].notna(), "ACTIVE")
        elif table == "issuers" and len(frame):
            inst = self._reference("instruments")
            first = inst.dropna(subset=["issuer_id"]).drop_duplicates("issuer_id")
            derived = frame["issuer_id"].map(first.set_index("issuer_id")["market_id"])
            frame["market_id"] = frame["market_id"].where(frame["market_id"].notna(), derived)
        return frame, defects

    def unchecked_daily(self, table: str) -> tuple[pd.DataFrame, list[FileDefect]]:
        """Every row of a daily table that has a date (derived columns filled, provenance kept)
        and every defect the file source finds in it, as ``(file, row, rule, message)``: values
        of the wrong type, keys whose market cannot be derived, rows without a date."""
        schema = get_schema(table)
        parsed = self._parse_table(table)
        if parsed is None:
            return _with_provenance(empty_frame(schema)), []
        frame, defects = parsed
        frame, derived = self._derive(table, frame.copy())
        found: list[FileDefect] = [(f, r, "type", m) for f, r, m in defects]
        found += [(f, r, "reference", m) for f, r, m in derived]
        date_col = schema.partition_column
        assert date_col is not None
        flagged = {(f, r) for f, r, _, _ in found}
        no_date = frame[date_col].isna()
        for f, r in zip(frame.loc[no_date, SOURCE_FILE], frame.loc[no_date, SOURCE_ROW],
                        strict=True):
            if (f, int(r)) not in flagged:
                found.append((f, int(r), "required", f"{_at(f, int(r))}: column "
                                                     f"{date_col!r} is empty (every row needs "
                                                     "a date)"))
        return frame[~no_date].reset_index(drop=True), found

    def _reference(self, table: str) -> pd.DataFrame:
        """Canonical ``instruments`` / ``issuers`` of all markets (with provenance)."""
        with self._lock:
            sig = self._signature("instruments") + self._signature("issuers")
            hit = self._ref_cache.get(table)
            if hit is not None and hit[0] == sig:
                return hit[1]
            frame, defects = self.unchecked_reference(table)
            self._strict(table, frame, defects)
            self._ref_cache[table] = (sig, frame)
            return frame

    def _present_columns(self, table: str) -> frozenset[str]:
        cols: set[str] = set()
        for p in self.files(table):
            cols |= self._parse_file(table, p).present
        return frozenset(cols)

    def market_ids(self) -> list[str]:
        """Markets named in instruments."""
        return sorted(self._reference("instruments")["market_id"].dropna().unique().tolist())

    def reference(self, market_id: str) -> dict[str, pd.DataFrame]:
        """Issuers and instruments of ``market_id`` (canonical, without provenance). A market
        with no issuers at all (a prices-only market) gets one per EQUITY instrument without
        an issuer: the instrument is its own issuer (``self_issuers``)."""
        out = {}
        for table in ("issuers", "instruments"):
            df = self._reference(table)
            df = df[df["market_id"] == market_id]
            out[table] = df.drop(columns=list(PROVENANCE_COLUMNS)).reset_index(drop=True)
        if out["issuers"].empty:
            out["instruments"], out["issuers"] = self_issuers(out["instruments"])
        return out

    # --- daily tables ------------------------------------------------------------------------
    def _derive(self, table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple]]:
        """Fill derivable columns; returns the frame and row defects for keys that could not be
        derived."""
        defects: list[tuple[str, int, str]] = []
        if table == "macro_time_series" or frame.empty:
            return frame, defects
        inst = self._reference("instruments")
        by_inst = inst.set_index("instrument_id")
        present = self._present_columns(table)

        def fill(col: str, values: pd.Series) -> None:
            frame[col] = frame[col].where(frame[col].notna(), values)

        if table in ("prices_daily", "corporate_actions"):
            fill("market_id", frame["instrument_id"].map(by_inst["market_id"]))
            if table == "prices_daily":
                fill("currency", frame["instrument_id"].map(by_inst["currency"]))
            unknown = frame["market_id"].isna() & frame["instrument_id"].notna()
            for i in np.flatnonzero(unknown.to_numpy()):
                defects.append(self._row_defect(
                    frame, i, f"instrument_id {frame['instrument_id'].iat[i]!r} is not in "
                              "instruments, so its market_id cannot be derived (add the "
                              "instrument or a market_id column)"))
        elif table == "fundamentals":
            issuer_market = self._issuer_markets()
            fill("market_id", frame["issuer_id"].map(issuer_market))
            first = inst.dropna(subset=["issuer_id"]).drop_duplicates("issuer_id")
            fill("currency", frame["issuer_id"].map(first.set_index("issuer_id")["currency"]))
            unknown = frame["market_id"].isna() & frame["issuer_id"].notna()
            for i in np.flatnonzero(unknown.to_numpy()):
                defects.append(self._row_defect(
                    frame, i, f"issuer_id {frame['issuer_id'].iat[i]!r} is in neither issuers "
                              "nor instruments, so its market_id cannot be derived"))
        elif table == "news_articles":
            if frame["market_id"].isna().any():
                fill("market_id", frame["article_id"].map(self._article_markets_from_links()))
                markets = inst["market_id"].dropna().unique()
                if len(markets) == 1:
                    fill("market_id", pd.Series(markets[0], index=frame.index))
                unknown = frame["market_id"].isna()
                for i in np.flatnonzero(unknown.to_numpy()):
                    defects.append(self._row_defect(
                        frame, i, f"article {frame['article_id'].iat[i]!r}: market_id cannot be "
                                  "derived (no linked instrument or issuer); add a market_id "
                                  "column"))
            if "date" not in present or frame["date"].isna().any():
                defects += self._derive_news_dates(frame)
        elif table == "news_links":
            articles = self._table("news_articles").frame
            art = articles.drop_duplicates("article_id").set_index("article_id")
            fill("market_id", frame["article_id"].map(art["market_id"]))
            fill("market_id", frame["instrument_id"].map(by_inst["market_id"]))
            fill("market_id", frame["issuer_id"].map(self._issuer_markets()))
            fill("date", frame["article_id"].map(art["date"]))
            orphan = frame["date"].isna() & ~frame["article_id"].isin(art.index)
            for i in np.flatnonzero(orphan.to_numpy()):
                defects.append(self._row_defect(
                    frame, i, f"article_id {frame['article_id'].iat[i]!r} is not in "
                              "news_articles, so the link's date cannot be derived"))
            for i in np.flatnonzero(frame["market_id"].isna().to_numpy()):
                defects.append(self._row_defect(
                    frame, i, f"link of article {frame['article_id'].iat[i]!r}: market_id "
                              "cannot be derived (article, instrument and issuer unknown)"))
        return frame, defects

    def _row_defect(self, frame: pd.DataFrame, i: int | np.integer, text: str
                    ) -> tuple[str, int, str]:
        f, r = frame[SOURCE_FILE].iat[i], int(frame[SOURCE_ROW].iat[i])
        return (f, r, f"{_at(f, r)}: {text}")

    def _issuer_markets(self) -> pd.Series:
        """issuer_id -> market_id, from issuers, else from the issuer's first instrument."""
        inst = self._reference("instruments")
        first = inst.dropna(subset=["issuer_id"]).drop_duplicates("issuer_id")
        out = first.set_index("issuer_id")["market_id"]
        issuers = self._reference("issuers")
        if len(issuers):
            iss = issuers.set_index("issuer_id")["market_id"]
            out = pd.concat([iss, out[~out.index.isin(iss.index)]])
        return out

    def _article_markets_from_links(self) -> pd.Series:
        parsed = self._parse_table("news_links")
        if parsed is None:
            return pd.Series(dtype=object)
        links, _ = parsed
        inst = self._reference("instruments").set_index("instrument_id")["market_id"]
        m = links["market_id"].where(links["market_id"].notna(),
                                     links["instrument_id"].map(inst))
        m = m.where(m.notna(), links["issuer_id"].map(self._issuer_markets()))
        both = pd.DataFrame({"article_id": links["article_id"], "market_id": m}).dropna()
        return both.drop_duplicates("article_id").set_index("article_id")["market_id"]

    def _derive_news_dates(self, frame: pd.DataFrame) -> list[tuple[str, int, str]]:
        """Date of an article without one: the first session of its market that closes at or
        after the article's timestamp (news after the close counts for the next session)."""
        from prometheus_dagster.core.calendars import trading_calendar

        defects = []
        need = frame["date"].isna() & frame["timestamp"].notna() & frame["market_id"].notna()
        for market, idx in frame[need].groupby("market_id").groups.items():
            ts = frame.loc[idx, "timestamp"]
            try:
                cal = trading_calendar(market)
                sessions = cal.sessions_frame(ts.min().normalize() - pd.Timedelta(days=1),
                                              ts.max().normalize() + pd.Timedelta(days=14))
            except (ConfigError, ValueError) as exc:
                for i in frame.index.get_indexer(idx):
                    defects.append(self._row_defect(
                        frame, i, f"date cannot be derived from the timestamp ({exc}); add a "
                                  "date column"))
                continue
            closes = sessions["close_utc"].to_numpy()
            pos = np.searchsorted(closes, ts.to_numpy(), side="left")
            ok = pos < len(closes)
            dates = pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]")
            dates[ok] = sessions["date"].to_numpy()[pos[ok]]
            frame.loc[idx, "date"] = dates
        return defects

    def _table(self, table: str) -> _Table:
        deps = {
            "prices_daily": ("instruments",),
            "corporate_actions": ("instruments",),
            "fundamentals": ("instruments", "issuers"),
            "news_articles": ("instruments", "issuers", "news_links"),
            "news_links": ("instruments", "issuers", "news_articles"),
        }.get(table, ())
        with self._lock:
            sig = (self._signature(table), *(self._signature(d) for d in deps))
            hit = self._table_cache.get(table)
            if hit is not None and hit[0] == sig:
                return hit[1]
            schema = get_schema(table)
            parsed = self._parse_table(table)
            if parsed is None:
                built = _build_table(schema, _with_provenance(empty_frame(schema)), [])
            else:
                frame, defects = parsed
                frame = frame.copy()
                frame, more = self._derive(table, frame)
                built = _build_table(schema, frame, defects + more)
            self._table_cache[table] = (sig, built)
            return built

    def first_row(self, table: str, market_id: str | None) -> tuple[pd.Timestamp, str, int] | None:
        """``(date, file, row)`` of the earliest dated row of ``table`` for ``market_id`` (None
        for GLOBAL tables), or None when there is none."""
        schema = get_schema(table)
        if not self.files(table):
            return None
        part = self._table(table).by_market.get(market_id if schema.market_column else None)
        if part is None or not len(part[0]):
            return None
        frame, dates = part
        return (pd.Timestamp(dates[0]), str(frame[SOURCE_FILE].iat[0]),
                int(frame[SOURCE_ROW].iat[0]))

    def fetch(self, table: str, market_id: str | None, start: dt.date,
              end: dt.date) -> pd.DataFrame:
        """Canonical rows of ``table`` (with provenance columns) for ``market_id`` whose
        partition date lies in ``[start, end]``. Raises SourceError when a file the table needs
        is broken, or a defective row falls in the range."""
        check_table_name(table, market_id)
        schema = get_schema(table)
        if not self.files(table):
            return _with_provenance(empty_frame(schema))
        t = self._table(table)
        lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        d = t.defects
        if len(d):
            hit = d["date"].isna() | ((d["date"] >= lo) & (d["date"] <= hi))
            if market_id is not None:
                hit &= d["market_id"].isna() | (d["market_id"] == market_id)
            if hit.any():
                raise SourceError(_join_problems(
                    f"{table} {market_id or 'GLOBAL'} {lo.date()}..{hi.date()}",
                    d.loc[hit, "message"].tolist()))
        key = market_id if schema.market_column else None
        part = t.by_market.get(key)
        if part is None:
            return _with_provenance(empty_frame(schema))
        frame, dates = part
        i0 = np.searchsorted(dates, lo.to_datetime64(), side="left")
        i1 = np.searchsorted(dates, hi.to_datetime64(), side="right")
        return frame.iloc[i0:i1].reset_index(drop=True).copy()


def _read_csv(path: Path, schema: TableSchema) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
    numeric = [h for h in header if str(h).strip() in schema.column_names
               and schema.column(str(h).strip()).dtype == "float"]
    text = dict(dtype=str, keep_default_na=False, na_values=[], skip_blank_lines=False,
                encoding="utf-8-sig")
    if numeric:
        try:
            return pd.read_csv(
                path, dtype={h: ("float64" if h in numeric else str) for h in header},
                keep_default_na=False, na_values={h: sorted(NULL_TOKENS) for h in numeric},
                skip_blank_lines=False, encoding="utf-8-sig")
        except ValueError:
            pass  # a value that is not a number (or a malformed file): read as text
    return pd.read_csv(path, **text)


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for s in SUFFIXES:
        if low.endswith(s):
            return name[: -len(s)]
    return name


def _with_provenance(df: pd.DataFrame) -> pd.DataFrame:
    """An empty canonical frame with the provenance columns added."""
    df = df.copy()
    df[SOURCE_FILE] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df[SOURCE_ROW] = pd.Series([0] * len(df), index=df.index, dtype="int64")
    return df


def _join_problems(what: str, problems: list[str]) -> str:
    shown = problems[:MAX_LISTED_DEFECTS]
    more = len(problems) - len(shown)
    text = "\n".join(shown)
    if len(problems) > 1:
        text = f"{len(problems)} problem(s) in {what}:\n{text}"
    if more:
        text += f"\n... and {more} more"
    return text


def _build_table(schema: TableSchema, frame: pd.DataFrame,
                 defects: list[tuple[str, int, str]]) -> _Table:
    """Index the table for fetches: per market, rows sorted by the partition column; defects
    placed at their row's date and market."""
    date_col = schema.partition_column
    assert date_col is not None
    if defects:
        dk = pd.DataFrame(defects, columns=[SOURCE_FILE, SOURCE_ROW, "message"])
        where = frame[[SOURCE_FILE, SOURCE_ROW, date_col]].rename(columns={date_col: "date"})
        where["market_id"] = frame[schema.market_column] if schema.market_column else None
        where = where.drop_duplicates([SOURCE_FILE, SOURCE_ROW])
        dk = dk.merge(where, on=[SOURCE_FILE, SOURCE_ROW], how="left")
        dk = dk.sort_values([SOURCE_FILE, SOURCE_ROW], kind="stable")
        dk = dk[["date", "market_id", "message"]].reset_index(drop=True)
    else:
        dk = pd.DataFrame({"date": pd.Series([], dtype="datetime64[ns]"),
                           "market_id": pd.Series([], dtype=object),
                           "message": pd.Series([], dtype=object)})
    # A row without a usable date can never be placed: it fails every fetch of the table.
    no_date = frame[date_col].isna()
    if no_date.any():
        flagged = {(f, r) for f, r, _ in defects}
        extra = [
            {"date": pd.NaT, "market_id": None,
             "message": f"{_at(f, int(r))}: column {date_col!r} is empty (every row needs a "
                        "date)"}
            for f, r in zip(frame.loc[no_date, SOURCE_FILE], frame.loc[no_date, SOURCE_ROW],
                            strict=True)
            if (f, int(r)) not in flagged
        ]
        if extra:
            dk = pd.concat([dk, pd.DataFrame(extra)], ignore_index=True)
    frame = frame[~no_date]
    by_market: dict[str | None, tuple[pd.DataFrame, np.ndarray]] = {}
    if schema.market_column:
        groups = frame.groupby(schema.market_column, sort=False, dropna=True)
        items = [(m, g) for m, g in groups]
    else:
        items = [(None, frame)]
    for m, g in items:
        g = g.sort_values(date_col, kind="stable").reset_index(drop=True)
        by_market[m] = (g, g[date_col].to_numpy(dtype="datetime64[ns]"))
    return _Table(frame=frame, by_market=by_market, defects=dk)


SELF_ISSUER_NOTE = "prices only: the instrument is its own issuer"


def self_issuers(instruments: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(instruments, issuers) of a market that lists no issuer: each EQUITY instrument without
    an issuer becomes a COMPANY issuer of its own (issuer_id = instrument_id, name = symbol),
    so that the engines keyed by issuer (profiles, stability, universes) see the stock; the
    issuer's metadata says it was derived."""
    own = (instruments["asset_class"].astype(str) == "EQUITY") & instruments["issuer_id"].isna()
    if not own.any():
        return instruments, empty_frame("issuers")
    instruments = instruments.copy()
    instruments.loc[own, "issuer_id"] = instruments.loc[own, "instrument_id"]
    rows = instruments.loc[own]
    issuers = empty_frame("issuers").reindex(range(len(rows)))
    issuers = issuers.assign(
        issuer_id=rows["instrument_id"].to_numpy(), issuer_type="COMPANY",
        name=rows["symbol"].to_numpy(), market_id=rows["market_id"].to_numpy(),
        metadata=[{"derived": SELF_ISSUER_NOTE}] * len(rows))
    return instruments, issuers
