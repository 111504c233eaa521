"""Samples for classifier-head training (`task.head: classifier`) and how they become examples.

The prompt is the same system + user conversation the generative mode renders, through the model's
chat template with the assistant header appended, so a head sees what a generating model would.
Examples keep the shape every other task has (`input_ids`, `labels` of the same length, -100 where
nothing is learned), so batching, length checks and reporting need nothing new:
- sequence classification: the label id sits on the last prompt token, which is where the model
  pools (the rightmost non-padding token);
- token classification: each word's tag id sits on its first sub-token; other sub-tokens are -100.
The chat template always puts a role marker before the user text, so position 0 is never labelled
(models/loss.py counts targets after the causal shift; see phitune.models.head_loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from phitune.data.entities import format_entities
from phitune.data.records import IGNORE_INDEX, EvalRecord, RecordInvalid


@dataclass(frozen=True)
class HeadEvalRecord(EvalRecord):
    """An eval record that a classifier head scores (no generation): it carries its sample."""

    sample: Any = None


@dataclass(frozen=True)
class SequenceLabelSample:
    """One text (or pair) and its class, for a sequence-classification head."""

    messages: list[dict]  # system + user: the prompt
    label: int  # index into task.labels
    label_name: str

    def reference(self) -> str:
        return self.label_name

    def eval_record(self, source: str) -> HeadEvalRecord:
        return HeadEvalRecord(self.messages, None, self.reference(), source, sample=self)


@dataclass(frozen=True)
class WordLabelSample:
    """One sentence as words and a BIO tag per word, for a token-classification head."""

    messages: list[dict]  # system + user; the user content is the words joined by single spaces
    words: list[str]
    tags: list[int]  # index into task.labels, per word
    tag_names: list[str]

    def reference(self) -> str:
        return format_entities(self.words, self.tag_names)

    def eval_record(self, source: str) -> HeadEvalRecord:
        return HeadEvalRecord(self.messages, None, self.reference(), source, sample=self)


HeadSample = SequenceLabelSample | WordLabelSample


def is_head_sample(sample: Any) -> bool:
    return isinstance(sample, (SequenceLabelSample, WordLabelSample))


def encode_head_samples(tokenizer, samples: list[tuple[str, Any]]) -> list[tuple[list[int], list[int]] | RecordInvalid]:
    """`(input_ids, labels)` per `(location, sample)`, or the RecordInvalid saying why not."""
    if not tokenizer.chat_template:
        from phitune.errors import ModelError, Problem

        raise ModelError("the tokenizer has no chat template", [Problem(
            "model.name", "a classifier head reads the prompt through the chat template",
            "use an instruct/chat model")])
    specials = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)
    out: list[tuple[list[int], list[int]] | RecordInvalid] = []
    for _location, sample in samples:
        try:
            _check_no_special_text(sample.messages, specials)
            if isinstance(sample, SequenceLabelSample):
                out.append(_encode_sequence(tokenizer, sample))
            else:
                out.append(_encode_words(tokenizer, sample))
        except RecordInvalid as exc:
            out.append(exc)
    return out


def prompt_text(tokenizer, messages: list[dict]) -> str:
    from jinja2.exceptions import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except (TemplateError, ValueError) as exc:
        raise RecordInvalid("rejected by chat template", f"the model's chat template rejected this prompt: {exc}",
                            "set task.instruction, or use a model whose template accepts a system turn") from None


def _encode_sequence(tokenizer, sample: SequenceLabelSample) -> tuple[list[int], list[int]]:
    ids = list(tokenizer(prompt_text(tokenizer, sample.messages), add_special_tokens=False)["input_ids"])
    if len(ids) < 2:
        raise RecordInvalid("nothing to learn", "the prompt is empty after templating", "check the text")
    return ids, [IGNORE_INDEX] * (len(ids) - 1) + [sample.label]


def _encode_words(tokenizer, sample: WordLabelSample) -> tuple[list[int], list[int]]:
    text = prompt_text(tokenizer, sample.messages)
    content = sample.messages[-1]["content"]
    start = text.rfind(content)  # the user turn is the last thing before the assistant header
    if start < 0:
        raise RecordInvalid("rejected by chat template", "the chat template changed the sentence text, so words "
                            "cannot be located", "use task.head: generative with this model")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    k, pos = 0, start
    for word, tag in zip(sample.words, sample.tags):
        w_start, w_end = pos, pos + len(word)
        pos = w_end + 1  # the single space that joins words
        while k < len(offsets) and offsets[k][1] <= w_start:
            k += 1
        if k >= len(offsets) or offsets[k][0] >= w_end or labels[k] != IGNORE_INDEX or k == 0:
            raise RecordInvalid("word not tokenizable", f"word {word!r} has no token of its own",
                                "split the data into words the way the text is written, or drop the record")
        labels[k] = tag
    return ids, labels


def _check_no_special_text(messages: list[dict], specials: list[str]) -> None:
    for i, message in enumerate(messages, start=1):
        for token in specials:
            if token in message["content"]:
                raise RecordInvalid("special token in text", f"message {i} ({message['role']}) contains the special "
                                    f"token {token!r}", "remove or escape it: the tokenizer would read it as a control token")
