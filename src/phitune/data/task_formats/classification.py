"""`task.type: classification` — `sentence1_key` (and optional `sentence2_key`) -> `label_key`.

Generative: the user turn is the text (or the labelled pair), the answer is the label name.
Classifier head: the same prompt, and the label's index in `task.labels`.
"""

from __future__ import annotations

from phitune.data.heads import SequenceLabelSample
from phitune.data.label_values import label_text
from phitune.data.task_formats.common import conversation, prompt, require, text
from phitune.data.task_registry import register_task
from phitune.errors import Problem, RecipeError


def instruction(task) -> str:
    if task.instruction:
        return task.instruction
    what = "the relation between sentence 1 and sentence 2" if task.sentence2_key else "the text"
    options = f" Labels: {', '.join(task.labels)}." if task.labels else ""
    return f"Classify {what}. Answer with the label only.{options}"


def user_turn(first: str, second: str | None) -> str:
    return first if second is None else f"Sentence 1: {first}\nSentence 2: {second}"


@register_task("classification")
def format_classification(task, record: dict):
    first = text(record, task.sentence1_key, "task.sentence1_key")
    second = text(record, task.sentence2_key, "task.sentence2_key") if task.sentence2_key else None
    label = label_text(require(record, task.label_key, "task.label_key"), task.labels, repr(task.label_key))
    user = user_turn(first, second)
    if task.head == "classifier":
        labels = require_labels(task)
        return SequenceLabelSample(prompt(instruction(task), user), labels.index(label), label)
    return conversation(instruction(task), user, label)


def require_labels(task) -> list[str]:
    """A head's label ids need the label set (phitune.data.labels.with_task_labels fills it in)."""
    if task.labels is None:
        raise RecipeError("a classifier head needs its label set", [Problem(
            "task.labels", "task.labels is not set and was not read from the training data",
            "list the labels in task.labels")])
    return task.labels
