"""Recipe -> training/eval examples and eval records: read, format per task, template and mask, check
lengths, split, and apply `data.on_error`.

`on_error: fail` raises one DataError listing every bad record (FILE:LINE: reason); `skip` drops them,
logs how many and why (logger "phitune.data") and records them in the DataReport. Nothing is ever
dropped silently. The validation split is over record positions in the file (seeded with
`train.seed`), so `load_examples` and `load_eval_records` hold out exactly the same records.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from phitune.data.readers import read_records
from phitune.data.records import BadRecord, DataReport, EvalRecord, Example, FileReport, RecordInvalid
from phitune.data.stats import length_stats
from phitune.data.tasks import Sample, format_record, to_eval_record
from phitune.errors import DataError, Problem

log = logging.getLogger("phitune.data")


@dataclass
class ScannedFile:
    """One file after reading, formatting and (optionally) tokenizing. `bad` is in file order."""

    report: FileReport
    examples: list[tuple[int, Example]]  # (record index, example)
    samples: list[tuple[int, str, Sample]]  # (record index, location, sample) of every well-formed record
    bad: list[BadRecord]
    bad_indices: list[int | None]  # record index per bad item (None: the file itself)


def load_examples(recipe, tokenizer) -> tuple[list[Example], list[Example], DataReport]:
    """Tokenized train and eval examples, and the report. Eval is empty without a validation source."""
    data, max_len = recipe.data, recipe.train.max_seq_len
    split = data.validation_split
    train = scan_file(data.train, recipe.task, tokenizer, max_len, role="train+validation" if split else "train")
    scans = [train]
    if data.validation:
        scans.append(scan_file(data.validation, recipe.task, tokenizer, max_len, role="validation"))
    _apply_on_error(scans, data.on_error)

    if split:
        held_out = split_indices(train.report.records, split, recipe.train.seed, data.train)
        train_examples = [ex for i, ex in train.examples if i not in held_out]
        eval_examples = [ex for i, ex in train.examples if i in held_out]
    else:
        train_examples = [ex for _, ex in train.examples]
        eval_examples = [ex for _, ex in scans[1].examples] if data.validation else []

    if not train_examples:
        raise DataError(f"no usable training examples in {data.train}",
                        [Problem(data.train, f"all {train.report.records} records are bad or held out",
                                 "fix the records listed by `phitune data check`")])
    if (split or data.validation) and not eval_examples:
        where = data.validation or data.train
        raise DataError(f"no usable validation examples in {where}",
                        [Problem(where, "every held-out record was bad", "fix the records, or drop the validation source")])
    report = DataReport(files=[s.report for s in scans], train_examples=len(train_examples),
                        eval_examples=len(eval_examples))
    for f in report.files:
        log.info("%s (%s): %d records, %d used, %d skipped; %s", f.path, f.role, f.records, f.used, f.skipped,
                 f.lengths or "no lengths")
    return train_examples, eval_examples, report


def load_eval_records(recipe) -> list[EvalRecord]:
    """Prompt/reference pairs from the validation file or split (the same records `load_examples`
    holds out), in file order, at most `eval.limit`. No tokenizer: length is not checked here."""
    data = recipe.data
    if data.validation:
        scan = scan_file(data.validation, recipe.task, None, None, role="validation")
        keep = None
    elif data.validation_split:
        scan = scan_file(data.train, recipe.task, None, None, role="validation")
        keep = split_indices(scan.report.records, data.validation_split, recipe.train.seed, data.train)
        _restrict(scan, keep)
    else:
        return []
    _apply_on_error([scan], data.on_error)
    records = []
    for index, location, sample in scan.samples:
        if keep is not None and index not in keep:
            continue
        record = to_eval_record(sample, location)
        if record is not None:
            records.append(record)
    if scan.samples and not records:
        log.info("plain-text task: the validation data has no prompt/reference pairs to evaluate generations on")
    return records[: recipe.eval.limit] if recipe.eval.limit else records


def scan_file(path: str, task, tokenizer, max_seq_len: int | None, *, role: str = "train",
              display: str | None = None) -> ScannedFile:
    """Read one file and check every record; with a tokenizer, also template, mask and length-check.
    Never raises for bad records (only for a missing/unreadable file): they land in `bad`."""
    read = read_records(path, display)
    name = display or str(path)
    bad: list[tuple[int | None, BadRecord]] = list(read.bad)
    samples: list[tuple[int, str, Sample]] = []
    for rec in read.records:
        try:
            samples.append((rec.index, rec.location, format_record(task, rec.data)))
        except RecordInvalid as exc:
            bad.append((rec.index, exc.at(rec.location)))

    examples: list[tuple[int, Example]] = []
    lengths: list[int] = []
    if tokenizer is not None:
        from phitune.data.template import encode_samples

        encoded = encode_samples(tokenizer, [(location, sample) for _, location, sample in samples])
        for (index, location, _), result in zip(samples, encoded):
            if isinstance(result, RecordInvalid):
                bad.append((index, result.at(location)))
                continue
            ids, labels = result
            lengths.append(len(ids))
            if max_seq_len is not None and len(ids) > max_seq_len:
                bad.append((index, BadRecord(
                    location, "too long", f"{len(ids)} tokens after templating, more than train.max_seq_len={max_seq_len}",
                    "raise train.max_seq_len, or shorten or split the record")))
                continue
            examples.append((index, Example(ids, labels, location)))
        bad_index = {i for i, _ in bad}
        samples = [s for s in samples if s[0] not in bad_index]

    bad.sort(key=lambda item: -1 if item[0] is None else item[0])
    report = FileReport(path=name, role=role, records=read.count, used=len(examples) if tokenizer else len(samples))
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


def _restrict(scan: ScannedFile, keep: frozenset[int]) -> None:
    """Only held-out records matter for eval records: bad records of the training part are reported
    by load_examples, not here."""
    pairs = [(i, b) for i, b in zip(scan.bad_indices, scan.bad) if i is None or i in keep]
    scan.bad, scan.bad_indices = [b for _, b in pairs], [i for i, _ in pairs]
    report = FileReport(path=scan.report.path, role=scan.report.role, records=len(keep),
                        used=sum(1 for i, _, _ in scan.samples if i in keep))
    report.add_bad(scan.bad)
    scan.report = report


def _apply_on_error(scans: list[ScannedFile], on_error: str) -> None:
    bad = [b for s in scans for b in s.bad]
    if not bad:
        return
    files = ", ".join(dict.fromkeys(s.report.path for s in scans if s.bad))
    if on_error == "fail":
        raise DataError(f"{len(bad)} bad record{'s' if len(bad) != 1 else ''} in {files} "
                        "(fix them, or set data.on_error: skip to drop them)", [b.problem() for b in bad])
    for scan in scans:
        if not scan.bad:
            continue
        reasons = ", ".join(f"{n} {kind}" for kind, n in scan.report.skipped_reasons.most_common())
        log.warning("%s: skipped %d of %d records because data.on_error=skip (%s)",
                    scan.report.path, len(scan.bad), scan.report.records, reasons)
        for b in scan.bad:
            log.info("skipped %s: %s", b.location, b.message)
