"""Why a data file cannot be read, said in the user's terms: the file, where in it (line, byte
offset, Parquet row group and column) and the rule it breaks.

The CSV and Parquet readers report damage in their own words (``No columns to parse from file``,
``'utf-8' codec can't decode byte 0xe9 in position 852``, ``Parquet magic bytes not found``,
``Corrupt snappy compressed data``), without the file and with positions relative to their own
buffers. :func:`unreadable_file` re-examines the file after such a failure and returns a
:class:`SourceError` of the form ``<file>: <where>: cannot parse <kind> file: rule <rule>
failed: <detail>``.
"""

from __future__ import annotations

import codecs
import gzip
import re
from pathlib import Path

import pandas as pd

from prometheus_dagster.core.errors import SourceError

PARQUET_MAGIC = b"PAR1"
_CHUNK = 1 << 20


def is_parquet(path: Path) -> bool:
    return path.name.lower().endswith((".parquet", ".pq"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error(path: Path, where: str | None, kind: str, rule: str, detail: str) -> SourceError:
    at = f": {where}" if where else ""
    return SourceError(f"{path}{at}: cannot parse {kind} file: rule {rule} failed: {detail}")


def empty_file(path: Path) -> SourceError:
    """A 0-byte file: not even a header line (CSV) or the Parquet magic bytes."""
    if is_parquet(path):
        return _error(path, None, "Parquet", "Parquet file format",
                      "the file is empty (0 bytes)")
    return _error(path, None, "CSV", "CSV header line",
                  "the file is empty (0 bytes); a table file needs at least its header line "
                  "with the column names")


def first_invalid_utf8(path: Path) -> tuple[int, int, int] | None:
    """``(byte offset, line, byte value)`` of the first byte that is not valid UTF-8 (offsets in
    the decompressed text for ``.gz`` files), or None when the whole file decodes."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed, newlines = 0, 0
    with opener(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                line = newlines + data[:exc.start].count(b"\n") + 1
                return consumed - len(pending) + exc.start, line, data[exc.start]
            if not chunk:
                return None
            consumed += len(chunk)
            newlines += chunk.count(b"\n")


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> SourceError:
    found = first_invalid_utf8(path)
    hint = ("the file is in another encoding (often Latin-1 or Windows-1252); save it as UTF-8, "
            "e.g. iconv -f latin1 -t utf-8")
    if found is None:
        return _error(path, None, "CSV", "UTF-8 text", f"{_first_line(exc)}; {hint}")
    offset, line, byte = found
    return _error(path, f"line {line} (byte {offset})", "CSV", "UTF-8 text",
                  f"byte 0x{byte:02x} is not valid UTF-8: {hint}")


def _parquet_problem(path: Path, exc: BaseException) -> SourceError:
    """Walk the Parquet structure (magic bytes, footer, metadata, each column chunk) to find
    the first damaged part."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 8))
        tail = f.read(8)
    if size < 12 or head != PARQUET_MAGIC:
        what = (f"only {size} bytes, too few for a Parquet file" if size < 12 else
                f"starts with {head!r} instead of the Parquet magic bytes {PARQUET_MAGIC!r}")
        return _error(path, "byte 0", "Parquet", "Parquet file format",
                      f"the file has {what}; it is not a Parquet file")
    if tail[4:] != PARQUET_MAGIC:
        return _error(path, f"byte {size - 4}", "Parquet", "Parquet footer",
                      f"the file ends with {tail[4:]!r} instead of the Parquet magic bytes "
                      f"{PARQUET_MAGIC!r}; it is truncated or damaged")
    footer_len = int.from_bytes(tail[:4], "little")
    footer_start = size - 8 - footer_len
    if footer_start < 4:
        return _error(path, f"byte {size - 8}", "Parquet", "Parquet footer",
                      f"the footer claims {footer_len} bytes, more than the file holds; it is "
                      "truncated or damaged")
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as meta_exc:  # pyarrow raises ArrowInvalid, OSError, ... alike
        return _error(path, f"byte {footer_start}", "Parquet", "Parquet metadata",
                      f"the footer cannot be read: {_first_line(meta_exc)}")
    first_row = 1
    for g in range(pf.metadata.num_row_groups):
        group = pf.metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            try:
                pf.read_row_group(g, columns=[chunk.path_in_schema])
            except Exception as data_exc:
                start = chunk.data_page_offset
                if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None:
                    start = min(start, chunk.dictionary_page_offset)
                end = start + chunk.total_compressed_size - 1
                last_row = first_row + group.num_rows - 1
                return _error(
                    path, f"row group {g} (rows {first_row}-{last_row}), column "
                          f"{chunk.path_in_schema!r} (bytes {start}-{end})",
                    "Parquet", "Parquet data intact",
                    f"{_first_line(data_exc).rstrip('.')}; the file is damaged, write it "
                    "again")
        first_row += group.num_rows
    return _error(path, None, "Parquet", "Parquet data intact", _first_line(exc))


def unreadable_file(path: Path, exc: BaseException) -> SourceError:
    """The :class:`SourceError` for a file the CSV or Parquet reader failed on with ``exc``."""
    if is_parquet(path):
        return _parquet_problem(path, exc)
    if isinstance(exc, UnicodeDecodeError):
        return _not_utf8(path, exc)
    detail = _first_line(exc)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", detail)
    if m:
        return SourceError(f"{path}: line {m.group(2)}: cannot parse CSV file: expected "
                           f"{m.group(1)} fields, found {m.group(3)}")
    if isinstance(exc, pd.errors.EmptyDataError):
        return _error(path, None, "CSV", "CSV header line",
                      "the file has no header line (it holds only blank lines)")
    return SourceError(f"{path}: cannot parse CSV file: {detail}")
