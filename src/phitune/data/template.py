"""Templating and label masking: a `Sample` -> (input_ids, labels) with -100 on everything not learned.

Chat: the conversation is rendered with the tokenizer's own chat template, so training sees exactly
the text inference will see. Assistant spans are found WITHOUT `{% generation %}` tags (real Phi-3
templates have none): turn i starts where `messages[:i]` rendered with `add_generation_prompt=True`
ends, which must be a prefix of the whole rendering (checked; a template that breaks it is a
ModelError, since no record could be masked correctly). The learned part of a turn is its content
up to and including the first special token after it (Phi-3 `<|end|>`, ChatML `<|im_end|>`, Llama-3
`<|eot_id|>`, `</s>`): that is what the model has to generate to stop. Text is then tokenized once
with offsets, so tokens at the boundaries are the ones inference produces.

Completion: prompt + answer tokenized together (the tokenizer adds BOS if it does), EOS appended;
every token overlapping the answer, and the EOS, is learned.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from phitune.data.records import IGNORE_INDEX, RecordInvalid
from phitune.data.samples import ChatSample, Sample, TextSample
from phitune.errors import ModelError, Problem

PROGRESS_MIN = 2000  # show a progress bar when templating at least this many records


@dataclass(frozen=True)
class Rendered:
    """Text to tokenize and the character ranges to learn."""

    text: str
    spans: tuple[tuple[int, int], ...]  # [start, end) char ranges; tokens ending in (start, end] are candidates
    stop_at_special: bool  # chat: a span ends with the first special token in it
    add_special_tokens: bool  # completion: let the tokenizer add BOS; chat templates write their own
    append_eos: bool


def encode_samples(tokenizer, samples: list[tuple[str, Sample]], *,
                   progress: bool = False) -> list[tuple[list[int], list[int]] | RecordInvalid]:
    """Tokenize and mask `(location, sample)` pairs. Returns one result per sample, in order:
    `(input_ids, labels)` or the `RecordInvalid` explaining why that record cannot be used."""
    encoding = Encoding(tokenizer)
    results: list = []
    for start in range(0, len(samples), 1000):
        results.extend(encoding.encode(encoding.render(samples[start:start + 1000], progress=progress)))
    return results


class Encoding:
    """Templating and masking for one tokenizer, in two halves so a caller can template the next
    records while the previous ones are tokenized: `render` (Python: chat template, checks) and
    `encode` (the fast tokenizer's batch encoding, then the labels)."""

    def __init__(self, tokenizer):
        _require_fast(tokenizer)
        backend = tokenizer.backend_tokenizer
        # transformers turns these off for each call it makes; calling the Rust encoder directly must too
        if backend.truncation is not None:
            backend.no_truncation()
        if backend.padding is not None:
            backend.no_padding()
        self.tokenizer = tokenizer
        self.special_ids = _special_ids(tokenizer)
        self.specials = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)

    def render(self, samples: list[tuple[str, Sample]], progress: bool = False) -> list:
        """Per sample: a `Rendered`, a `RecordInvalid`, or (classifier heads) the sample to encode whole."""
        if not samples:
            return []
        tokenizer = self.tokenizer
        if not tokenizer.chat_template and any(isinstance(sample, ChatSample) or hasattr(sample, "eval_record")
                                               for _, sample in samples):
            raise ModelError("the tokenizer has no chat template", [Problem(
                "model.name", "chat data needs tokenizer.chat_template to render conversations",
                "use an instruct/chat model, or task.type: completion")])
        if hasattr(samples[0][1], "eval_record"):  # classifier-head samples (task.head: classifier)
            return [_HeadItem(location, sample) for location, sample in samples]
        rendered: list = []
        for location, sample in _progress(samples, "templating", progress):
            try:
                _check_no_special_text(sample, self.specials)
                rendered.append(render_sample(tokenizer, sample, location))
            except RecordInvalid as exc:
                rendered.append(exc)
        return rendered

    def encode(self, rendered: list) -> list[tuple[list[int], list[int]] | RecordInvalid]:
        """Tokenize `render`'s output (safe to run on another thread) and mask the labels."""
        heads = [item for item in rendered if isinstance(item, _HeadItem)]
        if heads:
            from phitune.data.heads import encode_head_samples

            return encode_head_samples(self.tokenizer, [(h.location, h.sample) for h in heads])
        results: list = list(rendered)
        backend = self.tokenizer.backend_tokenizer
        eos_id = self.tokenizer.eos_token_id
        for add_special in (False, True):
            group = [i for i, r in enumerate(rendered) if isinstance(r, Rendered) and r.add_special_tokens == add_special]
            if not group:
                continue
            encodings = backend.encode_batch([rendered[i].text for i in group], add_special_tokens=add_special)
            for i, enc in zip(group, encodings):
                results[i] = _labels(rendered[i], enc.ids, enc.offsets, self.special_ids, eos_id)
        return results


@dataclass(frozen=True)
class _HeadItem:
    location: str
    sample: object


def render_sample(tokenizer, sample: Sample, location: str) -> Rendered:
    if isinstance(sample, ChatSample):
        return render_chat(tokenizer, sample.messages, location)
    return render_text(tokenizer, sample)


def render_chat(tokenizer, messages: list[dict], location: str) -> Rendered:
    """The full conversation and, per assistant turn, [start of its content, end of its segment)."""
    full = _apply(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _apply(tokenizer, messages[:i], add_generation_prompt=True)
        if not full.startswith(prefix):
            raise _not_prefix_stable(tokenizer, location, i)
        if i == len(messages) - 1:
            end = len(full)
        else:  # where this turn's rendering stops agreeing with the whole conversation
            end = _common_prefix_len(_apply(tokenizer, messages[: i + 1], add_generation_prompt=False), full)
        if end <= len(prefix):
            raise _not_prefix_stable(tokenizer, location, i)
        spans.append((len(prefix), end))
    return Rendered(full, tuple(spans), stop_at_special=True, add_special_tokens=False, append_eos=False)


def render_text(tokenizer, sample: TextSample) -> Rendered:
    if tokenizer.eos_token_id is None:
        raise ModelError(
            f"tokenizer {tokenizer.name_or_path} has no EOS token",
            [Problem("model.name", "completion training appends EOS so the model learns to stop", "use a tokenizer with an eos_token")],
        )
    text = sample.prompt + sample.answer
    return Rendered(text, ((len(sample.prompt), len(text)),), stop_at_special=False,
                    add_special_tokens=True, append_eos=True)


def _labels(rendered: Rendered, ids: list[int], offsets, special_ids: set[int], eos_id: int | None):
    if rendered.append_eos and (not ids or ids[-1] != eos_id):
        ids.append(eos_id)
        offsets = list(offsets) + [(len(rendered.text), len(rendered.text))]
    labels = [IGNORE_INDEX] * len(ids)
    ends = [b for _, b in offsets]  # non-decreasing: one string tokenized left to right
    for start, end in rendered.spans:
        for k in range(bisect.bisect_right(ends, start), len(ids)):  # the first token ending after `start`
            a, b = offsets[k]
            if b <= a:
                continue  # zero-width (e.g. BOS/EOS added by the tokenizer)
            if b > end:
                break
            labels[k] = ids[k]
            if rendered.stop_at_special and ids[k] in special_ids:
                break
    if rendered.append_eos:
        labels[-1] = ids[-1]
    if all(label == IGNORE_INDEX for label in labels):
        return RecordInvalid("nothing to learn", "no token is learned after templating", "check the assistant/completion text")
    return ids, labels


def _apply(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    from jinja2.exceptions import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except (TemplateError, ValueError) as exc:
        raise RecordInvalid("rejected by chat template", f"the model's chat template rejected this conversation: {exc}",
                            "reorder or merge turns the way this model expects (e.g. some templates forbid system turns)") from None


def _check_no_special_text(sample: Sample, specials: list[str]) -> None:
    """A special token spelled out in data (e.g. '<|end|>' or '</s>') would be tokenized as the real
    control token and end the turn early: report it rather than train on a corrupted conversation."""
    if isinstance(sample, ChatSample):
        texts = [(f"message {i} ({m['role']})", m["content"]) for i, m in enumerate(sample.messages, start=1)]
    else:
        texts = [("prompt", sample.prompt), ("text", sample.answer)]
    for where, text in texts:
        for token in specials:
            if token in text:
                raise RecordInvalid("special token in text", f"{where} contains the special token {token!r}",
                                    "remove or escape it: the tokenizer would read it as a control token")


def _not_prefix_stable(tokenizer, location: str, turn: int) -> ModelError:
    return ModelError(
        f"the chat template of {tokenizer.name_or_path} cannot be used for label masking",
        [Problem(location, f"rendering the messages before turn {turn + 1} with add_generation_prompt=True is not a "
                           "prefix of the rendered conversation, so the assistant turns cannot be located",
                 "use a template that renders earlier turns the same whatever follows them (or task.type: completion)")],
    )


def _common_prefix_len(a: str, b: str) -> int:
    """Binary search with slice comparisons: C-speed even for conversations of many thousand characters."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for token_id, token in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(token, "special", False):
            ids.add(token_id)
    return ids


def _require_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"tokenizer {tokenizer.name_or_path} is not a fast tokenizer",
            [Problem("model.name", "label masking needs character offsets, which only fast (Rust) tokenizers give",
                     "use a model folder with tokenizer.json")],
        )


def _progress(items: list, desc: str, progress: bool):
    """A bar over `items` only when the caller shows progress (--no-progress turns every bar off)."""
    if not progress or len(items) < PROGRESS_MIN:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="rec", leave=False)
