"""Fuzzed input for the file source and the quality gate: whatever bytes a delivered file holds,
a fetch either returns rows (which the gate then passes or reports with file, line and rule) or
fails with a SourceError naming the file; never another exception, and the fetches of other
files' rows never change. Identifiers with quotes, semicolons and unicode reach SQL only as
bound parameters, on DuckDB and on PostgreSQL (a throwaway database of the test server)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_dagster.core.errors import SourceError
from prometheus_dagster.engines.ingestion.file_source import FileSource
from prometheus_dagster.engines.ingestion.quality import check_staged
from prometheus_dagster.resources.warehouse import Warehouse

FULL = Path(__file__).resolve().parents[1] / "fixtures" / "file_source"
TARGET = Path("prices_daily") / "2024-02.csv"  # the fuzzed file
FEB, JAN = ("2024-02-01", "2024-02-29"), ("2024-01-01", "2024-01-31")
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

ODD_CELLS = st.sampled_from([
    "", "NaN", "nan", "inf", "-inf", "1e308", "-1e308", "1e-320", "0", "-0", "1,5", "1.2.3",
    '"quoted"', "'", ";", "\\", "\x00", "\ufeff", "é", "💥", "2024-02-05T10:00:00+05:00",
    "2024-02-31", "2024-02-03", "2031-01-01", "1899-12-31", "EQUITY:ZZZ", "EQUITY:ALPH",
    "9" * 40, "NULL", "None", " 101.5 ", "1e9", "1e10"])


@st.composite
def mutated_file(draw) -> bytes:
    """The February prices file with some cells, lines or bytes changed."""
    lines = (FULL / TARGET).read_text().splitlines()
    kind = draw(st.sampled_from(["cell", "cells", "line", "bytes", "truncate", "encoding"]))
    if kind in ("cell", "cells"):
        for _ in range(1 if kind == "cell" else draw(st.integers(2, 6))):
            row = draw(st.integers(0, len(lines) - 1))
            cells = lines[row].split(",")
            col = draw(st.integers(0, len(cells) - 1))
            cells[col] = draw(ODD_CELLS)
            lines[row] = ",".join(cells)
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if kind == "line":
        at = draw(st.integers(1, len(lines)))
        extra = draw(st.sampled_from([
            "", ",,,,,,,", "a,b", lines[at - 1], lines[at - 1] + ",extra",
            '"EQUITY:ALPH,2024-02-01",1,2,3,4,5,6', "EQUITY:ALPH;2024-02-01;1;2;3;4;5;6",
            "EQUITY:ALPH,2024-02-02,10,9,11,10,10,100"]))
        lines.insert(at, extra)
        return ("\n".join(lines) + "\n").encode()
    data = ("\n".join(lines) + "\n").encode()
    if kind == "bytes":
        pos = draw(st.integers(0, len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=8))
        return data[:pos] + junk + data[pos + len(junk):]
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    codec = draw(st.sampled_from(["utf-16", "latin-1-bom", "utf-8-sig", "crlf"]))
    if codec == "utf-16":
        return data.decode().encode("utf-16")
    if codec == "latin-1-bom":
        return b"\xef\xbb\xbf" + data.decode().replace("ALPH", "ÀLPH").encode("latin-1")
    if codec == "crlf":
        return data.replace(b"\n", b"\r\n")
    return data.decode().encode("utf-8-sig")


def _fetch(root: Path, span: tuple[str, str]) -> pd.DataFrame | SourceError:
    """The rows of ``span``, their provenance file named relative to ``root``."""
    try:
        frame = FileSource(root).fetch("prices_daily", "US_EQ", *span)
    except SourceError as exc:
        return exc
    return frame.assign(_source_file=[str(Path(f).relative_to(root))
                                      for f in frame["_source_file"]])


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    frame = _fetch(FULL, JAN)
    assert isinstance(frame, pd.DataFrame) and len(frame)
    return frame


@SETTINGS
@given(content=mutated_file())
def test_any_delivered_bytes_ingest_or_fail_naming_the_file(content: bytes, baseline):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        shutil.copytree(FULL, root)
        (root / TARGET).write_bytes(content)
        feb = _fetch(root, FEB)
        if isinstance(feb, SourceError):
            assert str(root / TARGET) in str(feb) or TARGET.name in str(feb), str(feb)
        else:
            report = check_staged("prices_daily", feb)
            for issue in report.errors:
                assert issue.rule and issue.message
                if issue.row is not None and issue.file is not None:
                    assert f"line {issue.row + 1}" in issue.message, issue.message
        jan = _fetch(root, JAN)
        # another file's rows: unchanged, or (a file the table cannot parse) the whole table
        # refused with the broken file named
        if isinstance(jan, SourceError):
            assert TARGET.name in str(jan), str(jan)
        else:
            pd.testing.assert_frame_equal(jan, baseline)


@SETTINGS
@given(content=st.binary(min_size=0, max_size=2048))
def test_corrupted_parquet_fails_naming_the_file(content: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        shutil.copytree(FULL, root)
        (root / TARGET).unlink()
        broken = root / "prices_daily" / "2024-02.parquet"
        good = FileSource(FULL).fetch("prices_daily", "US_EQ", *FEB)
        good.iloc[:, :8].to_parquet(broken)
        data = broken.read_bytes()
        # keep the magic bytes at both ends half the time, so the reader gets past them
        body = content if len(content) % 2 else data[:4] + content + data[-8:]
        broken.write_bytes(body)
        feb = _fetch(root, FEB)
        assert isinstance(feb, SourceError) or len(feb) == 0 or set(feb.columns) >= {
            "instrument_id", "date"}
        if isinstance(feb, SourceError):
            assert broken.name in str(feb), str(feb)


HOSTILE_IDS = st.text(
    alphabet=st.sampled_from(list("abcXYZ019:'\";-_ %\\/é字💥\t")), min_size=1, max_size=24)


def _bound_never_spliced(wh: Warehouse, ids: list[str]) -> None:
    """Rows keyed by ``ids`` written, read back one id at a time and deleted, beside a row of
    another market that must stay as it is."""
    day = pd.Timestamp("2024-01-02")
    keep = pd.DataFrame({"market_id": "EU_EQ", "instrument_id": ["SAFE"], "date": day,
                         "close": 1.0, "volume": 1.0, "currency": "EUR"})
    wh.write_partitions("prices_daily", keep, market_id="EU_EQ", dates=[day])
    frame = pd.DataFrame({"market_id": "US_EQ", "instrument_id": ids, "date": day,
                          "close": 2.0, "volume": 2.0, "currency": "USD"})
    wh.write_partitions("prices_daily", frame, market_id="US_EQ", dates=[day])
    for i in ids:
        got = wh.read("prices_daily", where={"instrument_id": i})
        assert list(got["instrument_id"]) == [i]
    wh.write_partitions("prices_daily", frame.iloc[:0], market_id="US_EQ", dates=[day])
    rest = wh.read("prices_daily")
    assert list(rest["instrument_id"]) == ["SAFE"]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(ids=st.lists(HOSTILE_IDS, min_size=1, max_size=5, unique=True))
def test_hostile_identifiers_are_bound_never_spliced(ids: list[str]):
    with tempfile.TemporaryDirectory() as tmp:
        _bound_never_spliced(Warehouse.from_url(f"duckdb:///{Path(tmp) / 'wh.duckdb'}"), ids)


@pytest.fixture(scope="module")
def postgres_warehouse():
    from tests.services import throwaway_postgres_database

    with throwaway_postgres_database("prometheus_fuzz") as name:
        yield Warehouse.from_url(f"postgresql://postgres@127.0.0.1:5432/{name}")


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(HOSTILE_IDS, min_size=1, max_size=5, unique=True))
def test_hostile_identifiers_are_bound_never_spliced_on_postgres(postgres_warehouse,
                                                                 ids: list[str]):
    # each example leaves the database as it found it: the SAFE row only
    _bound_never_spliced(postgres_warehouse, ids)
