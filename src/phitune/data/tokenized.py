"""A data file's tokenized examples on disk (Apache Arrow IPC, memory-mapped): built once per
fingerprint (phitune.data.cache), then read by row without loading the file.

`TokenizedFile` is the mapped file: the length, record-index, line and offset columns as numpy
arrays (a few bytes per example), and token ids / labels read per example from the mapping, so a
run touches only the pages of the examples it trains on. `ExampleView` is a subset of its rows
(the training part, the held-out part) that behaves like a list of `Example`s.

Labels: a generative task learns a token's own id or nothing (-100), so its labels are stored as a
one-byte `learn` mask beside the ids (5 bytes a token instead of 8: a 1 GB chat file's cache shrinks
by about 40 %); a classifier head's labels are class ids, stored as they are (`labels`, int32).
"""

from __future__ import annotations

import json
import logging
import os
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from phitune.data import cache
from phitune.data.records import IGNORE_INDEX, BadRecord, Example
from phitune.data.stats import length_stats
from phitune.data.stream import stream_chunks
from phitune.recipe.task import uses_head

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("phitune.data")


def ensure_built(path: str, display: str, task, tokenizer, max_seq_len: int | None, max_record_bytes: int, *,
                 progress: bool = False) -> tuple[Path, bool]:
    """The cache folder of `path` under this fingerprint, building it if needed; (folder, built here)."""
    fp = cache.fingerprint(path, task, tokenizer, max_seq_len, max_record_bytes)
    folder = cache.entry_dir(fp)
    if cache.is_ready(folder):
        return folder, False
    with cache.build_lock(fp):
        if cache.is_ready(folder):  # another process (rank) built it while this one waited
            return folder, False
        started = time.perf_counter()
        with cache.atomic_entry(fp) as tmp:
            meta = _write(tmp, stream_chunks(path, task, tokenizer, max_seq_len, display=display,
                                             max_record_bytes=max_record_bytes, progress=progress), display,
                          label_column="labels" if uses_head(task) else "learn")
            meta.update(source=os.path.realpath(path), fingerprint=fp.__dict__, created=time.time(),
                        build_seconds=round(time.perf_counter() - started, 3),
                        built_by={"pid": os.getpid(), "rank": int(os.environ.get("RANK", "0"))})
            (tmp / cache.META).write_text(json.dumps(meta, indent=1))
        log.info("tokenized %s into the data cache (%s) in %.1fs", display, fp.key, time.perf_counter() - started)
    return folder, True


def _write(folder: Path, chunks, display: str, label_column: str) -> dict:
    import pyarrow as pa

    label_type = pa.int32() if label_column == "labels" else pa.uint8()
    schema = pa.schema([("input_ids", pa.list_(pa.int32())), (label_column, pa.list_(label_type)),
                        ("length", pa.int32()), ("record", pa.int64()), ("line", pa.int64()), ("offset", pa.int64())])
    lengths = array("i")
    reasons: Counter = Counter()
    records = used = bad = 0
    with pa.OSFile(str(folder / cache.EXAMPLES), "wb") as sink, pa.ipc.new_file(sink, schema) as writer, \
            open(folder / cache.PROBLEMS, "w", encoding="utf-8") as problems:
        for chunk in chunks:
            records = max(records, chunk.records)
            lengths.extend(chunk.lengths)
            for index, item in chunk.bad:
                bad += 1
                reasons[item.kind] += 1
                where = item.location[len(display):] if item.location.startswith(display) else item.location
                problems.write(json.dumps({"index": index, "where": where, "kind": item.kind, "message": item.message,
                                           "fix": item.fix}, ensure_ascii=False) + "\n")
            if chunk.rows:
                writer.write_batch(_batch(chunk.rows, schema))
                used += len(chunk.rows)
    stats = length_stats(lengths)
    return {"format": cache.FORMAT_VERSION, "labels": label_column, "display": display, "records": records, "used": used, "bad": bad,
            "skipped_reasons": dict(reasons), "lengths": stats.to_dict() if stats else None}


def _batch(rows: list, schema):
    import numpy as np
    import pyarrow as pa

    sizes = np.fromiter((len(r.ids) for r in rows), dtype=np.int32, count=len(rows))
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    ids = np.concatenate([np.frombuffer(r.ids, dtype=np.int32) for r in rows])
    labels = np.concatenate([np.frombuffer(r.labels, dtype=np.int32) for r in rows])
    if schema.field(1).name == "learn":
        learn = labels != IGNORE_INDEX
        if not np.array_equal(labels[learn], ids[learn]):  # a generative example learns its own tokens only
            raise ValueError("a generative example has a label that is not its token: store its labels as ids")
        labels = learn.astype(np.uint8)

    def column(attr: str):
        return pa.array(np.fromiter((getattr(r, attr) for r in rows), dtype=np.int64, count=len(rows)))

    return pa.record_batch([pa.ListArray.from_arrays(offsets, pa.array(ids)),
                            pa.ListArray.from_arrays(offsets, pa.array(labels)), pa.array(sizes),
                            column("index"), column("line"), column("offset")], schema=schema)


class TokenizedFile:
    """A built cache folder, memory-mapped. `display` names the data file in example sources."""

    def __init__(self, folder: Path, display: str, built: bool = False):
        import numpy as np
        import pyarrow as pa

        self.folder, self.display, self.built = Path(folder), display, built
        self.meta = json.loads((self.folder / cache.META).read_text())
        self._map = pa.memory_map(str(self.folder / cache.EXAMPLES))
        self._learn_mask = self.meta["labels"] == "learn"
        reader = pa.ipc.open_file(self._map)
        self._chunks = []
        columns: dict[str, list] = {name: [] for name in ("length", "record", "line", "offset")}
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            ids, labels = batch.column(0), batch.column(1)
            self._chunks.append((ids.values.to_numpy(zero_copy_only=True), ids.offsets.to_numpy(zero_copy_only=True),
                                 labels.values.to_numpy(zero_copy_only=True), labels.offsets.to_numpy(zero_copy_only=True)))
            for name in columns:
                columns[name].append(batch.column(name).to_numpy(zero_copy_only=True))
        empty = {"length": np.int32, "record": np.int64, "line": np.int64, "offset": np.int64}
        self.lengths, self.records, self.lines, self.offsets = (
            np.concatenate(columns[n]) if columns[n] else np.zeros(0, dtype=empty[n])
            for n in ("length", "record", "line", "offset"))
        self._starts = np.cumsum([0] + [len(c[1]) - 1 for c in self._chunks])

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def key(self) -> str:
        return self.folder.name

    @property
    def content_hash(self) -> str:
        return self.meta["fingerprint"]["content"]

    def example(self, row: int) -> Example:
        import numpy as np

        chunk = int(np.searchsorted(self._starts, row, side="right")) - 1
        local = row - int(self._starts[chunk])
        ids, id_offsets, labels, label_offsets = self._chunks[chunk]
        a, b = int(id_offsets[local]), int(id_offsets[local + 1])
        c, d = int(label_offsets[local]), int(label_offsets[local + 1])
        row_ids = ids[a:b]
        row_labels = np.where(labels[c:d] != 0, row_ids, IGNORE_INDEX) if self._learn_mask else labels[c:d]
        return Example(row_ids.tolist(), row_labels.tolist(), f"{self.display}:{int(self.lines[row])}")

    def problems(self, limit: int | None = None) -> Iterator[tuple[int | None, BadRecord]]:
        """Bad records in file order, located in `display`."""
        with open(self.folder / cache.PROBLEMS, encoding="utf-8") as handle:
            for n, line in enumerate(handle):
                if limit is not None and n >= limit:
                    return
                item = json.loads(line)
                yield item["index"], BadRecord(self.display + item["where"], item["kind"], item["message"], item["fix"])

    def view(self, rows: "np.ndarray | None" = None) -> "ExampleView":
        return ExampleView(self, rows)


class ExampleView(Sequence[Example]):
    """Rows of a `TokenizedFile` (all of them when `rows` is None) as a read-only list of Examples,
    built one at a time from the mapping."""

    def __init__(self, file: TokenizedFile, rows: "np.ndarray | None" = None):
        self.file, self.rows = file, rows

    def __len__(self) -> int:
        return len(self.file) if self.rows is None else len(self.rows)

    def _row(self, i: int) -> int:
        return i if self.rows is None else int(self.rows[i])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self.file.example(self._row(i))

    def __iter__(self) -> Iterator[Example]:
        for i in range(len(self)):
            yield self.file.example(self._row(i))

    def lengths(self) -> list[int]:
        lengths = self.file.lengths if self.rows is None else self.file.lengths[self.rows]
        return lengths.tolist()

    def record_rows(self) -> tuple["np.ndarray", "np.ndarray"]:
        """(record index, byte offset) of each example: where to find its record in the file again."""
        if self.rows is None:
            return self.file.records, self.file.offsets
        return self.file.records[self.rows], self.file.offsets[self.rows]
