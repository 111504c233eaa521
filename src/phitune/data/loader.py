"""Recipe -> training/eval examples and eval records: read, format per task, template and mask, check
lengths, split, and apply `data.on_error`.

Files are tokenized once into the data cache (phitune.data.cache, phitune.data.tokenized) in one
streaming pass, and every run maps the result: memory does not grow with the file. `on_error: fail`
raises one DataError listing the bad records (FILE:LINE: reason; the first PROBLEMS_LISTED, then how
many more); `skip` drops them, logs how many and why (logger "phitune.data") and records them in the
DataReport. Nothing is ever dropped silently. The validation split is over record positions in the
file (seeded with `train.seed`), so `load_examples` and `load_eval_records` hold out exactly the same
records.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass

from phitune.data.readers import DEFAULT_MAX_RECORD_BYTES
from phitune.data.records import BadRecord, DataReport, EvalRecord, Example, FileReport, LengthStats
from phitune.data.stats import length_stats
from phitune.data.stream import stream_chunks
from phitune.data.tasks import Sample, format_record, to_eval_record
from phitune.errors import DataError, Problem

log = logging.getLogger("phitune.data")
PROBLEMS_LISTED = 50  # bad records named in an error or a report; the rest are counted (and in the cache)


@dataclass
class ScannedFile:
    """One file after reading, formatting and (optionally) tokenizing, in memory (small files, tests).
    `bad` is in file order; `samples` (well-formed records) is filled only without a tokenizer."""

    report: FileReport
    examples: list[tuple[int, Example]]  # (record index, example)
    samples: list[tuple[int, str, Sample]]  # (record index, location, sample)
    bad: list[BadRecord]
    bad_indices: list[int | None]  # record index per bad item (None: the file itself)


def max_record_bytes(recipe) -> int:
    return getattr(recipe.data, "max_record_bytes", None) or DEFAULT_MAX_RECORD_BYTES


def open_tokenized(path: str, recipe, tokenizer, *, max_seq_len: int | None = None, display: str | None = None,
                   progress: bool = False, enforce_length: bool = True):
    """The mapped tokenized form of `path` under `recipe`'s task and `tokenizer`, built if needed."""
    from phitune.data.readers import require_local_file
    from phitune.data.tokenized import TokenizedFile, ensure_built

    display = display or str(path)
    path = str(require_local_file(path, display))
    max_len = (max_seq_len or recipe.train.max_seq_len) if enforce_length else None
    folder, built = ensure_built(path, display, recipe.task, tokenizer, max_len, max_record_bytes(recipe),
                                 progress=progress)
    return TokenizedFile(folder, display, built)


def prepare_data(recipe, tokenizer, *, progress: bool = False) -> list:
    """Tokenize the recipe's data files into the cache (no-op when cached); the TokenizedFiles."""
    paths = [recipe.data.train] + ([recipe.data.validation] if recipe.data.validation else [])
    return [open_tokenized(path, recipe, tokenizer, progress=progress) for path in paths]


def cache_sharing(statuses: list[float]) -> str:
    """Which rank built the data cache and which mapped it, from one status per rank (1 built, 2 mapped)."""
    built = [str(r) for r, s in enumerate(statuses) if int(s) == 1]
    mapped = [str(r) for r, s in enumerate(statuses) if int(s) == 2]
    parts = ([f"built by rank {', '.join(built)}"] if built else ["already cached"]) + (
        [f"mapped by rank{'s' if len(mapped) > 1 else ''} {', '.join(mapped)}"] if mapped else [])
    return "; ".join(parts)


def load_examples(recipe, tokenizer, *, progress: bool = False, files: list | None = None):
    """Train and eval examples (read-only lists of `Example`, mapped from the data cache) and the
    report. Eval is empty without a validation source. `files`: what `prepare_data` already returned."""
    import numpy as np

    data = recipe.data
    split = data.validation_split
    files = files if files is not None else prepare_data(recipe, tokenizer, progress=progress)
    train = files[0]
    reports = [file_report(train, "train+validation" if split else "train")]
    if data.validation:
        reports.append(file_report(files[1], "validation"))
    _apply_on_error(files, reports, data.on_error)

    if split:
        held_out = split_indices(train.meta["records"], split, recipe.train.seed, data.train)
        in_held = np.isin(train.records, np.fromiter(held_out, dtype=np.int64, count=len(held_out)))
        train_examples, eval_examples = train.view(np.flatnonzero(~in_held)), train.view(np.flatnonzero(in_held))
    else:
        train_examples = train.view()
        eval_examples = files[1].view() if data.validation else []

    if not len(train_examples):
        raise DataError(f"no usable training examples in {data.train}",
                        [Problem(data.train, f"all {train.meta['records']} records are bad or held out",
                                 "fix the records listed by `phitune data check`")])
    if (split or data.validation) and not len(eval_examples):
        where = data.validation or data.train
        raise DataError(f"no usable validation examples in {where}",
                        [Problem(where, "every held-out record was bad", "fix the records, or drop the validation source")])
    report = DataReport(files=reports, train_examples=len(train_examples), eval_examples=len(eval_examples))
    for f, tokenized in zip(report.files, files):
        log.info("%s (%s): %d records, %d used, %d skipped; %s (%s data cache %s)", f.path, f.role, f.records, f.used,
                 f.skipped, f.lengths or "no lengths", "built" if tokenized.built else "mapped", tokenized.key)
    return train_examples, eval_examples, report


def file_report(tokenized, role: str) -> FileReport:
    """The report of a tokenized file, from its cache metadata (bad records: the first PROBLEMS_LISTED)."""
    meta = tokenized.meta
    report = FileReport(path=tokenized.display, role=role, records=meta["records"], used=meta["used"],
                        skipped=meta["bad"], skipped_reasons=Counter(meta["skipped_reasons"]),
                        lengths=LengthStats(**meta["lengths"]) if meta["lengths"] else None,
                        content_hash=tokenized.content_hash, cache_key=tokenized.key)
    report.problems = [bad.problem() for _, bad in tokenized.problems(PROBLEMS_LISTED)]
    return report


def data_identity(recipe) -> dict[str, str]:
    """Content hash per data file of a run (checkpoints keep it, so a resume on changed data is refused)."""
    from phitune.data.cache import content_hash

    files = {"data.train": recipe.data.train, "data.validation": recipe.data.validation}
    return {key: content_hash(path) for key, path in files.items() if path}


def check_same_data(recipe, state_file) -> None:
    """DataError when a data file's content differs from when the checkpoint whose trainer state is
    `state_file` was written (checked before any tokenizing)."""
    from pathlib import Path

    try:
        saved = json.loads(Path(state_file).read_text()).get("extra", {}).get("data")
    except (OSError, ValueError):
        return  # an unreadable checkpoint is reported by the code that loads it
    if not saved:
        return  # written before data identities were recorded
    for key, path in {"data.train": recipe.data.train, "data.validation": recipe.data.validation}.items():
        if not path or key not in saved:
            continue
        from phitune.data.readers import require_local_file

        now = content_hash_of(require_local_file(path, path))
        if now != saved[key]:
            checkpoint = Path(state_file).parent
            raise DataError(f"{key} changed since {checkpoint} was written", [Problem(
                path, f"its content differs from the file this run trained on so far (content hash {saved[key][:12]} "
                      f"then, {now[:12]} now): resuming would not continue the same training",
                "put the original file back to resume, or start a new run in another --output folder")])


def content_hash_of(path) -> str:
    from phitune.data.cache import content_hash

    return content_hash(path)


def load_eval_records(recipe, examples=None) -> list[EvalRecord]:
    """Prompt/reference pairs from the validation file or split (the same records `load_examples`
    holds out), in file order: at most `eval.max_examples`, chosen with `train.seed` when there are
    more, then at most `eval.limit`. With `examples` (load_examples' eval part, from a JSONL file),
    only the chosen records are read again; otherwise the file is streamed. No tokenizer needed."""
    data = recipe.data
    if not (data.validation or data.validation_split):
        return []
    path = data.validation or data.train
    rows = getattr(examples, "record_rows", None)
    if rows is not None and len(examples) and (rows()[1] >= 0).all():
        records = _reread_records(recipe, path, examples)
    else:
        records = _stream_eval_records(recipe, path)
    if not records:
        log.info("plain-text task: the validation data has no prompt/reference pairs to evaluate generations on")
    return records[: recipe.eval.limit] if recipe.eval.limit else records


def _max_examples(recipe) -> int | None:
    return getattr(recipe.eval, "max_examples", None)


def choose(items, k: int | None, seed: int) -> list:
    """At most `k` of `items` (an iterable of any length, read once), chosen with `seed`, in their
    original order: reservoir sampling, so memory is k items however long the stream is."""
    if k is None:
        return list(items)
    rng = random.Random(f"phitune-eval-examples:{seed}")
    reservoir: list = []
    for n, item in enumerate(items):
        if n < k:
            reservoir.append((n, item))
        else:
            j = rng.randint(0, n)
            if j < k:
                reservoir[j] = (n, item)
    return [item for _, item in sorted(reservoir, key=lambda pair: pair[0])]


def _reread_records(recipe, path: str, examples) -> list[EvalRecord]:
    indices, offsets = examples.record_rows()
    lines = examples.file.lines if examples.rows is None else examples.file.lines[examples.rows]
    chosen = choose(range(len(examples)), _max_examples(recipe), recipe.train.seed)
    records = []
    with open(path, "rb") as handle:
        for i in chosen:
            handle.seek(int(offsets[i]))
            raw = handle.readline()
            if int(lines[i]) == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            sample = format_record(recipe.task, json.loads(raw))  # tokenized before: it is well-formed
            record = to_eval_record(sample, f"{examples.file.display}:{int(lines[i])}")
            if record is not None:
                records.append(record)
    return records


def _stream_eval_records(recipe, path: str) -> list[EvalRecord]:
    data = recipe.data
    keep = None
    if not data.validation:
        from phitune.data.readers import require_local_file

        keep = split_indices(_count_records(path, recipe), data.validation_split, recipe.train.seed, data.train)
        require_local_file(path)
    bad: list[BadRecord] = []
    bad_count = 0

    def candidates():
        nonlocal bad_count
        for chunk in stream_chunks(path, recipe.task, None, None, max_record_bytes=max_record_bytes(recipe)):
            for index, item in chunk.bad:
                if keep is None or index is None or index in keep:
                    bad_count += 1
                    if len(bad) < PROBLEMS_LISTED:
                        bad.append(item)
            for record, sample in chunk.samples:
                if keep is not None and record.index not in keep:
                    continue
                eval_record = to_eval_record(sample, record.location)
                if eval_record is not None:
                    yield eval_record

    records = choose(candidates(), _max_examples(recipe), recipe.train.seed)
    if bad_count:
        _raise_or_log(path, bad, bad_count, Counter(b.kind for b in bad), None, data.on_error)
    return records


def _count_records(path: str, recipe) -> int:
    return max((chunk.records for chunk in stream_chunks(path, recipe.task, None, None,
                                                         max_record_bytes=max_record_bytes(recipe))), default=0)


def scan_file(path: str, task, tokenizer, max_seq_len: int | None, *, role: str = "train",
              display: str | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> ScannedFile:
    """Read one file and check every record in memory; with a tokenizer, also template, mask and
    length-check. Never raises for bad records (only for a missing/unreadable file): they land in `bad`."""
    name = display or str(path)
    examples: list[tuple[int, Example]] = []
    samples: list[tuple[int, str, Sample]] = []
    bad: list[tuple[int | None, BadRecord]] = []
    lengths: list[int] = []
    records = 0
    for chunk in stream_chunks(path, task, tokenizer, max_seq_len, display=name, max_record_bytes=max_record_bytes):
        records = max(records, chunk.records)
        bad.extend(chunk.bad)
        lengths.extend(chunk.lengths)
        examples.extend((r.index, Example(r.ids.tolist(), r.labels.tolist(), r.location)) for r in chunk.rows)
        samples.extend((r.index, r.location, sample) for r, sample in chunk.samples)
    bad.sort(key=lambda item: -1 if item[0] is None else item[0])
    report = FileReport(path=name, role=role, records=records, used=len(examples) if tokenizer else len(samples))
    report.add_bad([b for _, b in bad])
    report.lengths = length_stats(lengths)
    return ScannedFile(report, examples, samples, [b for _, b in bad], [i for i, _ in bad])


def split_indices(n_records: int, fraction: float, seed: int, path: str = "data.train") -> frozenset[int]:
    """Record positions held out for validation: round(n * fraction), at least 1, leaving at least 1."""
    if n_records < 2:
        raise DataError(f"cannot split {path} for validation",
                        [Problem("data.validation_split", f"{path} has {n_records} record(s); a split needs at least 2",
                                 "add records, or use data.validation with a separate file")])
    k = min(max(1, round(n_records * fraction)), n_records - 1)
    return frozenset(random.Random(f"phitune-validation-split:{seed}").sample(range(n_records), k))


def _apply_on_error(files: list, reports: list[FileReport], on_error: str) -> None:
    bad = sum(r.skipped for r in reports)
    if not bad:
        return
    if on_error == "fail":
        files_named = ", ".join(dict.fromkeys(r.path for r in reports if r.skipped))
        problems = [p for r in reports for p in r.problems][:PROBLEMS_LISTED]
        if bad > len(problems):
            problems.append(Problem(files_named, f"... and {bad - len(problems)} more bad records",
                                    "`phitune data check` writes every one of them to a file"))
        raise DataError(f"{bad} bad record{'s' if bad != 1 else ''} in {files_named} "
                        "(fix them, or set data.on_error: skip to drop them)", problems)
    for report in reports:
        if report.skipped:
            _raise_or_log(report.path, [], report.skipped, report.skipped_reasons, report, on_error)


def _raise_or_log(path: str, bad: list[BadRecord], count: int, reasons: Counter, report: FileReport | None,
                  on_error: str) -> None:
    listed = [b.problem() for b in bad] if report is None else report.problems
    if on_error == "fail":
        problems = list(listed)
        if count > len(problems):
            problems.append(Problem(path, f"... and {count - len(problems)} more bad records",
                                    "`phitune data check` writes every one of them to a file"))
        raise DataError(f"{count} bad record{'s' if count != 1 else ''} in {path} "
                        "(fix them, or set data.on_error: skip to drop them)", problems)
    total = f" of {report.records}" if report is not None else ""
    log.warning("%s: skipped %d%s records because data.on_error=skip (%s)", path, count, total,
                ", ".join(f"{n} {kind}" for kind, n in reasons.most_common()))
    for problem in listed:
        log.info("skipped %s: %s", problem.location, problem.message)
    if count > len(listed):
        log.info("... and %d more skipped records (`phitune data check` lists them all)", count - len(listed))
