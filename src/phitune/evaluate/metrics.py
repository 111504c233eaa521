"""Task metrics, kept in a registry keyed by task type so a new task (classification, NER, QA,
BLEU/ROUGE...) adds its metrics with one decorator and every caller (`phitune train` before/after,
`phitune eval`) picks them up.

A metric takes the predictions and references of a whole eval set and returns named scores;
`correct` decides the per-example flag written to the predictions file.
"""

from __future__ import annotations

import math
from typing import Callable

MetricFn = Callable[[list[str], list[str]], dict[str, float]]

_METRICS: dict[str, dict[str, MetricFn]] = {}
_CORRECT: dict[str, Callable[[str, str], bool]] = {}


def register_metric(task_type: str, name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: add `fn` to the metrics computed for `task_type`."""

    def wrap(fn: MetricFn) -> MetricFn:
        _METRICS.setdefault(task_type, {})[name] = fn
        return fn

    return wrap


def register_correct(task_type: str, fn: Callable[[str, str], bool]) -> None:
    """Set the per-example correctness test for `task_type` (default: normalised exact match)."""
    _CORRECT[task_type] = fn


def metric_names(task_type: str) -> list[str]:
    return list(_METRICS.get(task_type, {}))


def compute_metrics(task_type: str, predictions: list[str], references: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for fn in _METRICS.get(task_type, {}).values():
        out.update(fn(predictions, references))
    return out


def is_correct(task_type: str, prediction: str, reference: str) -> bool:
    return _CORRECT.get(task_type, exact)(prediction, reference)


def normalize(text: str) -> str:
    """What exact match ignores: surrounding whitespace and case."""
    return text.strip().lower()


def exact(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def exact_match(predictions: list[str], references: list[str]) -> dict[str, float]:
    if not references:
        return {"exact_match": float("nan")}
    hits = sum(exact(p, r) for p, r in zip(predictions, references))
    return {"exact_match": hits / len(references)}


def overlap_f1(matched: int, predicted: int, reference: int) -> float:
    """F-measure of `matched` units out of `predicted` and `reference` ones (0 when nothing matched)."""
    if matched == 0:
        return 0.0
    precision, recall = matched / predicted, matched / reference
    return 2 * precision * recall / (precision + recall)


def perplexity(mean_loss: float | None) -> float | None:
    """exp(mean token loss); None when there was nothing to score, inf on overflow."""
    if mean_loss is None:
        return None
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return float("inf")


for _task in ("chat", "completion"):
    register_metric(_task, "exact_match")(exact_match)


# The metrics of the other tasks register themselves (at the end: they import the registry above).
from phitune.evaluate import (  # noqa: E402,F401
    classification_metrics, ner_metrics, qa_metrics, summarization_metrics, translation_metrics)
