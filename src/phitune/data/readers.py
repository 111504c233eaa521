"""File readers: a data file -> raw records (any JSON-like value) with their FILE:LINE, or `BadRecord`s.

Readers know about bytes and file formats only; what a record must contain is the task formatter's
business (phitune.data.tasks). A new format (CSV, Parquet, ...) is one function registered with
`@register_reader(".csv")` that yields `RawRecord`/`BadRecord` with a location per row.

Every non-blank line gets a record index, good or bad, so the seeded validation split depends only
on the file, never on the tokenizer or on which records happen to be valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from phitune.data.records import BadRecord
from phitune.errors import DataError, Problem

URI_PREFIXES = ("azureml:", "https://", "http://", "abfss://", "wasbs://", "hf://")
UTF8_BOM = b"\xef\xbb\xbf"
OTHER_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16",
}
SAVE_AS_UTF8 = "save the file as UTF-8 (a UTF-8 byte-order mark is fine)"
JSONL_SHAPE = 'each line must be one complete JSON object, e.g. {"messages": [...]}'


@dataclass(frozen=True)
class RawRecord:
    """One parsed record before any task-specific checking."""

    location: str  # FILE:LINE
    index: int  # 0-based position among the file's records (blank lines excluded)
    data: Any


@dataclass(frozen=True)
class ReadResult:
    """Every record of one file, in file order; `bad` holds records (or the file) that could not be parsed."""

    records: list[RawRecord]
    bad: list[tuple[int | None, BadRecord]]  # (record index, problem); index None = the file itself
    count: int  # number of records (good + unparseable), i.e. the next record index


Reader = Callable[[Path, str], Iterator["RawRecord | tuple[int | None, BadRecord]"]]
_READERS: dict[str, Reader] = {}


def register_reader(*suffixes: str) -> Callable[[Reader], Reader]:
    def wrap(fn: Reader) -> Reader:
        for suffix in suffixes:
            _READERS[suffix.lower()] = fn
        return fn

    return wrap


def read_records(path: str, display: str | None = None) -> ReadResult:
    """Read a local data file. `display` is how the file is named in locations (default: the path).

    Unknown suffixes are read as JSONL: it is the format Azure ML and OpenAI use, and users name it
    .jsonl, .json, .txt or nothing at all.
    """
    display = display or str(path)
    file = require_local_file(path, display)
    reader = _READERS.get(file.suffix.lower(), read_jsonl)
    records: list[RawRecord] = []
    bad: list[tuple[int | None, BadRecord]] = []
    for item in reader(file, display):
        if isinstance(item, RawRecord):
            records.append(item)
        else:
            bad.append(item)
    count = max([r.index + 1 for r in records] + [i + 1 for i, _ in bad if i is not None] + [0])
    return ReadResult(records, bad, count)


@register_reader(".jsonl", ".json", ".ndjson")
def read_jsonl(file: Path, display: str) -> Iterator[RawRecord | tuple[int | None, BadRecord]]:
    """JSON Lines, strict UTF-8 (BOM allowed). Blank lines are not records and are ignored."""
    index = 0
    with open(file, "rb") as handle:
        head = handle.read(4)
        for bom, name in OTHER_BOMS.items():
            if head.startswith(bom):
                yield None, BadRecord(f"{display}:1", "not UTF-8", f"the file is {name}-encoded, not UTF-8", SAVE_AS_UTF8)
                return
        handle.seek(0)
        for lineno, raw in enumerate(handle, start=1):
            location = f"{display}:{lineno}"
            if lineno == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM):]
            if not raw.strip():
                continue
            text, problem = _decode(raw, location)
            if problem is not None:
                yield index, problem
                index += 1
                continue
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield index, _json_problem(exc, text, location, lineno)
            else:
                yield RawRecord(location, index, data)
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


def _json_problem(exc: json.JSONDecodeError, text: str, location: str, lineno: int) -> BadRecord:
    fix = JSONL_SHAPE
    if (lineno == 1 and text.strip() in ("[", "{")) or text.lstrip().startswith("[{"):
        fix = "this looks like one pretty-printed JSON document; JSONL needs one complete object per line"
    return BadRecord(location, "invalid JSON", f"invalid JSON: {exc.msg} (column {exc.colno})", fix)


def require_local_file(path: str, display: str | None = None) -> Path:
    """The local file at `path`, or a DataError saying why it cannot be read here."""
    display = display or str(path)
    if str(path).startswith(URI_PREFIXES):
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


# CSV, TSV and Parquet register themselves here (at the end: they import register_reader from this module).
import phitune.data.tabular  # noqa: E402,F401
