"""Label sets for classification and NER, read from the data files.

One label value is read by `phitune.data.label_values.label_text`. `with_task_labels`
fills in `task.labels` from the training data when a classifier head needs a fixed label set and
the recipe gave none; the resolved recipe (resolved_recipe.json) then records it, so evaluation
and a resumed run map label ids to the same names.
"""

from __future__ import annotations

from typing import Iterable

from phitune.data.label_values import label_text
from phitune.data.reader_registry import RawRecord
from phitune.data.records import RecordInvalid
from phitune.errors import DataError, Problem


def complete_bio(tags: Iterable[str]) -> list[str]:
    """O first, then B-/I- of every entity type seen (a head must be able to predict I-X whenever it
    can predict B-X, even if the data happens to have no multi-word X)."""
    kinds = sorted({tag[2:] for tag in tags if tag != "O"})
    return ["O"] + [f"{prefix}-{kind}" for kind in kinds for prefix in ("B", "I")]


def with_task_labels(recipe):
    """The recipe, with `task.labels` read from data.train when a classifier head needs them."""
    from phitune.recipe.task import uses_head

    task = recipe.task
    if not uses_head(task) or task.labels is not None:
        return recipe
    labels = labels_in_file(recipe.data.train, task)
    if task.type == "ner":
        labels = complete_bio(labels)
    minimum = 2
    if len(labels) < minimum:
        raise DataError(f"cannot train a classifier head on {recipe.data.train}", [Problem(
            "task.labels", f"the training data has {len(labels)} distinct label(s) ({', '.join(labels) or 'none'}); "
                           "a classifier needs at least 2", "add records of other labels, or list them in task.labels")])
    return recipe.model_copy(update={"task": task.model_copy(update={"labels": labels})})


def labels_in_file(path: str, task) -> list[str]:
    """Sorted distinct labels (classification) or tags (NER) of the well-formed records of `path`.
    Bad records are skipped here: the data loader reports them with their FILE:LINE. Streamed: one
    record in memory at a time."""
    from phitune.data.readers import iter_records

    seen: set[str] = set()
    for record in iter_records(path):
        if not isinstance(record, RawRecord) or not isinstance(record.data, dict):
            continue
        try:
            seen.update(_record_labels(task, record.data))
        except RecordInvalid:
            continue
    return sorted(seen)


def _record_labels(task, record: dict) -> list[str]:
    if task.type == "ner":
        from phitune.data.task_formats.ner import words_and_tags

        return words_and_tags(task, record)[1]
    if task.label_key not in record:
        return []
    return [label_text(record[task.label_key], None, repr(task.label_key))]


def unseen_label_records(path: str, task, known: set[str], display: str | None = None) -> list:
    """BadRecords for well-formed records of `path` whose label (or a tag) never occurs in `known`
    (the training data's): a model can never predict those, so scores on them are meaningless."""
    from phitune.data.readers import iter_records
    from phitune.data.records import BadRecord

    bad = []
    for record in iter_records(path, display):
        if not isinstance(record, RawRecord) or not isinstance(record.data, dict):
            continue
        try:
            labels = _record_labels(task, record.data)
        except RecordInvalid:
            continue
        unseen = sorted({label for label in labels if label not in known})
        if unseen:
            what = "tag" if task.type == "ner" else "label"
            bad.append(BadRecord(record.location, "unknown label",
                                 f"{what} {', '.join(map(repr, unseen))} never occurs in the training data",
                                 "add training records with it, or list every label in task.labels"))
    return bad
