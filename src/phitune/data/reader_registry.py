"""The registry of file readers, keyed by file suffix, and what every reader shares: the `RawRecord`
it yields and the encoding checks' wording.

A reader takes a local file and the name to show for it, and yields `RawRecord`s and
`(record index, BadRecord)` pairs (index None: the file itself). Readers register here with
`@register_reader(".csv")`; phitune.data.readers imports every reader module and is what callers use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from phitune.data.records import BadRecord

UTF8_BOM = b"\xef\xbb\xbf"
OTHER_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16",
}
SAVE_AS_UTF8 = "save the file as UTF-8 (a UTF-8 byte-order mark is fine)"


@dataclass(frozen=True)
class RawRecord:
    """One parsed record before any task-specific checking."""

    location: str  # FILE:LINE
    index: int  # 0-based position among the file's records (blank lines excluded)
    data: Any
    line: int = 0  # the LINE of FILE:LINE (a row number for Parquet)
    offset: int = -1  # byte offset of the line in a JSONL file (-1: not seekable, e.g. CSV)


Reader = Callable[[Path, str], Iterator["RawRecord | tuple[int | None, BadRecord]"]]
_READERS: dict[str, Reader] = {}


def register_reader(*suffixes: str) -> Callable[[Reader], Reader]:
    def wrap(fn: Reader) -> Reader:
        for suffix in suffixes:
            _READERS[suffix.lower()] = fn
        return fn

    return wrap


def reader_for(suffix: str) -> Reader | None:
    return _READERS.get(suffix.lower())
