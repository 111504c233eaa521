"""`task:` — what the data looks like and what is learned. A union discriminated on `type`.

Keys are named like Azure ML's own fine-tuning components (`sentence1_key`, `label_key`, `token_key`,
`tag_key`, `source_lang`, `document_key`, ...) so users can reuse their data. Every task except chat
and completion is rendered into a conversation (system instruction, user turn, assistant answer) so
the model's chat template and label masking are reused; classification and NER can instead train a
head (`head: classifier`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from phitune.recipe.base import Conflict, Section
from phitune.recipe.method import method_classes

BIO_TAG = re.compile(r"^(O|[BI]-\S+)$")


class ChatTask(Section):
    """Chat JSONL: `{"messages": [{"role": ..., "content": ...}, ...]}`; loss on assistant turns only."""

    type: Literal["chat"] = "chat"
    messages_key: str = "messages"


class CompletionTask(Section):
    """Text completion: an input text and the target the model learns to write after it.

    Keys by either convention: Azure ML's `text_key` + `ground_truth_key` (its text-generation sample data is
    `{"text": ..., "ground_truth": ...}`), or `prompt_key` + `completion_key` (default `prompt` / `completion`).
    `learn: target` (default) puts the loss on the target only; `learn: all` learns every token, which is also
    how plain text is trained (`text_key` alone, for domain adaptation and creative generation)."""

    type: Literal["completion"] = "completion"
    prompt_key: str = Field("prompt", min_length=1, description="Key of the input text (OpenAI's name).")
    completion_key: str = Field("completion", min_length=1, description="Key of the target text (OpenAI's name).")
    text_key: str | None = Field(
        None, min_length=1, description="Key of the input text (Azure ML's name; replaces prompt_key). Alone, with "
                                        "learn: all, the records are plain text.")
    ground_truth_key: str | None = Field(
        None, min_length=1, description="Key of the target learned after text_key (Azure ML's name; replaces "
                                        "completion_key).")
    learn: Literal["target", "all"] = Field(
        "target", description="target: loss on the completion / ground truth only; all: on every token.")

    @model_validator(mode="after")
    def _keys_differ(self) -> "CompletionTask":
        if self.text_key is None and self.ground_truth_key is None and self.prompt_key == self.completion_key:
            raise ValueError("task.prompt_key and task.completion_key must name different keys")
        return self

    def key_conflicts(self) -> list[Conflict]:
        """Key settings that would be ignored or ambiguous, each at the field to change (a key the user
        names is never silently dropped)."""
        if self.text_key is None:
            if self.ground_truth_key is not None:
                return [Conflict("task.ground_truth_key", "task.ground_truth_key is the target that follows "
                                 "task.text_key: set task.text_key to the key of the input text too")]
            return []
        # Compared with the defaults, not model_fields_set: a resolved recipe (every default written) reloads.
        openai = [k for k, default in (("prompt_key", "prompt"), ("completion_key", "completion"))
                  if getattr(self, k) != default]
        if openai:
            names = " and ".join(f"task.{k}" for k in openai)
            return [Conflict(f"task.{openai[0]}", f"task.text_key and {names} both name the input/target keys: use "
                             "text_key + ground_truth_key (Azure's names) or prompt_key + completion_key, not both")]
        if self.ground_truth_key is None and self.learn != "all":
            return [Conflict("task.text_key", f"task.text_key ({self.text_key!r}) alone names no target to learn: "
                             "set task.ground_truth_key to the key of the target (Azure's data uses 'ground_truth'), "
                             "or task.learn: all to learn the whole text")]
        if self.ground_truth_key == self.text_key:
            return [Conflict("task.ground_truth_key", "task.text_key and task.ground_truth_key must name different keys")]
        return []

    @property
    def input_key(self) -> str | None:
        """The key of the text that is read but not learned (None for plain text)."""
        if self.text_key is not None:
            return self.text_key if self.ground_truth_key is not None else None
        return self.prompt_key

    @property
    def target_key(self) -> str:
        """The key of the text learned (for plain text: the text itself)."""
        if self.text_key is not None:
            return self.ground_truth_key or self.text_key
        return self.completion_key


class _InstructedTask(Section):
    """Tasks rendered as system instruction + user turn + assistant answer."""

    instruction: str | None = Field(
        None, min_length=1, description="System instruction of the prompt (default: one written for the task).")

    def keys(self) -> dict[str, str]:
        """The record keys this task reads, by field name (for messages and key-clash checks)."""
        return {name: value for name, value in self.__dict__.items()
                if name.endswith("_key") and isinstance(value, str)}

    @model_validator(mode="after")
    def _distinct_keys(self) -> "_InstructedTask":
        seen: dict[str, str] = {}
        for name, value in self.keys().items():
            if value in seen:
                raise ValueError(f"task.{seen[value]} and task.{name} both name the key {value!r}: "
                                 "each must name a different key")
            seen[value] = name
        return self


def _check_labels(labels: list[str] | None) -> list[str] | None:
    if labels is None:
        return None
    clean = [label.strip() for label in labels]
    if any(not label for label in clean):
        raise ValueError("task.labels has an empty label")
    dupes = sorted({label for label in clean if clean.count(label) > 1})
    if dupes:
        raise ValueError(f"task.labels lists {', '.join(dupes)} more than once")
    return clean


class _LabelledTask(_InstructedTask):
    """Tasks with a closed label set, answered as text or by a classifier head."""

    labels: list[str] | None = Field(
        None, min_length=2, description="The label set (ner: BIO tag names); default: the training data's.")
    head: Literal["generative", "classifier"] = Field(
        "generative", description="generative: the label (ner: the entities) is the answer text; classifier: a "
                                  "sequence- (ner: token-) classification head.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        value = _check_labels(value)
        return None if value is None else cls._check_label_set(value)

    @classmethod
    def _check_label_set(cls, labels: list[str]) -> list[str]:
        """Task-specific rules on a cleaned label set."""
        return labels


class ClassificationTask(_LabelledTask):
    """Text (or text-pair) classification: `{"sentence1": "...", ["sentence2": "...",] "label": "..."}`.

    Labels come from `labels` when given (integer labels index into it, any other value is an error),
    else from the training data."""

    type: Literal["classification"] = "classification"
    sentence1_key: str = Field("sentence1", min_length=1)
    sentence2_key: str | None = Field(None, min_length=1, description="Second text of a pair (e.g. NLI, paraphrase).")
    label_key: str = Field("label", min_length=1)


class NerTask(_LabelledTask):
    """Named-entity recognition with BIO tags: `{"tokens": ["John", "lives", ...], "ner_tags": ["B-PER", "O", ...]}`.

    Generative mode answers `PER: John Smith; LOC: Paris` (or `none`); a classifier head tags each word.
    `labels` lists the tag names (`O`, `B-PER`, `I-PER`, ...): integer tags index into it."""

    type: Literal["ner"] = "ner"
    token_key: str = Field("tokens", min_length=1)
    tag_key: str = Field("ner_tags", min_length=1)

    @classmethod
    def _check_label_set(cls, value: list[str]) -> list[str]:
        bad = [tag for tag in value if not BIO_TAG.match(tag)]
        if bad:
            raise ValueError(f"task.labels must be BIO tags (O, B-TYPE, I-TYPE); not BIO: {', '.join(bad)}")
        if "O" not in value:
            raise ValueError("task.labels must include the outside tag O")
        return value

    def entity_types(self) -> list[str]:
        return sorted({tag[2:] for tag in self.labels or [] if tag != "O"})


class QaTask(_InstructedTask):
    """Extractive/grounded question answering: `{"question": ..., "context": ..., "answer": ...}`.

    The answer is a string, a list of strings, or SQuAD's `{"text": [...], "answer_start": [...]}`;
    the first answer is learned and is the reference."""

    type: Literal["qa"] = "qa"
    question_key: str = Field("question", min_length=1)
    context_key: str = Field("context", min_length=1)
    answer_key: str = Field("answer", min_length=1)


class TranslationTask(_InstructedTask):
    """Translation: `{"en": "...", "fr": "..."}` (or Hugging Face's `{"translation": {"en": ..., "fr": ...}}`)."""

    type: Literal["translation"] = "translation"
    source_lang: str = Field(..., min_length=1, description="Key (language code) of the source text, e.g. en.")
    target_lang: str = Field(..., min_length=1, description="Key (language code) of the target text, e.g. fr.")

    def keys(self) -> dict[str, str]:
        return {"source_lang": self.source_lang, "target_lang": self.target_lang}


class SummarizationTask(_InstructedTask):
    """Summarization: `{"document": "...", "summary": "..."}`."""

    type: Literal["summarization"] = "summarization"
    document_key: str = Field("document", min_length=1)
    summary_key: str = Field("summary", min_length=1)


TaskSpec = Annotated[
    Union[ChatTask, CompletionTask, ClassificationTask, NerTask, QaTask, TranslationTask, SummarizationTask],
    Field(discriminator="type"),
]
TASK_CLASSES = (ChatTask, CompletionTask, ClassificationTask, NerTask, QaTask, TranslationTask, SummarizationTask)
TASK_TYPES = tuple(cls.model_fields["type"].default for cls in TASK_CLASSES)


def uses_head(task) -> bool:
    """Does this task train a classification head instead of generating its answer?"""
    return getattr(task, "head", "generative") == "classifier"


def task_conflicts(recipe) -> list[Conflict]:
    """Cross-section rules of the task, one `Conflict` each (located at the field the fix changes)."""
    task = recipe.task
    problems = task.key_conflicts() if task.type == "completion" else []
    if uses_head(task):
        if recipe.train.packing:
            problems.append(Conflict("train.packing", f"task.head: classifier cannot use train.packing (each "
                                     f"{task.type} example needs its own row): set train.packing: false, or "
                                     "task.head: generative"))
        if not recipe.method.head_supported:
            supported = [name for name, cls in method_classes().items() if cls.head_supported]
            problems.append(Conflict("method.type", f"task.head: classifier supports method.type "
                                     f"{', '.join(supported)}, not {recipe.method.type!r}: change the method, "
                                     "or use task.head: generative"))
    return problems
