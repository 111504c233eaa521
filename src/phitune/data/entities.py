"""Named entities between their three forms: BIO tags per word, spans, and the canonical answer text
a generative NER model learns to write (`PER: John Smith; LOC: Paris`, or `none`).

The canonical text lists entities in order of appearance, `TYPE: words` joined by `; `. Parsing it
back gives a multiset of (TYPE, text) pairs; entity-level precision/recall/F1 compares those
multisets (phitune.evaluate.ner_metrics). Pure functions, stdlib only.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

NO_ENTITIES = "none"
SEPARATOR = "; "


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) word spans, end exclusive, with conlleval's reading of BIO: an entity starts
    at B-X, or at I-X that does not continue an entity of type X (so IOB1 data reads sensibly);
    it ends at O, at B-, or at a tag of another type."""
    spans: list[tuple[str, int, int]] = []
    current: str | None = None
    start = 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, kind = tag.partition("-")
        continues = prefix == "I" and kind == current
        if current is not None and not continues:
            spans.append((current, start, i))
            current = None
        if prefix in ("B", "I") and not continues:
            current, start = kind, i
    return spans


def format_entities(words: Sequence[str], tags: Sequence[str]) -> str:
    """The canonical answer text for one tagged sentence."""
    spans = bio_spans(tags)
    if not spans:
        return NO_ENTITIES
    return SEPARATOR.join(f"{kind}: {' '.join(words[start:end])}" for kind, start, end in spans)


def parse_entities(text: str) -> Counter:
    """Multiset of (TYPE, normalized text) from a canonical answer. Anything that is not `TYPE: text`
    (a malformed generation) is kept as (None, text): it counts as a wrong prediction, never a match."""
    entities: Counter = Counter()
    text = text.strip()
    if not text or text.lower() == NO_ENTITIES:
        return entities
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        kind, sep, value = item.partition(":")
        if not sep or not kind.strip() or not value.strip():
            entities[(None, _norm(item))] += 1
        else:
            entities[(kind.strip().upper(), _norm(value))] += 1
    return entities


def _norm(text: str) -> str:
    return " ".join(text.lower().split())
