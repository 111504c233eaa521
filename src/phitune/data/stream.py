"""One pass over a data file in bounded memory: read, check, template, mask and tokenize records in
chunks, in file order. Both the in-memory scan (`phitune.data.loader.scan_file`) and the tokenized
cache (`phitune.data.cache`) are built from these chunks, so they cannot disagree about a record.

Tokenization is the fast tokenizer's batch encoding (Rust, over every core; it releases the GIL),
run on a background thread for chunk k while this thread parses and templates chunk k+1. Memory is
about two chunks of records plus their tokens, whatever the file size.
"""

from __future__ import annotations

import os
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

from phitune.data.readers import DEFAULT_MAX_RECORD_BYTES, RawRecord, iter_records
from phitune.data.records import BadRecord, RecordInvalid
from phitune.data.tasks import format_record

# Records per chunk: enough for the batch encoder to use every core, few enough that two chunks in
# flight (token ids, offsets and labels are Python lists until masked) stay in the tens of MB.
CHUNK_RECORDS = 256
CHUNK_BYTES = 1024 * 1024  # ... or fewer, when records are long
PARALLELISM = "TOKENIZERS_PARALLELISM"


@dataclass(frozen=True)
class Row:
    """One example: where its record is, and its token ids and labels as compact int32 arrays."""

    index: int  # record index in the file
    location: str  # FILE:LINE
    line: int
    offset: int  # byte offset of the record's line (-1: not seekable)
    ids: array
    labels: array


@dataclass
class Chunk:
    """The records of one stretch of the file. `rows` are the records that became examples."""

    rows: list[Row] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # token count of every tokenized record, too long ones too
    bad: list[tuple[int | None, BadRecord]] = field(default_factory=list)  # in file order
    samples: list[tuple[RawRecord, object]] = field(default_factory=list)  # well-formed records (no tokenizer)
    records: int = 0  # the next record index after this chunk


def stream_chunks(path: str, task, tokenizer, max_seq_len: int | None, *, display: str | None = None,
                  max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, progress: bool = False) -> Iterator[Chunk]:
    """Chunks of `path` in file order. Without a tokenizer, records are only checked (`samples`).
    `max_seq_len` None: nothing is rejected for its length (lengths are still measured)."""
    name = display or str(path)
    items = iter_records(path, name, max_record_bytes)
    bar = _bar(path, name, progress)
    encoder = _Encoder(tokenizer) if tokenizer is not None else None
    try:
        pending = None  # (chunk, prepared) whose tokens are being computed
        for raw_chunk, nbytes in _raw_chunks(items):
            chunk = Chunk(records=_next_index(raw_chunk))
            prepared = _prepare(chunk, raw_chunk, task, encoder)
            if pending is not None:
                yield _finish(*pending, max_seq_len)
            pending = (chunk, prepared)
            offsets = [item.offset for item in raw_chunk if isinstance(item, RawRecord) and item.offset >= 0]
            bar.update(offsets[-1] - bar.n if offsets else nbytes)
        if pending is not None:
            yield _finish(*pending, max_seq_len)
    finally:
        bar.close()
        if encoder is not None:
            encoder.close()


def _raw_chunks(items) -> Iterator[tuple[list, int]]:
    chunk: list = []
    size = 0
    for item in items:
        chunk.append(item)
        if isinstance(item, RawRecord):
            size += _approx_size(item)
        if len(chunk) >= CHUNK_RECORDS or size >= CHUNK_BYTES:
            yield chunk, size
            chunk, size = [], 0
    if chunk:
        yield chunk, size


def _approx_size(record: RawRecord) -> int:
    data = record.data
    if isinstance(data, dict):
        return sum(len(v) if isinstance(v, str) else _nested_len(v) for v in data.values()) + 16
    return 64


def _nested_len(value) -> int:
    if isinstance(value, list):
        return sum(len(m.get("content") or "") if isinstance(m, dict) and isinstance(m.get("content"), str)
                   else 16 for m in value[:256])
    return 16


def _next_index(raw_chunk: list) -> int:
    last = 0
    for item in raw_chunk:
        index = item.index if isinstance(item, RawRecord) else item[0]
        if index is not None:
            last = max(last, index + 1)
    return last


def _prepare(chunk: Chunk, raw_chunk: list, task, encoder: "_Encoder | None"):
    """Format every record; with an encoder, template them and start their tokenization."""
    samples: list[tuple[RawRecord, object]] = []
    for item in raw_chunk:
        if not isinstance(item, RawRecord):
            chunk.bad.append(item)
            continue
        try:
            samples.append((item, format_record(task, item.data)))
        except RecordInvalid as exc:
            chunk.bad.append((item.index, exc.at(item.location)))
    if encoder is None:
        chunk.samples = samples
        return None
    return samples, encoder.submit(samples)


def _finish(chunk: Chunk, prepared, max_seq_len: int | None) -> Chunk:
    if prepared is not None:
        samples, future = prepared
        for (record, _), result in zip(samples, future.result()):
            if isinstance(result, RecordInvalid):
                chunk.bad.append((record.index, result.at(record.location)))
                continue
            ids, labels = result
            chunk.lengths.append(len(ids))
            if max_seq_len is not None and len(ids) > max_seq_len:
                chunk.bad.append((record.index, too_long(record.location, len(ids), max_seq_len)))
                continue
            chunk.rows.append(Row(record.index, record.location, record.line, record.offset, array("i", ids),
                                  array("i", labels)))
    chunk.bad.sort(key=lambda item: -1 if item[0] is None else item[0])
    return chunk


def too_long(location: str, n_tokens: int, max_seq_len: int) -> BadRecord:
    return BadRecord(location, "too long", f"{n_tokens} tokens after templating, more than train.max_seq_len={max_seq_len}",
                     "raise train.max_seq_len, or shorten or split the record")


class _Encoder:
    """Templating here, batch encoding on one background thread (the Rust encoder spreads a batch
    over the cores and releases the GIL, so the next chunk is templated meanwhile)."""

    def __init__(self, tokenizer):
        from phitune.data.template import Encoding

        self.encoding = Encoding(tokenizer)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phitune-tokenize")
        # The CLI sets TOKENIZERS_PARALLELISM=false (quiet start-up: no fork warning); a batch encode
        # is where the cores pay off, so it is on while this pass runs. The Rust side reads it per call;
        # it stays set (to its old value) afterwards, so a later fork still prints no warning.
        self._parallelism = os.environ.get(PARALLELISM)
        os.environ[PARALLELISM] = "true"

    def submit(self, samples: list):
        rendered = self.encoding.render([(record.location, sample) for record, sample in samples])
        return self.pool.submit(self.encoding.encode, rendered)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        os.environ[PARALLELISM] = self._parallelism if self._parallelism is not None else "false"


class _NoBar:
    n = 0

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(path: str, name: str, progress: bool):
    """A byte progress bar for tokenizing `name`, shown only when asked for and only after a second."""
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    try:
        total = os.path.getsize(path)
    except OSError:
        total = None
    return tqdm(total=total, desc=f"tokenizing {os.path.basename(name)}", unit="B", unit_scale=True, leave=False,
                delay=1.0, dynamic_ncols=True)
