"""Checks run at PRE_OPEN of session D+1 on session D of a market:

* ``ingestion``: every ingested table's latest unit for D succeeded (FAIL on a FAILED or missing
  unit, WARN when it carried data-quality warnings);
* ``outputs``: every engine table the market's chain writes has rows for D (required ones
  fail when empty, the others warn);
* ``decisions``: each engine that wrote outputs for D also logged its ``engine_decisions``;
* ``exposures``: target portfolio weights for D within the configured limits (SKIP while no
  portfolio exists);
* ``freshness``: the newest delivered date of each ingested table with a cadence, the share of
  recently priced instruments without a price on D, and the newest observation of each macro
  series the market's regimes read, against the ages allowed in ``configs/engines/qc.yaml``.

Each check gives rows (check_name, subject, status, detail); the report fails when any row does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
COLUMNS = ["check_name", "subject", "status", "detail"]


@dataclass(frozen=True)
class QcLimits:
    max_weight: float = 0.10
    max_gross: float = 1.0


def _row(check: str, subject: str, status: str, detail: str) -> dict:
    return {"check_name": check, "subject": subject, "status": status, "detail": detail}


def check_ingestion(runs: pd.DataFrame, tables: list[str]) -> list[dict]:
    """``runs``: ingestion_runs rows of the market and date."""
    out = []
    latest = (runs.sort_values("finished_at").groupby("table_name").tail(1).set_index(
        "table_name") if len(runs) else pd.DataFrame())
    for table in tables:
        if table not in latest.index:
            out.append(_row("ingestion", table, FAIL, "no ingestion run for this date"))
            continue
        r = latest.loc[table]
        if r["status"] != "SUCCESS":
            out.append(_row("ingestion", table, FAIL, f"{r['status']}: {r.get('error') or ''}"))
            continue
        warnings = json.loads(r["warnings"]) if isinstance(r.get("warnings"), str) else []
        status = WARN if warnings else PASS
        detail = f"{int(r['row_count'])} rows" + (f", {len(warnings)} warning(s): "
                                                  f"{warnings[0]}" if warnings else "")
        out.append(_row("ingestion", table, status, detail))
    return out


def check_outputs(counts: Mapping[str, int], required: set[str]) -> list[dict]:
    """``counts``: engine table -> rows for the date. An empty required table fails; other
    tables may be empty on a quiet day (no news, too few names for factors) and warn."""
    return [_row("outputs", t, PASS if n > 0 else (FAIL if t in required else WARN),
                 f"{n} rows") for t, n in counts.items()]


def check_decisions(output_counts: Mapping[str, int], decision_counts: Mapping[str, int],
                    engine_tables: Mapping[str, str]) -> list[dict]:
    """``engine_tables``: decision-logging engine -> its main output table."""
    out = []
    for engine, table in engine_tables.items():
        produced = output_counts.get(table)
        logged = decision_counts.get(engine, 0)
        if produced is None:
            out.append(_row("decisions", engine, SKIP, f"{table} is not produced here"))
        elif produced > 0 and logged == 0:
            out.append(_row("decisions", engine, FAIL,
                            f"{produced} {table} rows but no engine_decisions record"))
        else:
            out.append(_row("decisions", engine, PASS, f"{logged} decision record(s)"))
    return out


def check_exposures(weights: pd.DataFrame | None,
                    limits: QcLimits | Mapping[str, QcLimits],
                    tolerance: float = 1e-6) -> list[dict]:
    """``weights``: target portfolio rows (portfolio_id, instrument_id, weight) for the date;
    ``limits``: one set for every portfolio, or per portfolio id (others get the defaults);
    ``tolerance``: a weight or gross within this of its limit holds it (qc.yaml)."""
    if weights is None:
        return [_row("exposures", "portfolios", SKIP, "no target portfolios yet")]
    out = []
    for pid, g in weights.groupby("portfolio_id"):
        own = limits if isinstance(limits, QcLimits) else limits.get(str(pid), QcLimits())
        biggest = g["weight"].abs().max()
        gross = g["weight"].abs().sum()
        bad = biggest > own.max_weight + tolerance or gross > own.max_gross + tolerance
        out.append(_row("exposures", str(pid), FAIL if bad else PASS,
                        f"max |weight| {biggest:.3f} (limit {own.max_weight}), gross "
                        f"{gross:.3f} (limit {own.max_gross})"))
    return out


@dataclass(frozen=True)
class Age:
    """How old the newest input of a subject is on the session checked."""

    subject: str
    newest: pd.Timestamp | None  # None: never delivered
    age: int  # sessions or days from ``newest`` to the session
    limit: int
    unit: str  # "sessions" or "days"


def check_freshness(ages: list[Age]) -> list[dict]:
    """A subject whose newest row is older than its limit fails; one never delivered for the
    market (a prices-only source has no statements) is skipped."""
    out = []
    for a in ages:
        if a.newest is None:
            out.append(_row("freshness", a.subject, SKIP, "never delivered for this market"))
            continue
        status = FAIL if a.age > a.limit else PASS
        out.append(_row("freshness", a.subject, status,
                        f"newest {pd.Timestamp(a.newest).date()}, {a.age} {a.unit} old "
                        f"(limit {a.limit})"))
    return out


def check_missing_prices(missing: list[str], active: int, max_share: float) -> list[dict]:
    """``missing``: instruments priced in the sessions before D (``active`` of them in all)
    with no price on D and no delisting by D."""
    if active == 0:
        return [_row("freshness", "prices_daily/instruments", SKIP, "no recently priced "
                                                                   "instrument")]
    share = len(missing) / active
    status = FAIL if share > max_share else WARN if missing else PASS
    names = ", ".join(sorted(missing)[:5]) + (" ..." if len(missing) > 5 else "")
    detail = f"{len(missing)} of {active} recently priced instruments have no price" + (
        f" ({share:.1%}, limit {max_share:.1%}): {names}" if missing else "")
    return [_row("freshness", "prices_daily/instruments", status, detail)]


def qc_report(market_id: str, date: pd.Timestamp, rows: list[dict]) -> pd.DataFrame:
    """The ``qc_reports`` rows of one market and date."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.assign(market_id=market_id, date=pd.Timestamp(date).normalize())
