"""The file source: the example datasets load; every defect class is reported with its file, line
and rule; a row-level defect only fails the fetches whose dates include it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from prometheus_dagster.core.errors import SourceError
from prometheus_dagster.core.schemas import empty_frame, get_schema, validate_frame
from prometheus_dagster.engines.ingestion.file_source import FileSource
from prometheus_dagster.engines.ingestion.quality import check_staged
from prometheus_dagster.engines.ingestion.sources import (
    PROVENANCE_COLUMNS,
    TABLES_BY_MARKET,
    DataSource,
    strip_provenance,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FULL = FIXTURES / "file_source"
INDEX_ONLY = FIXTURES / "file_source_index_only"
ALL = ("2000-01-03", "2030-12-31")
N_SESSIONS = 61  # XNYS sessions 2024-01-02 .. 2024-03-28


@pytest.fixture()
def full_copy(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(FULL, root)
    return root


def _edit_line(path: Path, line_no: int, old: str, new: str) -> str:
    """Replace ``old`` by ``new`` on line ``line_no`` (1-based, header = line 1)."""
    lines = path.read_text().splitlines()
    assert old in lines[line_no - 1], lines[line_no - 1]
    lines[line_no - 1] = lines[line_no - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")
    return lines[line_no - 1]


def _canonical(table: str, df: pd.DataFrame) -> None:
    """The fetched frame is canonical: schema columns and dtypes, plus provenance."""
    assert list(df.columns) == [*get_schema(table).column_names, *PROVENANCE_COLUMNS]
    pd.testing.assert_frame_equal(validate_frame(table, strip_provenance(df)),
                                  strip_provenance(df).reset_index(drop=True))


# --- the example dataset -------------------------------------------------------------------------
def test_full_fixture_reference():
    src = FileSource(FULL)
    assert isinstance(src, DataSource)
    assert src.name == f"files:{FULL}"
    assert src.market_ids() == ["US_EQ"]
    ref = src.reference("US_EQ")
    inst, iss = ref["instruments"], ref["issuers"]
    assert len(inst) == 6 and len(iss) == 4
    assert "INDEX" in set(inst["asset_class"])
    assert not set(PROVENANCE_COLUMNS) & set(inst.columns)
    pd.testing.assert_frame_equal(validate_frame("instruments", inst), inst)
    pd.testing.assert_frame_equal(validate_frame("issuers", iss), iss)
    assert src.reference("EU_EQ")["instruments"].empty


def test_full_fixture_every_table_is_canonical():
    src = FileSource(FULL)
    counts = {}
    for table in (*TABLES_BY_MARKET, "macro_time_series"):
        market = None if table == "macro_time_series" else "US_EQ"
        df = src.fetch(table, market, *ALL)
        _canonical(table, df)
        counts[table] = len(df)
        report = check_staged(table, df)
        assert report.passed, report.summary()
    assert counts == {"prices_daily": 6 * N_SESSIONS, "corporate_actions": 2, "fundamentals": 8,
                      "news_articles": 6, "news_links": 6, "macro_time_series": 3 * N_SESSIONS}


def test_derived_columns():
    src = FileSource(FULL)
    px = src.fetch("prices_daily", "US_EQ", *ALL)
    assert set(px["market_id"]) == {"US_EQ"} and set(px["currency"]) == {"USD"}
    ca = src.fetch("corporate_actions", "US_EQ", *ALL)
    assert set(ca["action_type"]) == {"SPLIT", "DIVIDEND"} and set(ca["market_id"]) == {"US_EQ"}
    f = src.fetch("fundamentals", "US_EQ", *ALL)
    assert set(f["market_id"]) == {"US_EQ"}
    links = src.fetch("news_links", "US_EQ", *ALL)
    arts = src.fetch("news_articles", "US_EQ", *ALL).set_index("article_id")
    assert (links["date"].to_numpy() == arts.loc[links["article_id"], "date"].to_numpy()).all()


def test_date_filtering():
    src = FileSource(FULL)
    day = src.fetch("prices_daily", "US_EQ", "2024-02-15", "2024-02-15")
    assert len(day) == 6 and set(day["date"]) == {pd.Timestamp("2024-02-15")}
    feb = src.fetch("prices_daily", "US_EQ", "2024-02-01", "2024-02-29")
    assert len(feb) == 6 * 20 and feb["date"].is_monotonic_increasing
    assert src.fetch("prices_daily", "US_EQ", "2024-02-17", "2024-02-19").empty  # weekend + holiday
    # fundamentals are dated by report_date, not period_end
    f = src.fetch("fundamentals", "US_EQ", "2024-01-01", "2024-03-31")
    assert sorted(f["report_date"].dt.strftime("%Y-%m-%d")) == ["2024-02-01", "2024-02-13"]
    assert set(f["period_end"]) == {pd.Timestamp("2023-12-31")}
    macro = src.fetch("macro_time_series", None, "2024-03-01", "2024-03-01")
    assert sorted(macro["series_id"]) == ["UST10Y", "VIX", "WTI"]
    news = src.fetch("news_articles", "US_EQ", "2024-02-01", "2024-02-02")
    assert sorted(news["article_id"]) == ["NEWS-0003", "NEWS-0004"]
    # another market of the same root has nothing
    assert src.fetch("prices_daily", "EU_EQ", *ALL).empty


def test_provenance_points_at_the_csv_line():
    src = FileSource(FULL)
    px = src.fetch("prices_daily", "US_EQ", "2024-02-15", "2024-02-15")
    row = px[px["instrument_id"] == "EQUITY:GAMA"].iloc[0]
    path = Path(row["_source_file"])
    assert path.name == "2024-02.csv" and path.parent.name == "prices_daily"
    line = path.read_text().splitlines()[row["_source_row"]]  # data row N is line N + 1
    assert line.startswith("EQUITY:GAMA,2024-02-15,")


def test_split_and_dividend_do_not_look_like_outliers():
    src = FileSource(FULL)
    px = src.fetch("prices_daily", "US_EQ", *ALL)
    report = check_staged("prices_daily", px, expected_instruments=6)
    assert report.passed and not report.warnings, report.summary()


def test_news_dates_derived_from_timestamps(full_copy):
    arts = pd.read_csv(full_copy / "news_articles.csv")
    arts.drop(columns=["date", "market_id"]).to_csv(full_copy / "news_articles.csv", index=False)
    got = FileSource(full_copy).fetch("news_articles", "US_EQ", *ALL)
    # after the close (21:00 UTC in winter) counts for the next session
    expected = pd.to_datetime(arts.set_index("article_id")["date"])
    assert (got.set_index("article_id")["date"] == expected).all()


# --- the smallest dataset ------------------------------------------------------------------------
def test_index_only_fixture():
    src = FileSource(INDEX_ONLY)
    assert src.market_ids() == ["US_EQ"]
    ref = src.reference("US_EQ")
    assert ref["issuers"].empty
    assert list(ref["issuers"].columns) == get_schema("issuers").column_names
    inst = ref["instruments"]
    assert inst[["asset_class", "multiplier", "status"]].iloc[0].tolist() == [
        "INDEX", 1.0, "ACTIVE"]
    px = src.fetch("prices_daily", "US_EQ", "2023-01-01", "2023-12-31")
    _canonical("prices_daily", px)
    assert len(px) == 250 and px["_source_file"].iloc[0].endswith("prices_daily.parquet")
    assert check_staged("prices_daily", px, expected_instruments=1).passed
    macro = src.fetch("macro_time_series", None, "2023-06-01", "2023-06-30")
    assert sorted(set(macro["series_id"])) == ["UST10Y", "VIX"]
    for table in ("corporate_actions", "fundamentals", "news_articles", "news_links"):
        df = src.fetch(table, "US_EQ", "2023-01-01", "2023-12-31")
        assert df.empty
        pd.testing.assert_frame_equal(strip_provenance(df), empty_frame(table))


# --- value defects: the file loads, the quality report names file, line and rule -----------------
def test_negative_price_is_reported_with_file_and_line(full_copy):
    path = full_copy / "prices_daily" / "2024-02.csv"
    _edit_line(path, 17, ",106.02,106.0225,", ",-106.02,106.0225,")  # EQUITY:GAMA 2024-02-05 close
    src = FileSource(full_copy)
    report = check_staged("prices_daily", src.fetch("prices_daily", "US_EQ", "2024-02-01",
                                                    "2024-02-29"))
    assert not report.passed
    msgs = [i.message for i in report.errors if i.rule == "prices > 0"]
    assert msgs == [f"{path} line 17: rule prices > 0 failed: close=-106.02 is not > 0 "
                    "(instrument_id EQUITY:GAMA, date 2024-02-05)"]
    issue = next(i for i in report.errors if i.rule == "prices > 0")
    assert (issue.file, issue.row, issue.column) == (str(path), 16, "close")
    # other dates are unaffected
    assert check_staged("prices_daily", src.fetch("prices_daily", "US_EQ", "2024-02-06",
                                                  "2024-02-29")).passed


def test_high_below_low_is_reported(full_copy):
    path = full_copy / "prices_daily" / "2024-02.csv"
    _edit_line(path, 23, "105.3,107.8,104.83", "105.3,104.0,104.83")  # GAMA 2024-02-06 high
    report = check_staged("prices_daily", FileSource(full_copy).fetch(
        "prices_daily", "US_EQ", "2024-02-06", "2024-02-06"))
    rules = {i.rule: i.message for i in report.errors}
    assert rules["high >= low"] == (
        f"{path} line 23: rule high >= low failed: high=104 < low=104.83 "
        "(instrument_id EQUITY:GAMA, date 2024-02-06)")
    assert "high=104 < open=105.3; high=104 < close=107.36" in rules["high >= max(open, close)"]
    assert {i.row for i in report.errors} == {22}


def test_duplicate_key_names_both_lines(full_copy):
    path = full_copy / "prices_daily" / "2024-02.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[4]]) + "\n")  # line 5 again, as the last line
    n = len(lines) + 1
    src = FileSource(full_copy)
    px = src.fetch("prices_daily", "US_EQ", "2024-02-01", "2024-02-01")
    assert len(px) == 7  # the source passes duplicates on; the quality gate reports them
    report = check_staged("prices_daily", px)
    dups = [i for i in report.errors if i.rule == "unique (instrument_id, date)"]
    assert len(dups) == 2
    assert dups[0].message == (
        f"{path} line 5: rule unique (instrument_id, date) failed: duplicate key "
        f"instrument_id=EQUITY:GAMA, date=2024-02-01, also at {path} line {n}")
    assert dups[1].message.startswith(f"{path} line {n}: ") and f"also at {path} line 5" in \
        dups[1].message
    assert check_staged("prices_daily", src.fetch("prices_daily", "US_EQ", "2024-02-02",
                                                  "2024-02-29")).passed


# --- file defects: every fetch of the table fails, naming the file -------------------------------
def test_unparsable_csv_fails_every_fetch_of_the_table(full_copy):
    path = full_copy / "prices_daily" / "2024-03.csv"
    n = len(path.read_text().splitlines())
    with path.open("a") as fh:
        fh.write("EQUITY:ALPH,2024-03-29,1,2,3,4,5,6,7,8,9\n")  # too many fields
    src = FileSource(full_copy)
    for start, end in (("2024-03-01", "2024-03-28"), ("2024-01-02", "2024-01-02")):
        with pytest.raises(SourceError) as err:
            src.fetch("prices_daily", "US_EQ", start, end)
        assert str(err.value) == (f"{path}: line {n + 1}: cannot parse CSV file: expected 8 "
                                  "fields, found 11")
    # other tables are unaffected
    assert len(src.fetch("macro_time_series", None, *ALL)) == 3 * N_SESSIONS
    assert len(src.fetch("corporate_actions", "US_EQ", *ALL)) == 2


def test_unparsable_parquet(tmp_path):
    root = tmp_path / "idx"
    shutil.copytree(INDEX_ONLY, root)
    (root / "prices_daily.parquet").write_bytes(b"PAR1 this is not parquet")
    src = FileSource(root)
    with pytest.raises(SourceError) as err:
        src.fetch("prices_daily", "US_EQ", "2023-01-01", "2023-01-31")
    assert str(err.value) == (
        f"{root / 'prices_daily.parquet'}: byte 20: cannot parse Parquet file: rule Parquet "
        "footer failed: the file ends with b'quet' instead of the Parquet magic bytes b'PAR1'; "
        "it is truncated or damaged")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert len(src.fetch("macro_time_series", None, "2023-01-01", "2023-01-31")) > 0


# --- files the readers cannot decode: the file, where in it, and the rule ------------------------
@pytest.mark.parametrize("name, rule", [
    ("2024-02.csv", "rule CSV header line failed: the file is empty (0 bytes)"),
    ("2024-02.parquet", "rule Parquet file format failed: the file is empty (0 bytes)"),
])
def test_empty_file_names_the_file_and_rule(full_copy, name, rule):
    folder = full_copy / "prices_daily"
    (folder / "2024-02.csv").unlink()
    (folder / name).write_bytes(b"")
    with pytest.raises(SourceError) as err:
        FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-01-02", "2024-01-02")
    assert str(err.value).startswith(f"{folder / name}: cannot parse ")
    assert rule in str(err.value)


def test_latin1_file_names_line_and_byte(full_copy):
    path = full_copy / "prices_daily" / "2024-02.csv"
    text = path.read_text().replace("EQUITY:BETA,2024-02-05", "EQUITY:BÉTA,2024-02-05")
    data = text.encode("latin-1")
    path.write_bytes(data)
    offset = data.index(b"\xc9")
    line = data[:offset].count(b"\n") + 1
    with pytest.raises(SourceError) as err:
        FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-03-01", "2024-03-01")
    assert str(err.value).startswith(
        f"{path}: line {line} (byte {offset}): cannot parse CSV file: rule UTF-8 text failed: "
        "byte 0xc9 is not valid UTF-8")
    assert line == 15 and "save it as UTF-8" in str(err.value)


def _prices_parquet(root: Path) -> tuple[Path, bytes]:
    folder = root / "prices_daily"
    df = pd.read_csv(folder / "2024-02.csv")
    (folder / "2024-02.csv").unlink()
    path = folder / "2024-02.parquet"
    df.to_parquet(path, index=False, compression="snappy")
    return path, path.read_bytes()


def test_truncated_parquet_names_the_footer_offset(full_copy):
    path, data = _prices_parquet(full_copy)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError) as err:
        FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-01-02", "2024-01-02")
    assert str(err.value).startswith(
        f"{path}: byte {len(data) // 2 - 4}: cannot parse Parquet file: rule Parquet footer "
        "failed: the file ends with ")


def test_corrupt_parquet_data_names_row_group_column_and_bytes(full_copy):
    import pyarrow.parquet as pq

    path, data = _prices_parquet(full_copy)
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(5)
    assert chunk.path_in_schema == "close" and chunk.has_dictionary_page
    start, end = chunk.dictionary_page_offset, chunk.data_page_offset
    damaged = bytearray(data)
    middle = (start + end) // 2
    damaged[middle:middle + 8] = b"\xff" * 8  # inside the compressed dictionary page
    path.write_bytes(bytes(damaged))
    with pytest.raises(OSError, match="Corrupt snappy compressed data"):
        pd.read_parquet(path)  # what the reader alone says
    with pytest.raises(SourceError) as err:
        FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-01-02", "2024-01-02")
    assert str(err.value) == (
        f"{path}: row group 0 (rows 1-120), column 'close' (bytes {start}-"
        f"{start + chunk.total_compressed_size - 1}): cannot parse Parquet file: rule Parquet "
        "data intact failed: Corrupt snappy compressed data; the file is damaged, write it "
        "again")


def test_missing_required_column(full_copy):
    path = full_copy / "prices_daily" / "2024-01.csv"
    pd.read_csv(path, dtype=str).drop(columns=["close"]).to_csv(path, index=False)
    src = FileSource(full_copy)
    for start, end in (("2024-01-02", "2024-01-31"), ("2024-03-01", "2024-03-01")):
        with pytest.raises(SourceError) as err:
            src.fetch("prices_daily", "US_EQ", start, end)
        assert str(err.value) == f"{path}: missing required column(s) close"


def test_missing_optional_columns_are_null(full_copy):
    path = full_copy / "prices_daily" / "2024-01.csv"
    pd.read_csv(path, dtype=str).drop(columns=["open", "volume"]).to_csv(path, index=False)
    px = FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-01-02", "2024-01-31")
    _canonical("prices_daily", px)
    assert px["open"].isna().all() and px["volume"].isna().all()
    assert check_staged("prices_daily", px).passed


def test_unknown_column(full_copy):
    path = full_copy / "corporate_actions.csv"
    pd.read_csv(path, dtype=str).rename(columns={"value": "ratio"}).to_csv(path, index=False)
    with pytest.raises(SourceError, match=r"corporate_actions\.csv: unknown column\(s\) ratio"):
        FileSource(full_copy).fetch("corporate_actions", "US_EQ", *ALL)


def test_csv_tolerances_keep_line_numbers(full_copy):
    path = full_copy / "prices_daily" / "2024-02.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",", " , ")  # spaces around values
    lines[2] = lines[2].rsplit(",", 1)[0] + ",NA"  # a missing-value token
    lines.insert(3, "")  # a blank line: line numbers below it shift by one
    lines[7] = lines[7].replace(",4727.55,", ",4727.55x,")  # line 8: INDEX 2024-02-01 close
    path.write_text("\n".join(lines) + "\n")
    src = FileSource(full_copy)
    with pytest.raises(SourceError, match=r"2024-02\.csv: line 8: column 'close' value "
                                          r"'4727\.55x' is not a number"):
        src.fetch("prices_daily", "US_EQ", "2024-02-01", "2024-02-01")
    px = src.fetch("prices_daily", "US_EQ", "2024-02-02", "2024-02-29")
    _canonical("prices_daily", px)
    lines[7] = lines[7].replace("4727.55x", "4727.55")
    path.write_text("\n".join(lines) + "\n")
    px = src.fetch("prices_daily", "US_EQ", "2024-02-01", "2024-02-01")
    assert px.loc[0, "instrument_id"] == "EQUITY:ALPH" and px.loc[0, "close"] == 182.3
    assert pd.isna(px.loc[1, "volume"])
    assert px["_source_row"].tolist()[:3] == [1, 2, 4]  # the blank line keeps its number


def test_files_of_one_table_may_differ_in_optional_columns(full_copy):
    path = full_copy / "prices_daily" / "2024-03.csv"
    pd.read_csv(path, dtype=str).drop(columns=["adjusted_close", "open"]).to_csv(path,
                                                                                index=False)
    px = FileSource(full_copy).fetch("prices_daily", "US_EQ", *ALL)
    _canonical("prices_daily", px)
    march = px["date"] >= "2024-03-01"
    assert px.loc[march, "adjusted_close"].isna().all()
    assert px.loc[~march, "adjusted_close"].notna().all()


# --- row defects: only the fetches whose dates include the row fail ------------------------------
def test_wrong_type_fails_only_fetches_that_include_the_row(full_copy):
    path = full_copy / "prices_daily" / "2024-02.csv"
    _edit_line(path, 7, ",4727.55,", ",abc,")  # INDEX:USX500 2024-02-01 close
    src = FileSource(full_copy)
    with pytest.raises(SourceError) as err:
        src.fetch("prices_daily", "US_EQ", "2024-01-15", "2024-02-10")
    assert str(err.value) == f"{path}: line 7: column 'close' value 'abc' is not a number"
    assert len(src.fetch("prices_daily", "US_EQ", "2024-02-02", "2024-03-28")) == 6 * 39
    assert len(src.fetch("prices_daily", "US_EQ", "2024-01-02", "2024-01-31")) == 6 * 21
    # the quality gate reports the same defect on a raw frame instead of raising
    raw = pd.read_csv(path, dtype=str).assign(market_id="US_EQ", currency="USD")
    raw["_source_file"], raw["_source_row"] = str(path), range(1, len(raw) + 1)
    report = check_staged("prices_daily", raw)
    assert [i.message for i in report.errors] == [
        f"{path} line 7: rule type failed: column 'close' value 'abc' is not a number "
        "(instrument_id INDEX:USX500, date 2024-02-01)"]


def test_unparsable_date_fails_every_fetch(full_copy):
    path = full_copy / "prices_daily" / "2024-02.csv"
    _edit_line(path, 3, "2024-02-01", "01/02/2024")
    src = FileSource(full_copy)
    for start, end in (("2024-01-02", "2024-01-05"), ("2024-03-01", "2024-03-28")):
        with pytest.raises(SourceError, match=r"2024-02\.csv: line 3: column 'date' value "
                                              r"'01/02/2024' is not a date \(YYYY-MM-DD\)"):
            src.fetch("prices_daily", "US_EQ", start, end)


@pytest.mark.parametrize("stamp", ["2024-02-05T23:30:00-05:00", "2024-02-05 10:00"])
def test_timestamp_in_a_date_column_is_refused_not_moved_to_another_day(full_copy, stamp):
    path = full_copy / "prices_daily" / "2024-02.csv"
    _edit_line(path, 15, "EQUITY:BETA,2024-02-05,", f"EQUITY:BETA,{stamp},")
    src = FileSource(full_copy)
    for start, end in (("2024-02-05", "2024-02-05"), ("2024-02-06", "2024-02-06")):
        with pytest.raises(SourceError) as err:
            src.fetch("prices_daily", "US_EQ", start, end)
        assert str(err.value) == (
            f"{path}: line 15: column 'date' value '{stamp}' is a timestamp, not a date (rule: "
            "a date column holds YYYY-MM-DD without a time of day or time-zone offset; give "
            "the market's session date)")
    # midnight on the value's own clock is that date
    _edit_line(path, 15, f"EQUITY:BETA,{stamp},", "EQUITY:BETA,2024-02-05T00:00:00Z,")
    day = FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-02-05", "2024-02-05")
    assert len(day) == 6 and "EQUITY:BETA" in set(day["instrument_id"])


def test_parquet_timestamps_in_a_date_column(full_copy):
    folder = full_copy / "prices_daily"
    df = pd.read_csv(folder / "2024-02.csv")
    (folder / "2024-02.csv").unlink()
    # local midnight in Tokyo is 15:00 UTC the day before: the date is Tokyo's, not UTC's
    df["date"] = pd.to_datetime(df["date"]).dt.tz_localize("Asia/Tokyo")
    df.to_parquet(folder / "2024-02.parquet", index=False)
    day = FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-02-05", "2024-02-05")
    assert len(day) == 6 and set(day["date"]) == {pd.Timestamp("2024-02-05")}
    df.loc[14, "date"] = df.loc[14, "date"] + pd.Timedelta(hours=23, minutes=30)
    df.to_parquet(folder / "2024-02.parquet", index=False)
    with pytest.raises(SourceError, match=r"2024-02\.parquet: row 15: column 'date' value "
                                          r"Timestamp\('2024-02-05 23:30:00\+0900'.*is a "
                                          r"timestamp, not a date"):
        FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-02-05", "2024-02-05")


def test_instrument_unknown_to_instruments(full_copy):
    path = full_copy / "prices_daily" / "2024-03.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, "EQUITY:ZZZ,2024-03-28,1,1,1,1,1,1"]) + "\n")
    src = FileSource(full_copy)
    with pytest.raises(SourceError, match=rf"2024-03\.csv: line {len(lines) + 1}: "
                                          r"instrument_id 'EQUITY:ZZZ' is not in instruments"):
        src.fetch("prices_daily", "US_EQ", "2024-03-28", "2024-03-28")
    assert len(src.fetch("prices_daily", "US_EQ", "2024-03-27", "2024-03-27")) == 6


def test_link_to_unknown_article(full_copy):
    path = full_copy / "news_links.csv"
    with path.open("a") as fh:
        fh.write("NEWS-9999,ISS:BETA,EQUITY:BETA\n")
    with pytest.raises(SourceError, match=r"news_links\.csv: line 8: article_id 'NEWS-9999' is "
                                          r"not in news_articles"):
        FileSource(full_copy).fetch("news_links", "US_EQ", "2024-01-02", "2024-01-02")


# --- layout and caching --------------------------------------------------------------------------
def test_instruments_are_required(tmp_path):
    (tmp_path / "prices_daily.csv").write_text("instrument_id,date,close\n")
    with pytest.raises(SourceError, match="no instruments file"):
        FileSource(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        FileSource(tmp_path / "nope")


def test_duplicate_instrument_fails_reference(full_copy):
    path = full_copy / "instruments.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(SourceError) as err:
        FileSource(full_copy).reference("US_EQ")
    assert f"{path}: line 2: duplicate key instrument_id=EQUITY:ALPH (also at {path}: line " \
           f"{len(lines) + 1})" in str(err.value)


def test_table_given_twice_is_ambiguous(full_copy):
    shutil.copy(full_copy / "prices_daily" / "2024-01.csv", full_copy / "prices_daily.csv")
    with pytest.raises(SourceError, match="given more than once"):
        FileSource(full_copy).fetch("prices_daily", "US_EQ", *ALL)


def test_changed_files_are_read_again(full_copy):
    src = FileSource(full_copy)
    assert len(src.fetch("corporate_actions", "US_EQ", *ALL)) == 2
    path = full_copy / "corporate_actions.csv"
    with path.open("a") as fh:
        fh.write("EQUITY:BETA,2024-03-01,DIVIDEND,0.5,\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert len(src.fetch("corporate_actions", "US_EQ", *ALL)) == 3


def test_parquet_and_csv_folders_mix(full_copy):
    folder = full_copy / "prices_daily"
    df = pd.read_csv(folder / "2024-03.csv")
    (folder / "2024-03.csv").unlink()
    df.to_parquet(folder / "2024-03.parquet", index=False)
    px = FileSource(full_copy).fetch("prices_daily", "US_EQ", "2024-03-28", "2024-03-28")
    assert len(px) == 6 and px["_source_file"].iloc[0].endswith("2024-03.parquet")
    report = check_staged("prices_daily", px.assign(close=-1.0))
    assert report.errors[0].message.startswith(f"{folder / '2024-03.parquet'} row ")


def test_bad_table_requests():
    src = FileSource(FULL)
    with pytest.raises(SourceError, match="GLOBAL"):
        src.fetch("macro_time_series", "US_EQ", *ALL)
    with pytest.raises(SourceError, match="per-market"):
        src.fetch("prices_daily", None, *ALL)
    with pytest.raises(SourceError, match="cannot fetch table"):
        src.fetch("instruments", "US_EQ", *ALL)


# --- the source interface ------------------------------------------------------------------------
class _StubMarket:
    """Stands in for the synthetic market generator: returns what it is asked for."""

    config = type("Cfg", (), {"markets": {"US_EQ": None}})()

    def __init__(self) -> None:
        self.src = FileSource(FULL)

    def issuers(self, market_id):
        return self.src.reference(market_id)["issuers"]

    def instruments(self, market_id):
        return self.src.reference(market_id)["instruments"]

    def prices(self, market_id, start, end):
        # one row outside the range, which the wrapper drops
        df = self.src.fetch("prices_daily", market_id, *ALL)
        return strip_provenance(df)

    def macro(self, start, end):
        return strip_provenance(self.src.fetch("macro_time_series", None, start, end))

    def news(self, market_id, start, end):
        return (strip_provenance(self.src.fetch("news_articles", market_id, start, end)),
                strip_provenance(self.src.fetch("news_links", market_id, start, end)))


def test_embedded_source_delegates():
    from prometheus_dagster.engines.ingestion.sources import EmbeddedSource

    src = EmbeddedSource(_StubMarket())
    assert isinstance(src, DataSource) and src.name == "embedded"
    assert src.market_ids() == ["US_EQ"]
    assert len(src.reference("US_EQ")["instruments"]) == 6
    px = src.fetch("prices_daily", "US_EQ", "2024-02-15", "2024-02-15")
    assert len(px) == 6 and set(px["date"]) == {pd.Timestamp("2024-02-15")}
    assert len(src.fetch("news_links", "US_EQ", "2024-02-01", "2024-02-02")) == 2
    assert len(src.fetch("macro_time_series", None, "2024-03-01", "2024-03-01")) == 3
    with pytest.raises(SourceError):
        src.fetch("prices_daily", None, *ALL)


def test_provenance_helpers():
    from prometheus_dagster.engines.ingestion.sources import describe_location

    assert describe_location("a/prices.csv", 11) == "a/prices.csv line 12"
    assert describe_location("a/prices.parquet", 11) == "a/prices.parquet row 11"
    assert describe_location(None, 3) == "row 3"
    df = pd.DataFrame({"x": [1], "_source_file": ["f.csv"], "_source_row": [1]})
    assert list(strip_provenance(df).columns) == ["x"]
