"""The data-quality gate of ingestion, on great-expectations 1.x.

:func:`check_staged` validates a staged batch (a raw frame, as a source returns it) before it is
written and returns a :class:`QualityReport`. Issues of severity ERROR block the write of the
dates they fall on; WARN issues are reported and recorded but do not block.

ERROR rules come from a great-expectations suite **generated from the table's schema**
(``core.schemas``): every required column non-empty, the primary key unique
(``ExpectCompoundColumnsToBeUnique``), the logical type of each typed column, plus the rules of the
data model for the tables they concern (:data:`TABLE_RULES`): prices > 0, high >= max(open,
close), low <= min(open, close), high >= low, volume >= 0; corporate actions: known action type,
value > 0 for SPLIT, value >= 0 for DIVIDEND; fundamentals: report_date >= period_end; macro:
known frequency. Values that cannot be converted to the column's type are ERROR issues too
(rather than exceptions), and the suite runs on the rest of the frame.

ERROR rules with configurable limits (:class:`GateLimits`, from ``quality:`` in
``configs/engines/ingestion.yaml``): prices <= ``max_price``; a day-to-day move of at most
``max_daily_move`` times (up or down) unless the instrument has a SPLIT that day; and, when the
rows already stored for the checked dates are given (``stored``), "stored rows kept": a date
that would go from N stored rows to none, or (prices) lose more than ``max_instrument_loss`` of
its stored instruments, fails unless ``allow_row_loss`` (instruments with a DELISTING on or before
the date are not counted as lost). Those issues name the date (``QualityIssue.date``), not a row.

WARN rules look at a row in the context of its neighbours (``history`` holds earlier rows of the
same table, e.g. previous closes): return outliers (|log return| > 10 sigma of the instrument's
returns), stale prices (close unchanged with volume 0, or unchanged for 3 sessions or more),
coverage (fewer instruments on a date than expected) and fundamentals continuity (a line item
that moves by more than 5x from one period to the next).

Every issue names the file and line of the offending row when the frame carries the provenance
columns ``_source_file``/``_source_row`` (see ``sources.describe_location``), the rule and the
offending values, e.g. ``prices.csv line 12: rule high >= max(open, close) failed: high=9.5 <
close=10.1 (instrument_id EQUITY:AAA, date 2024-02-05)``. ``QualityIssue.index`` is the label of
the offending row in the checked frame.

great-expectations is imported on first use (it takes seconds) and one ephemeral context is
built per process, with its progress bars turned off.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataQualityError
from prometheus_dagster.core.schemas import TableSchema, get_schema
from prometheus_dagster.engines.ingestion.normalize import coerce_column, describe_value
from prometheus_dagster.engines.ingestion.sources import (
    PROVENANCE_COLUMNS,
    SOURCE_FILE,
    SOURCE_ROW,
    describe_location,
)

Severity = Literal["ERROR", "WARN"]
ERROR: Severity = "ERROR"
WARN: Severity = "WARN"

# The thresholds of the WARN rules are GateLimits fields (outlier_sigma, min_sigma_returns,
# sigma_floor, stale_repeat, continuity_ratio).
CONTINUITY_ITEMS = ("total_assets", "total_liabilities", "revenue", "shares_outstanding")
LISTED_LOST = 5               # lost instruments named in a row-loss message

ACTION_TYPES = ("SPLIT", "DIVIDEND", "DELISTING")
FREQUENCIES = ("D", "W", "M", "Q")
PRICE_COLUMNS = ("open", "high", "low", "close", "adjusted_close")

_ROW = "__qrow__"  # positional row number handed to great-expectations


@dataclass
class QualityIssue:
    """One failed rule on one row (or on the whole batch when ``row`` and ``index`` are None).

    ``file``/``row``: where the row came from (``row`` is the 1-based data row of ``file``; the
    CSV line is ``row + 1``); without provenance, ``row`` is the 1-based position in the checked
    frame and ``file`` is None. ``index`` is the row's label in the checked frame."""

    table: str
    rule: str
    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None
    severity: Severity = ERROR
    index: Any = None
    date: pd.Timestamp | None = None  # the date an issue about a whole date (no row) concerns


@dataclass(frozen=True)
class GateLimits:
    """Configurable limits of the gate (``quality:`` in configs/engines/ingestion.yaml)."""

    max_price: float = 1.0e9
    max_daily_move: float = 50.0
    max_instrument_loss: float = 0.5
    allow_row_loss: bool = False
    # WARN rules
    outlier_sigma: float = 10.0  # |log return| above this many sigmas is an outlier
    min_sigma_returns: int = 10  # returns needed to estimate an instrument's sigma
    sigma_floor: float = 5e-4  # sigma never below 5 bp a day (pegged or illiquid series)
    stale_repeat: int = 3  # identical closes on this many consecutive rows are stale
    continuity_ratio: float = 5.0  # a line item moving by more than 5x (or 1/5) is a jump


@dataclass
class QualityReport:
    """Outcome of :func:`check_staged`: ERROR issues block the write, warnings do not."""

    table: str
    n_rows: int
    errors: list[QualityIssue] = field(default_factory=list)
    warnings: list[QualityIssue] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def issues(self) -> list[QualityIssue]:
        return [*self.errors, *self.warnings]

    def summary(self, limit: int = 20) -> str:
        """A readable summary: counts per rule, then up to ``limit`` messages."""
        head = (f"{self.table}: {self.n_rows} row(s), {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s): {'PASSED' if self.passed else 'FAILED'}")
        if not self.issues:
            return head
        counts: dict[tuple[str, str], int] = {}
        for i in self.issues:
            counts[(i.severity, i.rule)] = counts.get((i.severity, i.rule), 0) + 1
        lines = [head]
        lines += [f"  {sev} {rule}: {n}" for (sev, rule), n in counts.items()]
        shown = self.issues[:limit]
        lines += [f"  - [{i.severity}] {i.message}" for i in shown]
        if len(self.issues) > len(shown):
            lines.append(f"  ... and {len(self.issues) - len(shown)} more")
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Raise DataQualityError with the summary when there are ERROR issues."""
        if self.errors:
            raise DataQualityError(self.summary())


# --- rule declarations --------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One expectation of a generated suite.

    ``kind``: not_null | type | unique | between | at_most | pair | in_set. ``rule`` is the
    name shown to users (several expectations may share it, e.g. the two halves of high >=
    max(open, close)). For ``pair`` rules A >= B (``strict`` False) or A > B is expected."""

    rule: str
    kind: str
    columns: tuple[str, ...]
    min_value: float | None = None
    max_value: float | None = None
    strict: bool = False
    value_set: tuple[str, ...] = ()
    type_list: tuple[str, ...] = ()
    condition: tuple[str, str] | None = None  # (column, value): applies where column == value
    severity: Severity = ERROR


def _between(rule: str, column: str, min_value: float, strict: bool,
             condition: tuple[str, str] | None = None) -> Rule:
    return Rule(rule, "between", (column,), min_value=min_value, strict=strict,
                condition=condition)


def _pair(rule: str, a: str, b: str, strict: bool = False) -> Rule:
    return Rule(rule, "pair", (a, b), strict=strict)


# Rules of the data model for the tables they concern, on top of the schema's
# (docs/engines/ingestion.md).
TABLE_RULES: dict[str, tuple[Rule, ...]] = {
    "prices_daily": (
        *(_between("prices > 0", c, 0.0, True) for c in PRICE_COLUMNS),
        _pair("high >= max(open, close)", "high", "open"),
        _pair("high >= max(open, close)", "high", "close"),
        _pair("low <= min(open, close)", "open", "low"),
        _pair("low <= min(open, close)", "close", "low"),
        _pair("high >= low", "high", "low"),
        _between("volume >= 0", "volume", 0.0, False),
    ),
    "corporate_actions": (
        Rule("action_type in (SPLIT, DIVIDEND, DELISTING)", "in_set", ("action_type",),
             value_set=ACTION_TYPES),
        Rule("value > 0 for SPLIT", "not_null", ("value",), condition=("action_type", "SPLIT")),
        _between("value > 0 for SPLIT", "value", 0.0, True, ("action_type", "SPLIT")),
        _between("value >= 0 for DIVIDEND", "value", 0.0, False, ("action_type", "DIVIDEND")),
    ),
    "fundamentals": (
        _pair("report_date >= period_end", "report_date", "period_end"),
    ),
    "macro_time_series": (
        Rule("frequency in (D, W, M, Q)", "in_set", ("frequency",), value_set=FREQUENCIES),
    ),
}

_GE_TYPES = {
    "float": ("float64",),
    "int": ("Int64", "int64"),
    "date": ("datetime64", "datetime64[ns]"),
    "timestamp": ("datetime64", "datetime64[ns]"),
    "bool": ("boolean", "bool"),
}


def price_bound_rules(max_price: float) -> tuple[Rule, ...]:
    """prices <= ``max_price`` for every price column."""
    return tuple(Rule(f"prices <= {max_price:g}", "at_most", (c,), max_value=max_price)
                 for c in PRICE_COLUMNS)


def suite_rules(table: str | TableSchema, limits: GateLimits | None = None) -> list[Rule]:
    """The rules of a table's suite: generated from its schema, then the table's own (with the
    configurable bounds of ``limits``)."""
    schema = table if isinstance(table, TableSchema) else get_schema(table)
    limits = limits or GateLimits()
    rules: list[Rule] = []
    for c in schema.columns:
        if not c.nullable:
            rules.append(Rule("required", "not_null", (c.name,)))
    for c in schema.columns:
        if c.dtype in _GE_TYPES:
            rules.append(Rule("type", "type", (c.name,), type_list=_GE_TYPES[c.dtype]))
    if schema.primary_key:
        rules.append(Rule(f"unique ({', '.join(schema.primary_key)})", "unique",
                          tuple(schema.primary_key)))
    rules += TABLE_RULES.get(schema.name, ())
    if schema.name == "prices_daily":
        rules += price_bound_rules(limits.max_price)
    return rules


# --- great-expectations plumbing ----------------------------------------------------------------
_LOCK = threading.RLock()
_GX: dict[str, Any] = {}


def _gx() -> dict[str, Any]:
    """The module-level great-expectations state: module, context, batch definition, suites."""
    with _LOCK:
        if not _GX:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                             metric_calculations=False)
            batch_def = (ctx.data_sources.add_pandas("prometheus_staged")
                         .add_dataframe_asset("staged")
                         .add_batch_definition_whole_dataframe("whole"))
            _GX.update(gx=gx, ctx=ctx, batch_def=batch_def, suites={})
        return _GX


def _expectation(gx: Any, rule: Rule, i: int) -> Any:
    E = gx.expectations
    meta = {"prometheus_rule": i}
    cond: dict[str, Any] = {}
    if rule.condition is not None:
        col, value = rule.condition
        cond = {"row_condition": f'{col}=="{value}"', "condition_parser": "pandas"}
    if rule.kind == "not_null":
        return E.ExpectColumnValuesToNotBeNull(column=rule.columns[0], meta=meta, **cond)
    if rule.kind == "type":
        return E.ExpectColumnValuesToBeInTypeList(column=rule.columns[0],
                                                  type_list=list(rule.type_list), meta=meta)
    if rule.kind == "unique":
        if len(rule.columns) == 1:
            return E.ExpectColumnValuesToBeUnique(column=rule.columns[0], meta=meta)
        return E.ExpectCompoundColumnsToBeUnique(column_list=list(rule.columns),
                                                 ignore_row_if="never", meta=meta)
    if rule.kind == "between":
        return E.ExpectColumnValuesToBeBetween(column=rule.columns[0], min_value=rule.min_value,
                                               strict_min=rule.strict, meta=meta, **cond)
    if rule.kind == "at_most":
        return E.ExpectColumnValuesToBeBetween(column=rule.columns[0], max_value=rule.max_value,
                                               meta=meta, **cond)
    if rule.kind == "pair":
        return E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=rule.columns[0], column_B=rule.columns[1], or_equal=not rule.strict,
            ignore_row_if="either_value_is_missing", meta=meta)
    if rule.kind == "in_set":
        return E.ExpectColumnValuesToBeInSet(column=rule.columns[0],
                                             value_set=list(rule.value_set), meta=meta, **cond)
    raise AssertionError(rule.kind)


def _suite(table: str, rules: list[Rule]) -> Any:
    """The generated suite of ``table`` (built once per process per rule list)."""
    state = _gx()
    key = (table, tuple(rules))
    with _LOCK:
        suite = state["suites"].get(key)
        if suite is None:
            gx = state["gx"]
            suite = gx.ExpectationSuite(
                name=f"prometheus_{table}_{len(state['suites'])}",
                expectations=[_expectation(gx, r, i) for i, r in enumerate(rules)],
            )
            suite = state["ctx"].suites.add(suite)
            state["suites"][key] = suite
        return suite


def _run_suite(table: str, rules: list[Rule], frame: pd.DataFrame) -> dict[int, list[int]]:
    """Validate ``frame`` (which has the positional column ``_ROW``) and return, per failed
    rule, the positions of the offending rows ([] for a column-level failure)."""
    if not rules:
        return {}
    suite = _suite(table, rules)
    state = _gx()
    with _LOCK:
        batch = state["batch_def"].get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format={
            "result_format": "COMPLETE", "unexpected_index_column_names": [_ROW]})
    failed: dict[int, list[int]] = {}
    for r in result.results:
        if r.success:
            continue
        i = int(r.expectation_config.meta["prometheus_rule"])
        info = r.exception_info or {}
        if info.get("raised_exception"):
            raise RuntimeError(f"great-expectations failed on rule {rules[i].rule} of "
                               f"{table}: {info.get('exception_message')}")
        idx = (r.result or {}).get("unexpected_index_list") or []
        failed[i] = sorted({int(d[_ROW]) for d in idx if isinstance(d, dict) and _ROW in d})
    return failed


# --- messages -----------------------------------------------------------------------------------
class _Ctx:
    """What messages need to know about the checked frame."""

    def __init__(self, schema: TableSchema, raw: pd.DataFrame, work: pd.DataFrame,
                 limits: GateLimits):
        self.schema = schema
        self.limits = limits
        self.raw = raw
        self.work = work
        self.has_prov = SOURCE_FILE in raw.columns and SOURCE_ROW in raw.columns
        self.labels = raw.index

    def where(self, pos: int) -> tuple[str | None, int]:
        if self.has_prov:
            f = self.raw[SOURCE_FILE].iat[pos]
            r = self.raw[SOURCE_ROW].iat[pos]
            if f is not None and f == f and r is not None and r == r:
                return str(f), int(r)
        return None, pos + 1

    def prefix(self, pos: int) -> str:
        f, r = self.where(pos)
        return describe_location(f, r) if f is not None else f"{self.schema.name} row {r}"

    def context(self, pos: int) -> str:
        """The row's key values, e.g. ``(instrument_id EQUITY:AAA, date 2024-02-05)``."""
        keys = list(self.schema.primary_key)
        pc = self.schema.partition_column
        if pc and pc not in keys:
            keys.append(pc)
        parts = []
        for k in keys:
            if k in self.work.columns:
                parts.append(f"{k} {_fmt(self.work[k].iat[pos])}")
        return f" ({', '.join(parts)})" if parts else ""

    def issue(self, rule: str, pos: int, detail: str, column: str | None,
              severity: Severity = ERROR, with_context: bool = True) -> QualityIssue:
        f, r = self.where(pos)
        kind = "failed" if severity == ERROR else "flagged"
        ctx = self.context(pos) if with_context else ""
        return QualityIssue(
            table=self.schema.name, rule=rule,
            message=f"{self.prefix(pos)}: rule {rule} {kind}: {detail}{ctx}",
            file=f, row=r, column=column, severity=severity, index=self.labels[pos],
        )


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return "None"
    if isinstance(v, pd.Timestamp | np.datetime64):
        ts = pd.Timestamp(v)
        if pd.isna(ts):
            return "None"
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()
    if isinstance(v, float | np.floating):
        return f"{float(v):.10g}"
    if isinstance(v, np.generic):
        return str(v.item())
    try:
        if pd.isna(v):
            return "None"
    except (TypeError, ValueError):
        pass
    return str(v)


def _detail(rule: Rule, work: pd.DataFrame, pos: int) -> str:
    """What exactly failed on a row, with the values."""
    def val(c: str) -> str:
        return f"{c}={_fmt(work[c].iat[pos])}"

    if rule.kind == "not_null":
        if rule.rule == "required":
            return f"column {rule.columns[0]!r} is empty"
        return f"{rule.columns[0]} is empty"
    if rule.kind == "between":
        op = ">" if rule.strict else ">="
        return f"{val(rule.columns[0])} is not {op} {_fmt(rule.min_value)}"
    if rule.kind == "at_most":
        return f"{val(rule.columns[0])} is not <= {rule.max_value:g}"
    if rule.kind == "pair":
        a, b = rule.columns
        op = "<=" if rule.strict else "<"
        return f"{val(a)} {op} {val(b)}"
    if rule.kind == "in_set":
        return f"{val(rule.columns[0])} is not one of {', '.join(rule.value_set)}"
    return rule.rule


# --- the check ----------------------------------------------------------------------------------
def check_staged(table: str, df: pd.DataFrame, *, expected_instruments: int | None = None,
                 history: pd.DataFrame | None = None, limits: GateLimits | None = None,
                 corporate_actions: pd.DataFrame | None = None,
                 stored: pd.DataFrame | None = None) -> QualityReport:
    """Validate a staged batch of ``table`` and report every issue; never raises on bad data.

    ``df`` is the frame as a source returns it (canonical or raw; provenance columns are used
    for messages). ``expected_instruments``: instruments expected on each date (coverage
    warnings, prices). ``history``: earlier rows of the same table (previous closes for return
    outliers, stale prices and implausible moves; earlier statements for fundamentals
    continuity). ``limits``: the configurable bounds (defaults: :class:`GateLimits`).
    ``corporate_actions``: actions of the instruments (a SPLIT excuses a large move; a DELISTING
    excuses missing rows). ``stored``: the rows (at least the partition and key columns) stored
    now for the dates this batch replaces; every date in it is checked for row loss, including
    dates the batch has no rows for."""
    schema = get_schema(table)
    limits = limits or GateLimits()
    raw = df
    report = QualityReport(table=schema.name, n_rows=len(raw))
    n = len(raw)
    # 1. columns: unknown ones and missing required ones are batch-level errors
    extra = [c for c in raw.columns if c not in schema.column_names
             and c not in PROVENANCE_COLUMNS]
    if extra:
        report.errors.append(QualityIssue(
            schema.name, "columns", f"{schema.name}: unexpected column(s) "
            f"{', '.join(map(str, extra))}; the columns of {schema.name} are "
            f"{', '.join(schema.column_names)}", column=str(extra[0])))
    missing_required = [c.name for c in schema.columns
                        if not c.nullable and c.name not in raw.columns]
    if missing_required:
        report.errors.append(QualityIssue(
            schema.name, "required", f"{schema.name}: missing required column(s) "
            f"{', '.join(missing_required)}", column=missing_required[0]))

    # 2. types: convert what converts; values that do not are errors (and missing afterwards)
    work_cols: dict[str, pd.Series] = {}
    bad_type: dict[str, np.ndarray] = {}
    coerced: dict[str, Any] = {}
    positional = raw.reset_index(drop=True)
    for c in schema.columns:
        if c.name in positional.columns:
            res = coerce_column(c, positional[c.name])
            work_cols[c.name] = res.values.reset_index(drop=True)
            if res.any_bad:
                bad_type[c.name] = np.flatnonzero(res.bad.to_numpy())
                coerced[c.name] = res
        else:
            work_cols[c.name] = coerce_column(
                c, pd.Series([None] * n, dtype=object)).values.reset_index(drop=True)
    work = pd.DataFrame(work_cols)
    ctx = _Ctx(schema, raw, work, limits)
    for name, positions in bad_type.items():
        for pos in positions:
            value = positional[name].iat[pos]
            report.errors.append(ctx.issue(
                "type", int(pos), f"column {name!r} value {describe_value(value)} "
                f"{coerced[name].problem(int(pos))}", name))

    # 3. the generated great-expectations suite
    rules = [r for r in suite_rules(schema, limits)
             if all(c in raw.columns or schema.column(c).nullable for c in r.columns)
             and not (r.kind == "not_null" and r.rule == "required"
                      and r.columns[0] in missing_required)]
    if n:
        frame = work.copy()
        frame[_ROW] = np.arange(n)
        failed = _run_suite(schema.name, rules, frame)
        report.errors += _issues_from_suite(ctx, rules, failed, bad_type)

    # 4. errors in context: implausible moves, deliveries that would delete stored rows
    actions = _actions(corporate_actions)
    both = None  # prices: staged rows after the history, per instrument
    if schema.name == "prices_daily" and n:
        both = _combined(work, history, schema, ["instrument_id"], "date")
        report.errors += _implausible_moves(ctx, both, limits.max_daily_move, actions)
    if stored is not None and len(stored) and schema.partition_column:
        lost = _row_loss(schema, work, stored, limits, actions)
        report.errors += [i for i in lost if i.severity == ERROR]
        report.warnings += [i for i in lost if i.severity == WARN]

    # 5. warnings in context
    if n or expected_instruments:
        report.warnings += _warnings(ctx, schema, work, history, expected_instruments, both)
    report.errors.sort(key=lambda i: (i.file or "", i.row or 0))
    return report


def _issues_from_suite(ctx: _Ctx, rules: list[Rule], failed: dict[int, list[int]],
                       bad_type: dict[str, np.ndarray]) -> list[QualityIssue]:
    issues: list[QualityIssue] = []
    work = ctx.work
    merged: dict[tuple[str, int], list[tuple[Rule, str]]] = {}
    for i, positions in failed.items():
        rule = rules[i]
        if rule.kind == "type":
            if not positions:
                issues.append(QualityIssue(
                    ctx.schema.name, "type", f"{ctx.schema.name}: column {rule.columns[0]!r} "
                    f"does not have the type {rule.type_list[0]}", column=rule.columns[0]))
            continue
        if rule.kind == "unique":
            issues += _duplicate_issues(ctx, rule, positions)
            continue
        skip = set()
        if rule.kind == "not_null":
            skip = set(bad_type.get(rule.columns[0], np.array([], dtype=int)).tolist())
        for pos in positions:
            if pos in skip:
                continue  # already reported as a value of the wrong type
            merged.setdefault((rule.rule, pos), []).append((rule, _detail(rule, work, pos)))
    for (name, pos), parts in merged.items():
        detail = "; ".join(d for _, d in parts)
        issues.append(ctx.issue(name, pos, detail, parts[0][0].columns[0]))
    return issues


def _duplicate_issues(ctx: _Ctx, rule: Rule, positions: list[int]) -> list[QualityIssue]:
    """One issue per duplicated row, naming the other rows of its key."""
    if not positions:
        return []
    keys = list(rule.columns)
    sub = ctx.work.iloc[positions][keys].copy()
    sub["__pos"] = positions
    issues = []
    for _, grp in sub.groupby(keys, dropna=False, sort=False):
        plist = grp["__pos"].tolist()
        keyval = ", ".join(f"{k}={_fmt(grp[k].iat[0])}" for k in keys)
        for pos in plist:
            others = [ctx.prefix(p) for p in plist if p != pos]
            issues.append(ctx.issue(
                rule.rule, pos, f"duplicate key {keyval}, also at {'; '.join(others)}",
                keys[0], with_context=False))
    return issues


# --- ERROR rules in context ---------------------------------------------------------------------
def _actions(corporate_actions: pd.DataFrame | None) -> pd.DataFrame:
    """instrument_id, date (normalized) and action_type of the given corporate actions."""
    if corporate_actions is None or corporate_actions.empty:
        return pd.DataFrame({"instrument_id": pd.Series([], dtype=object),
                             "date": pd.Series([], dtype="datetime64[ns]"),
                             "action_type": pd.Series([], dtype=object)})
    out = corporate_actions[["instrument_id", "date", "action_type"]].copy()
    out["date"] = pd.to_datetime(out["date"]).dt.normalize().astype("datetime64[ns]")
    return out.dropna()


def _implausible_moves(ctx: _Ctx, both: pd.DataFrame, max_move: float,
                       actions: pd.DataFrame) -> list[QualityIssue]:
    """A staged price more than ``max_move`` times (or less than 1/``max_move``) the previous
    plausible price of its instrument, on a date without a SPLIT of that instrument. The move is
    measured on adjusted_close where both days have it, else on close; a rejected price is not
    the reference for the next day (so the day after a bad print is not blamed too)."""
    inst = both["instrument_id"]
    same = inst.eq(inst.shift(1))

    def ratio(col: str) -> pd.Series:
        p = both[col].where(both[col] > 0)
        return (p / p.shift(1)).where(same)

    r = ratio("adjusted_close")
    r = r.where(r.notna(), ratio("close"))
    suspect = ((r > max_move) | (r < 1 / max_move)).groupby(inst).transform("any")
    if not suspect.any():
        return []
    splits = set(zip(actions.loc[actions["action_type"] == "SPLIT", "instrument_id"],
                     actions.loc[actions["action_type"] == "SPLIT", "date"], strict=True))
    issues = []
    cols = ["instrument_id", "date", "close", "adjusted_close", "__pos"]
    for iid, grp in both.loc[suspect, cols].groupby("instrument_id", sort=False):
        ref = None  # the last plausible row of the instrument
        for row in grp.to_dict("records"):
            if not row["close"] > 0:
                continue
            if ref is None:
                ref = row
                continue
            col = ("adjusted_close" if row["adjusted_close"] > 0 and ref["adjusted_close"] > 0
                   else "close")
            move = row[col] / ref[col]
            if 1 / max_move <= move <= max_move or (iid, row["date"]) in splits:
                ref = row
            elif row["__pos"] >= 0:
                issues.append(ctx.issue(
                    f"daily move <= {max_move:g}x", int(row["__pos"]),
                    f"{col} {_fmt(ref[col])} -> {_fmt(row[col])} (x{move:.4g}) since "
                    f"{_fmt(ref['date'])}, with no SPLIT of the instrument on this date", col))
    return issues


def _row_loss(schema: TableSchema, work: pd.DataFrame, stored: pd.DataFrame,
              limits: GateLimits, actions: pd.DataFrame) -> list[QualityIssue]:
    """Per stored date: ERROR (WARN when ``allow_row_loss``) when the batch has none of its rows
    or (tables keyed by instrument) drops more than ``max_instrument_loss`` of its instruments;
    WARN for a smaller loss of instruments. Instruments delisted on or before the date do not
    count."""
    part = schema.partition_column
    assert part is not None
    name = schema.name
    keyed = "instrument_id" in schema.primary_key and "instrument_id" in stored.columns
    stored_dates = pd.to_datetime(stored[part]).dt.normalize()
    staged_dates = pd.to_datetime(work[part]).dt.normalize()
    n_stored = stored_dates.value_counts()
    n_staged = staged_dates.value_counts()
    lost_by_day: dict[pd.Timestamp, list[str]] = {}
    kept_count = pd.Series(dtype="int64")
    if keyed:
        delisted = actions[actions["action_type"] == "DELISTING"]
        delisted_on = delisted.groupby("instrument_id")["date"].min()
        before = pd.DataFrame({"day": stored_dates.to_numpy(),
                               "iid": stored["instrument_id"].to_numpy()}).dropna()
        left = pd.to_datetime(before["iid"].map(delisted_on)).astype("datetime64[ns]")
        before = before[~(left <= before["day"]).to_numpy()].drop_duplicates()
        kept_count = before.groupby("day").size()
        after = pd.DataFrame({"day": staged_dates.to_numpy(),
                              "iid": work["instrument_id"].to_numpy()}).dropna()
        merged = before.merge(after.drop_duplicates(), how="left", on=["day", "iid"],
                              indicator=True)
        lost = merged[merged["_merge"] == "left_only"].sort_values(["day", "iid"])
        lost_by_day = {pd.Timestamp(d): g["iid"].tolist() for d, g in lost.groupby("day")}
        days = sorted(lost_by_day)
    else:
        days = sorted(pd.Timestamp(d) for d in n_stored.index if d not in n_staged.index)
    severe: Severity = WARN if limits.allow_row_loss else ERROR
    opt_out = ("set quality.allow_row_loss: true in configs/engines/ingestion.yaml, or run "
               "with the tag prometheus/allow_row_loss=true, to accept it")
    issues = []
    for day in days:
        prefix = f"{name} {_fmt(day)}: rule stored rows kept"
        if day not in n_staged.index:
            detail = (f"the delivery has no rows for this date; writing it would delete its "
                      f"{int(n_stored[day])} stored row(s)")
            severity = severe
        else:
            lost_ids = lost_by_day[day]
            shown = ", ".join(lost_ids[:LISTED_LOST]) + (
                " ..." if len(lost_ids) > LISTED_LOST else "")
            detail = (f"{len(lost_ids)} of {int(kept_count[day])} stored instrument(s) have no "
                      f"row in the delivery ({shown}); writing it would delete their rows")
            too_many = len(lost_ids) / int(kept_count[day]) > limits.max_instrument_loss
            severity = severe if too_many else WARN
        if keyed and severity == ERROR:
            detail += " (an instrument with a DELISTING on or before the date is not counted)"
        if severity == ERROR:
            detail += f"; {opt_out}"
        kind = "failed" if severity == ERROR else "flagged"
        issues.append(QualityIssue(name, "stored rows kept", f"{prefix} {kind}: {detail}",
                                   column=part, severity=severity, date=day))
    return issues


# --- WARN rules ---------------------------------------------------------------------------------
def _combined(work: pd.DataFrame, history: pd.DataFrame | None, schema: TableSchema,
              keys: list[str], order: str) -> pd.DataFrame:
    """Staged rows (``__pos`` = position) after earlier ``history`` rows (``__pos`` = -1),
    sorted by ``keys`` then ``order``; history rows duplicated by staged ones are dropped."""
    staged = work.copy()
    staged["__pos"] = np.arange(len(work))
    if history is None or len(history) == 0:
        both = staged
    else:
        hist = {}
        for c in {*keys, order, *schema.column_names} & set(history.columns):
            if c in schema.column_names:
                hist[c] = coerce_column(schema.column(c), history[c].reset_index(drop=True)).values
        h = pd.DataFrame(hist)
        for c in staged.columns:
            if c not in h.columns and c != "__pos":
                h[c] = pd.Series([None] * len(h), dtype=staged[c].dtype) \
                    if staged[c].dtype != object else None
        h["__pos"] = -1
        h = h[staged.columns]
        both = pd.concat([h, staged], ignore_index=True) if len(h) else staged
        both = both.drop_duplicates([*keys, order], keep="last")
    both = both.dropna(subset=[*keys, order])
    return both.sort_values([*keys, order], kind="stable").reset_index(drop=True)


def _warnings(ctx: _Ctx, schema: TableSchema, work: pd.DataFrame,
              history: pd.DataFrame | None, expected: int | None,
              both: pd.DataFrame | None = None) -> list[QualityIssue]:
    out: list[QualityIssue] = []
    if schema.name == "prices_daily":
        if len(work):
            if both is None:
                both = _combined(work, history, schema, ["instrument_id"], "date")
            out += _return_outliers(ctx, both)
            out += _stale_prices(ctx, both)
        if expected:
            out += _coverage(ctx, work, expected)
    elif schema.name == "fundamentals" and len(work):
        both = _combined(work, history, schema, ["issuer_id"], "period_end")
        out += _continuity(ctx, both)
    return out


def _return_outliers(ctx: _Ctx, both: pd.DataFrame) -> list[QualityIssue]:
    """|log return| > outlier_sigma x sigma; the return uses adjusted_close where both days
    have it (so splits and dividends do not count), else close. sigma is a robust (MAD)
    estimate from the history's returns when there are enough of them, else from all returns."""
    inst = both["instrument_id"]
    same = inst.eq(inst.shift(1))

    def logret(col: str) -> pd.Series:
        p = both[col].where(both[col] > 0)
        return np.log(p / p.shift(1)).where(same)

    r = logret("adjusted_close")
    r = r.where(r.notna(), logret("close"))
    is_hist = both["__pos"] < 0
    hist_pair = is_hist & is_hist.shift(1, fill_value=False) & same

    def robust_sigma(rets: pd.Series) -> tuple[pd.Series, pd.Series]:
        g = rets.groupby(inst)
        med = g.transform("median")
        mad = (rets - med).abs().groupby(inst).median()
        return 1.4826 * mad.where(mad > 0, g.std()), g.count()

    sig_hist, n_hist = robust_sigma(r.where(hist_pair))
    sig_all, n_all = robust_sigma(r)
    lim = ctx.limits
    sigma = sig_hist.where(n_hist >= lim.min_sigma_returns, sig_all)
    enough = (n_hist >= lim.min_sigma_returns) | (n_all >= lim.min_sigma_returns)
    sigma = sigma.where(enough).clip(lower=lim.sigma_floor)
    row_sigma = inst.map(sigma)
    flag = (~is_hist & (r.abs() > lim.outlier_sigma * row_sigma)).to_numpy()
    issues = []
    for i in np.flatnonzero(flag):
        lr, s = float(r.iat[i]), float(row_sigma.iat[i])
        issues.append(ctx.issue(
            f"|return| <= {lim.outlier_sigma:g} sigma", int(both["__pos"].iat[i]),
            f"return {math.expm1(lr):+.2%} is {abs(lr) / s:.0f} sigma (sigma {s:.2%} a day)",
            "close", WARN))
    return issues


def _stale_prices(ctx: _Ctx, both: pd.DataFrame) -> list[QualityIssue]:
    """close identical to the previous close with volume 0, or repeated stale_repeat times."""
    repeat = ctx.limits.stale_repeat
    inst = both["instrument_id"]
    same_inst = inst.eq(inst.shift(1))
    unchanged = same_inst & both["close"].eq(both["close"].shift(1)) & both["close"].notna()
    run_id = (~unchanged).cumsum()
    run_len = unchanged.groupby(run_id).cumsum() + 1
    zero_vol = both["volume"].eq(0)
    flag = (both["__pos"] >= 0) & unchanged & (zero_vol | (run_len >= repeat))
    issues = []
    for i in np.flatnonzero(flag.to_numpy()):
        pos = int(both["__pos"].iat[i])
        close = _fmt(both["close"].iat[i])
        if run_len.iat[i] >= repeat:
            detail = f"close={close} unchanged for {int(run_len.iat[i])} sessions"
        else:
            detail = f"close={close} unchanged from the previous close with volume 0"
        issues.append(ctx.issue("stale price", pos, detail, "close", WARN))
    return issues


def _coverage(ctx: _Ctx, work: pd.DataFrame, expected: int) -> list[QualityIssue]:
    """Fewer distinct instruments on a date than expected."""
    if work.empty:
        return [QualityIssue(ctx.schema.name, "coverage", f"{ctx.schema.name}: rule coverage "
                             f"flagged: no rows staged, {expected} instrument(s) expected",
                             severity=WARN)]
    issues = []
    dates = work["date"]
    counts = work.groupby(dates, sort=True)["instrument_id"].nunique()
    for d, k in counts.items():
        if k < expected:
            pos = int(np.flatnonzero((dates == d).to_numpy())[0])
            issue = ctx.issue("coverage", pos, f"{int(k)} of {expected} expected instruments "
                              f"have rows on {_fmt(d)}", "instrument_id", WARN,
                              with_context=False)
            issue.message = (f"{ctx.schema.name} {_fmt(d)}: rule coverage flagged: {int(k)} of "
                             f"{expected} expected instruments have rows")
            issues.append(issue)
    return issues


def _continuity(ctx: _Ctx, both: pd.DataFrame) -> list[QualityIssue]:
    """A line item changing by more than continuity_ratio x between consecutive periods."""
    ratio_max = ctx.limits.continuity_ratio
    iss = both["issuer_id"]
    same = iss.eq(iss.shift(1))
    issues = []
    staged = (both["__pos"] >= 0).to_numpy()
    for item in CONTINUITY_ITEMS:
        cur, prev = both[item], both[item].shift(1)
        ok = same & (cur > 0) & (prev > 0)
        ratio = (cur / prev).where(ok)
        jump = ((ratio > ratio_max) | (ratio < 1 / ratio_max)).to_numpy() & staged
        for i in np.flatnonzero(jump):
            pe_prev = _fmt(both["period_end"].iat[i - 1])
            issues.append(ctx.issue(
                "fundamentals continuity", int(both["__pos"].iat[i]),
                f"{item} {_fmt(prev.iat[i])} -> {_fmt(cur.iat[i])} (x{ratio.iat[i]:.2f}) "
                f"since period_end {pe_prev}", item, WARN))
    return issues


__all__ = [
    "ERROR",
    "WARN",
    "GateLimits",
    "QualityIssue",
    "QualityReport",
    "Rule",
    "TABLE_RULES",
    "check_staged",
    "suite_rules",
]
