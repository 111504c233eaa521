"""`task.type: ner` — `token_key` (words) and `tag_key` (one BIO tag per word).

Generative: the user turn is the sentence, the answer the canonical entity text
(`PER: John Smith; LOC: Paris`, or `none`; see phitune.data.entities).
Classifier head: the same prompt, and each word's tag index in `task.labels`.
"""

from __future__ import annotations

from phitune.data.entities import format_entities
from phitune.data.heads import WordLabelSample
from phitune.data.label_values import label_text
from phitune.data.records import RecordInvalid
from phitune.data.task_formats.classification import require_labels
from phitune.data.task_formats.common import conversation, json_type, prompt, string_list
from phitune.data.task_registry import register_task
from phitune.recipe.task import BIO_TAG


def instruction(task) -> str:
    if task.instruction:
        return task.instruction
    types = task.entity_types()
    kinds = f" Entity types: {', '.join(types)}." if types else ""
    return ("List the named entities in the text as TYPE: entity, separated by semicolons, "
            f"in order of appearance; answer none if there are none.{kinds}")


def words_and_tags(task, record: dict) -> tuple[list[str], list[str]]:
    """The record's words and tag names, checked: same length, non-empty words, BIO tags (and, with
    task.labels, known ones)."""
    words = string_list(record, task.token_key, "task.token_key")
    tags = string_list(record, task.tag_key, "task.tag_key")
    if not words:
        raise RecordInvalid("empty tokens", f"{task.token_key!r} is an empty list", "drop the record")
    for i, word in enumerate(words, start=1):
        if not isinstance(word, str):
            raise RecordInvalid("bad token", f"token {i} of {task.token_key!r} is a JSON {json_type(word)}, not a string",
                                "make every token a string")
        if not word.strip():
            raise RecordInvalid("bad token", f"token {i} of {task.token_key!r} is empty", "drop empty tokens and their tags")
    if len(tags) != len(words):
        raise RecordInvalid("tag/token length mismatch",
                            f"{len(words)} tokens in {task.token_key!r} but {len(tags)} tags in {task.tag_key!r}",
                            "give exactly one tag per token")
    names = []
    for i, tag in enumerate(tags, start=1):
        spelled = isinstance(tag, str) and tag.strip() and not tag.strip().isdigit()
        name = tag.strip() if spelled else label_text(tag, task.labels, f"tag {i} of {task.tag_key!r}")
        if not BIO_TAG.match(name):
            raise RecordInvalid("not a BIO tag", f"tag {i} of {task.tag_key!r} is {name!r}, not a BIO tag",
                                "use O, B-TYPE or I-TYPE (e.g. B-PER, I-PER)")
        names.append(label_text(name, task.labels, f"tag {i} of {task.tag_key!r}") if spelled else name)
    return [w.strip() for w in words], names


@register_task("ner")
def format_ner(task, record: dict):
    words, tags = words_and_tags(task, record)
    messages = prompt(instruction(task), " ".join(words))
    if task.head == "classifier":
        labels = require_labels(task)
        return WordLabelSample(messages, words, [labels.index(t) for t in tags], tags)
    return conversation(messages[0]["content"], messages[1]["content"], format_entities(words, tags))
