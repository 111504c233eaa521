"""File readers: a data file -> raw records (any JSON-like value) with their FILE:LINE, or `BadRecord`s.

Readers know about bytes and file formats only; what a record must contain is the task formatter's
business (phitune.data.tasks). A new format is one function registered with
`@register_reader(".csv")` (phitune.data.reader_registry) that yields `RawRecord`/`BadRecord` with a
location per row, plus its import here; CSV, TSV and Parquet are in phitune.data.tabular.

Every non-blank line gets a record index, good or bad, so the seeded validation split depends only
on the file, never on the tokenizer or on which records happen to be valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

# Registers the CSV, TSV and Parquet readers.
import phitune.data.tabular  # noqa: F401
from phitune.data.reader_registry import OTHER_BOMS, SAVE_AS_UTF8, UTF8_BOM, RawRecord, reader_for, register_reader
from phitune.data.records import BadRecord
from phitune.errors import DataError, Problem
from phitune.recipe.paths import REMOTE_PREFIXES

DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024  # recipe field data.max_record_bytes (recipe/sections.py)
SKIP_BLOCK = 1 << 20  # an oversized line is skipped in blocks of this many bytes
JSONL_SHAPE = 'each line must be one complete JSON object, e.g. {"messages": [...]}'


@dataclass(frozen=True)
class ReadResult:
    """Every record of one file, in file order; `bad` holds records (or the file) that could not be parsed."""

    records: list[RawRecord]
    bad: list[tuple[int | None, BadRecord]]  # (record index, problem); index None = the file itself
    count: int  # number of records (good + unparseable), i.e. the next record index


def read_records(path: str, display: str | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> ReadResult:
    """Every record of a (small) local file in memory; `iter_records` is the streaming form."""
    records: list[RawRecord] = []
    bad: list[tuple[int | None, BadRecord]] = []
    for item in iter_records(path, display, max_record_bytes):
        if isinstance(item, RawRecord):
            records.append(item)
        else:
            bad.append(item)
    count = max([r.index + 1 for r in records] + [i + 1 for i, _ in bad if i is not None] + [0])
    return ReadResult(records, bad, count)


def iter_records(path: str, display: str | None = None,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[RawRecord | tuple[int | None, BadRecord]]:
    """Stream a local data file's records in file order: `RawRecord`s, and `(index, BadRecord)` for
    records (or, index None, the file) that cannot be parsed. `display` names the file in locations.

    Unknown suffixes are read as JSONL: it is the format Azure ML and OpenAI use, and users name it
    .jsonl, .json, .txt or nothing at all.
    """
    display = display or str(path)
    file = require_local_file(path, display)
    reader = reader_for(file.suffix) or read_jsonl
    if reader is read_jsonl:
        return read_jsonl(file, display, max_record_bytes)
    return reader(file, display)


@register_reader(".jsonl", ".json", ".ndjson")
def read_jsonl(file: Path, display: str,
               max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[RawRecord | tuple[int | None, BadRecord]]:
    """JSON Lines, strict UTF-8 (BOM allowed), one line at a time. Blank lines are not records.

    A line longer than `max_record_bytes` is skipped by scanning for its end in blocks, never held in
    memory; JSON that Python's parser refuses with something other than a syntax error (integers
    past its digit limit, nesting past its recursion limit) and strings with lone UTF-16 surrogates
    (which no tokenizer can encode) are bad records like any other."""
    index, offset = 0, 0
    with open(file, "rb") as handle:
        head = handle.read(4)
        for bom, name in OTHER_BOMS.items():
            if head.startswith(bom):
                yield None, BadRecord(f"{display}:1", "not UTF-8", f"the file is {name}-encoded, not UTF-8", SAVE_AS_UTF8)
                return
        handle.seek(0)
        lineno = 0
        while True:
            raw = handle.readline(max_record_bytes + 1)
            if not raw:
                break
            lineno += 1
            start, location = offset, f"{display}:{lineno}"
            offset += len(raw)
            if len(raw) > max_record_bytes and not raw.endswith(b"\n"):
                size = len(raw) + _skip_line(handle)
                offset = start + size
                yield index, BadRecord(location, "record too large",
                                       f"the record is {size:,} bytes, more than data.max_record_bytes={max_record_bytes:,}",
                                       "split or shorten the record, or raise data.max_record_bytes")
                index += 1
                continue
            if lineno == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM):]
            if not raw.strip():
                continue
            text, problem = _decode(raw, location)
            if problem is None and text.strip():
                data, problem = _parse(text, location, lineno, truncated=not raw.endswith(b"\n"))
            elif problem is None:
                continue
            if problem is not None:
                yield index, problem
            else:
                yield RawRecord(location, index, data, lineno, start)
            index += 1
    if index == 0:
        yield None, BadRecord(f"{display}:1", "empty file", "the file has no records",
                              "add one JSON object per line")


def _decode(raw: bytes, location: str) -> tuple[str, BadRecord | None]:
    if b"\x00" in raw:
        return "", BadRecord(location, "not UTF-8", "the line contains NUL bytes (the file looks UTF-16 or UTF-32 encoded)",
                             SAVE_AS_UTF8)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return "", BadRecord(location, "not UTF-8",
                             f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)",
                             SAVE_AS_UTF8)


def _skip_line(handle) -> int:
    """Advance past the next newline without keeping what is read; the number of bytes skipped."""
    skipped = 0
    while True:
        block = handle.read(SKIP_BLOCK)
        if not block:
            return skipped
        end = block.find(b"\n")
        if end >= 0:
            handle.seek(end + 1 - len(block), 1)
            return skipped + end + 1
        skipped += len(block)


def _parse(text: str, location: str, lineno: int, truncated: bool) -> tuple[Any, BadRecord | None]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if truncated:
            return None, BadRecord(location, "truncated", "the last line is cut off: it is not complete JSON and the "
                                   "file does not end with a newline", "the file looks truncated: copy or export it again")
        return None, _json_problem(exc, text, location, lineno)
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        return None, BadRecord(location, "invalid JSON", f"a number Python cannot read: {str(exc).split(';')[0]}",
                               "write very large numbers as strings")
    except RecursionError:
        return None, BadRecord(location, "invalid JSON", "the JSON is nested too deeply to read",
                               "flatten the record: chat data needs only a few levels of nesting")
    if ("\\ud" in text or "\\uD" in text) and (where := _lone_surrogate(data)) is not None:
        return None, BadRecord(location, "invalid text", f"a string contains a lone UTF-16 surrogate ({where}): "
                               "half of a character such as an emoji, which no tokenizer can encode",
                               "export the file again; a \\ud800-\\udfff escape must come in a high + low pair")
    return data, None


def _lone_surrogate(data: Any) -> str | None:
    """The escaped form of the first lone surrogate in any string of `data` (iterative: no depth limit)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return f"\\u{ord(item[exc.start]):04x}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _json_problem(exc: json.JSONDecodeError, text: str, location: str, lineno: int) -> BadRecord:
    fix = JSONL_SHAPE
    if (lineno == 1 and text.strip() in ("[", "{")) or text.lstrip().startswith("[{"):
        fix = "this looks like one pretty-printed JSON document; JSONL needs one complete object per line"
    return BadRecord(location, "invalid JSON", f"invalid JSON: {exc.msg} (column {exc.colno})", fix)


def require_local_file(path: str, display: str | None = None) -> Path:
    """The local file at `path`, or a DataError saying why it cannot be read here."""
    display = display or str(path)
    if str(path).startswith(REMOTE_PREFIXES):
        raise DataError(
            f"cannot read {path} on this machine",
            [Problem(display, "a remote URI cannot be read locally",
                     "download the file and point the recipe at the local copy, or submit to an Azure target")],
        )
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"data file not found: {display}",
                        [Problem(display, "no such file", "check the path (relative paths in a recipe are relative to the recipe file)")])
    if not file.is_file():
        raise DataError(f"not a data file: {display}", [Problem(display, "is a folder, not a file", "point at a .jsonl file")])
    return file

