"""Check a folder of files before ingesting it: the file-source layout, the data-quality rules of
ingestion and the configured history, without writing anything (no warehouse, no Dagster run).

:func:`check_folder` returns a :class:`DataCheck`: every problem with its file, line and rule,
and the coverage of each table per market (first and last date, rows, instruments or other
keys). ``python -m prometheus_dagster.cli check-data DIR [--market M]`` prints it.

Rules, beyond the file source's own (a file that parses, known columns, values of the column's
type, keys that resolve to a market) and the quality gate's (``quality.check_staged`` on the
whole table at once, with the limits of configs/engines/ingestion.yaml):

* ``market configured``: every market of instruments is a market of configs/markets.yaml;
* ``date is a session``: ingestion refuses rows on a day that is not a partition of their market
  (a weekend or holiday; business days for GLOBAL macro series);
* ``history_start``: rows dated before their market's history start are never ingested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from prometheus_dagster.core.calendars import (
    GLOBAL,
    HISTORY_START_SETTING,
    history_start,
    load_markets,
    trading_calendar,
)
from prometheus_dagster.core.errors import ConfigError, SourceError
from prometheus_dagster.core.ingestion_config import ingestion_config
from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.ingestion.file_source import FileDefect, FileSource
from prometheus_dagster.engines.ingestion.quality import GateLimits, check_staged
from prometheus_dagster.engines.ingestion.sources import (
    GLOBAL_TABLES,
    SOURCE_FILE,
    SOURCE_ROW,
    TABLES_BY_MARKET,
)

# what the coverage counts per table: (column, name of its values)
KEY_COLUMNS = {"prices_daily": ("instrument_id", "instruments"),
               "corporate_actions": ("instrument_id", "instruments"),
               "fundamentals": ("issuer_id", "issuers"),
               "news_articles": ("article_id", "articles"),
               "news_links": ("article_id", "articles"),
               "macro_time_series": ("series_id", "series")}


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (file and data row; None for the whole folder or file), which
    rule, what; WARN problems are reported but do not fail the check."""

    file: str | None
    row: int | None
    rule: str
    detail: str
    severity: str = "ERROR"

    @property
    def location(self) -> str:
        if self.file is None:
            return "(folder)"
        if self.row is None:
            return self.file
        if self.file.lower().endswith((".csv", ".csv.gz")):
            return f"{self.file}:{self.row + 1}"  # the header is line 1
        return f"{self.file}:row {self.row}"

    def __str__(self) -> str:
        return f"{self.severity:<5} {self.location}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class Coverage:
    table: str
    market: str
    first: pd.Timestamp
    last: pd.Timestamp
    rows: int
    keys: int
    key_name: str


@dataclass
class DataCheck:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "ERROR"]

    def report(self) -> str:
        n_warn = len(self.problems) - len(self.errors)
        lines = [f"check-data {self.root}: {len(self.errors)} problem(s), {n_warn} warning(s)"]
        lines += [str(p) for p in self.problems]
        lines.append("coverage:")
        if not self.coverage:
            lines.append("  (no dated rows)")
        head = f"  {'table':<18} {'market':<8} {'first':<10}  {'last':<10}  {'rows':>8}  keys"
        lines += [head] if self.coverage else []
        for c in self.coverage:
            lines.append(f"  {c.table:<18} {c.market:<8} {c.first.date()!s:<10}  "
                         f"{c.last.date()!s:<10}  {c.rows:>8}  {c.keys} {c.key_name}")
        return "\n".join(lines)


def _strip_location(message: str, file: str | None, row: int | None) -> str:
    """``message`` without the location prefix the file source or the gate put in front."""
    from prometheus_dagster.engines.ingestion.sources import describe_location

    if file is None or row is None:
        return message
    for prefix in (f"{describe_location(file, row)}: ",
                   f"{describe_location(file, row).replace(' line ', ': line ')}: ",
                   f"{describe_location(file, row).replace(' row ', ': row ')}: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    if message.startswith("rule ") and " failed: " in message:
        message = message.split(" failed: ", 1)[1]
    return message


def _from_defect(defect: FileDefect) -> Problem:
    file, row, rule, message = defect
    return Problem(file, row, rule, _strip_location(message, file, row))


def _partition_days(market: str, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    if market == GLOBAL:
        return pd.bdate_range(first, last)
    return trading_calendar(market).sessions(first, last)


def _dated_rules(table: str, market: str, frame: pd.DataFrame, date_col: str) -> list[Problem]:
    """Rows before the market's history start (one problem with the first of them) and rows on
    days that are not partitions of the market."""
    out: list[Problem] = []
    dates = pd.to_datetime(frame[date_col]).dt.normalize()
    start = pd.Timestamp(history_start(market))
    early = dates < start
    if early.any():
        i = int(early.to_numpy().nonzero()[0][0])
        out.append(Problem(
            frame[SOURCE_FILE].iat[i], int(frame[SOURCE_ROW].iat[i]), "history_start",
            f"{int(early.sum())} {market} {table} row(s) dated from {dates[early].min().date()}, "
            f"before the history start {start.date()}, would never be ingested; set an earlier "
            f"{HISTORY_START_SETTING}"))
    inside = dates[~early]
    if len(inside):
        try:
            days = set(_partition_days(market, inside.min(), inside.max()))
        except ValueError as exc:
            return [*out, Problem(None, None, "date is a session", str(exc))]
        what = "business day" if market == GLOBAL else f"{market} trading session"
        for i in (~early & ~dates.isin(days)).to_numpy().nonzero()[0]:
            out.append(Problem(frame[SOURCE_FILE].iat[i], int(frame[SOURCE_ROW].iat[i]),
                               "date is a session", f"{date_col} {dates.iat[i].date()} is not a "
                               f"{what}: ingestion refuses the row"))
    return out


def _gate(table: str, frame: pd.DataFrame, limits: GateLimits, actions: pd.DataFrame | None,
          flagged: set[tuple[str, int]]) -> list[Problem]:
    report = check_staged(table, frame.reset_index(drop=True), limits=limits,
                          corporate_actions=actions)
    out = []
    for issue in report.issues:
        if issue.file is not None and (issue.file, issue.row) in flagged \
                and issue.rule in ("required", "type"):
            continue  # the file source already named this value
        out.append(Problem(issue.file, issue.row, issue.rule,
                           _strip_location(issue.message, issue.file, issue.row),
                           issue.severity))
    return out


def _check_reference(source: FileSource, check: DataCheck, market: str | None) -> bool:
    """Problems of instruments and issuers; False when they are too broken to go on."""
    for table in ("instruments", "issuers"):
        broken = source.file_problems(table)
        check.problems += [Problem(None, None, "file readable", m) for m in broken]
        if broken:
            return False
        frame, defects = source.unchecked_reference(table)
        found = [_from_defect(d) for d in source.reference_defects(table, frame, defects)]
        check.problems += found
        if found and table == "instruments":
            return False
        if table == "instruments":
            configured = load_markets().markets
            for m, grp in frame.groupby("market_id", sort=True):
                if m not in configured and (market is None or m == market):
                    check.problems.append(Problem(
                        grp[SOURCE_FILE].iat[0], int(grp[SOURCE_ROW].iat[0]),
                        "market configured", f"market_id {m!r} ({len(grp)} instrument(s)) is "
                        f"not a market of configs/markets.yaml ({', '.join(configured)})"))
    return True


def check_folder(root: str | Path, market: str | None = None,
                 limits: GateLimits | None = None) -> DataCheck:
    """Check the folder ``root`` (all markets, or only ``market``); see the module docstring."""
    check = DataCheck(Path(root))
    if market is not None and market not in load_markets().markets:
        raise ConfigError(f"--market {market!r} is not a market of configs/markets.yaml "
                          f"({', '.join(load_markets().markets)})")
    try:
        source = FileSource(root)
    except SourceError as exc:
        check.problems.append(Problem(None, None, "layout", str(exc)))
        return check
    if not _check_reference(source, check, market):
        return check
    limits = limits or GateLimits(**ingestion_config().quality.model_dump())
    configured = set(load_markets().markets)
    actions = None
    # corporate actions first: a SPLIT excuses a large price move
    tables = ["corporate_actions", *(t for t in TABLES_BY_MARKET if t != "corporate_actions")]
    for table in (*tables, *GLOBAL_TABLES):
        broken = source.file_problems(table)
        check.problems += [Problem(None, None, "file readable", m) for m in broken]
        if broken or not source.files(table):
            continue
        schema = get_schema(table)
        frame, defects = source.unchecked_daily(table)
        check.problems += [_from_defect(d) for d in defects]
        flagged = {(f, r) for f, r, _, _ in defects}
        if table == "corporate_actions":
            actions = frame
        date_col = schema.partition_column
        assert date_col is not None
        groups = (frame.groupby(schema.market_column, sort=True) if schema.market_column
                  else [(GLOBAL, frame)])
        for m, part in groups:
            m = str(m)
            if (market is not None and m not in (market, GLOBAL)) or m not in \
                    configured | {GLOBAL}:
                continue
            check.problems += _gate(table, part, limits,
                                    actions if table == "prices_daily" else None, flagged)
            check.problems += _dated_rules(table, m, part, date_col)
            dates = pd.to_datetime(part[date_col])
            key, key_name = KEY_COLUMNS[table]
            check.coverage.append(Coverage(table, m, dates.min(), dates.max(), len(part),
                                           int(part[key].nunique()), key_name))
    order = {"ERROR": 0, "WARN": 1}
    check.problems.sort(key=lambda p: (order.get(p.severity, 2), p.file or "", p.row or 0))
    return check
