"""CSV, TSV and Parquet readers (registered with phitune.data.reader_registry.register_reader).

CSV/TSV: the first row is the header; each later row is a record of strings keyed by the header,
located at the FILE:LINE where the row starts (quoted fields may span lines). Blank rows are not
records. Cells are strings: list-valued columns (NER tokens and tags) may hold a JSON list or
space-separated items, which the task formatters read. Parquet: one record per row, located as
FILE:ROW (1-based), with the column types Parquet stores (lists stay lists, ints stay ints).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from phitune.data.reader_registry import OTHER_BOMS, SAVE_AS_UTF8, RawRecord, register_reader
from phitune.data.records import BadRecord
from phitune.errors import DataError, Problem

Item = RawRecord | tuple[int | None, BadRecord]


@register_reader(".csv", ".tsv")
def read_delimited(file: Path, display: str) -> Iterator[Item]:
    """Streamed: the file is checked for UTF-8, then parsed row by row (memory does not grow with it)."""
    with open(file, "rb") as probe:
        head = probe.read(4)
    for bom, name in OTHER_BOMS.items():
        if head.startswith(bom):
            yield None, BadRecord(f"{display}:1", "not UTF-8", f"the file is {name}-encoded, not UTF-8", SAVE_AS_UTF8)
            return
    invalid = first_invalid_utf8(file)
    if invalid is not None:
        line, byte = invalid
        yield None, BadRecord(f"{display}:{line}", "not UTF-8", f"not valid UTF-8 (byte 0x{byte:02x})", SAVE_AS_UTF8)
        return
    with open(file, encoding="utf-8-sig", newline="") as text:
        yield from _delimited_rows(text, file, display)


def first_invalid_utf8(file: Path, block: int = 1 << 20) -> tuple[int, int] | None:
    """(line, byte value) of the first byte that is not valid UTF-8, read in 1 MiB blocks; None if all is."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    with open(file, "rb") as handle:
        while True:
            chunk = handle.read(block)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is this chunk behind at most 3 held-back bytes of an unfinished character
                # (never a newline), so the newlines before exc.start are this chunk's
                data = exc.object
                return lines + data.count(b"\n", 0, exc.start), data[exc.start]
            if not chunk:
                return None
            lines += chunk.count(b"\n")


def _delimited_rows(text, file: Path, display: str) -> Iterator[Item]:
    delimiter = "\t" if file.suffix.lower() == ".tsv" else ","
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    index, line = 0, 1
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield (index if header else None), BadRecord(f"{display}:{start}", "invalid CSV", f"invalid CSV: {exc}",
                                                         "quote fields that contain the delimiter, quotes or newlines")
            if header is None:
                return
            index += 1
            continue
        line = start
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if header is None:
            header = [cell.strip() for cell in row]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes or not all(header):
                what = f"repeats column {', '.join(map(repr, dupes))}" if dupes else "has an empty column name"
                yield None, BadRecord(f"{display}:{line}", "bad header", f"the header row {what}",
                                      "give every column a distinct name in the first row")
                return
            continue
        if len(row) != len(header):
            yield index, BadRecord(f"{display}:{line}", "wrong field count",
                                   f"{len(row)} fields, but the header has {len(header)}",
                                   "quote fields that contain the delimiter, and give every row the header's columns")
        else:
            yield RawRecord(f"{display}:{line}", index, dict(zip(header, row)), line)
        index += 1
    if index == 0:
        what = "no header row" if header is None else "a header but no rows"
        yield None, BadRecord(f"{display}:1", "empty file", f"the file has {what}", "add a header row and one row per record")


@register_reader(".parquet", ".pq")
def read_parquet(file: Path, display: str) -> Iterator[Item]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"cannot read {display}", [Problem(display, "reading Parquet needs pyarrow",
                                                           "pip install pyarrow")]) from None
    try:
        parquet = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses for non-Parquet bytes
        yield None, BadRecord(f"{display}:1", "not Parquet", f"not a readable Parquet file ({exc})",
                              "write the file with pandas.DataFrame.to_parquet or pyarrow, or use JSONL")
        return
    index = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            index += 1
            yield RawRecord(f"{display}:{index}", index - 1, row, index)
    if index == 0:
        yield None, BadRecord(f"{display}:1", "empty file", "the file has no rows", "add records")
