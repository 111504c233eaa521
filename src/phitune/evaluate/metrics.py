"""Task metrics for every task type: the registry (phitune.evaluate.metric_registry) filled by the
metric modules imported here, plus exact match for chat and completion and perplexity from the loss.
Every caller (`phitune train` before/after, `phitune eval`) scores through this module.

A new task adds a module that registers its metrics with `@register_metric(task_type, name)` (and,
if exact match is not the right per-example test, `register_correct`), and its import below.
"""

from __future__ import annotations

import math

from phitune.evaluate import (  # noqa: F401 (imported to register their metrics)
    classification_metrics, ner_metrics, qa_metrics, summarization_metrics, translation_metrics)
from phitune.evaluate.matching import exact, exact_match
from phitune.evaluate.metric_registry import correct_for, metrics_for, register_metric

for _task in ("chat", "completion"):
    register_metric(_task, "exact_match")(exact_match)


def metric_names(task_type: str) -> list[str]:
    return list(metrics_for(task_type))


def compute_metrics(task_type: str, predictions: list[str], references: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for fn in metrics_for(task_type).values():
        out.update(fn(predictions, references))
    return out


def is_correct(task_type: str, prediction: str, reference: str) -> bool:
    return (correct_for(task_type) or exact)(prediction, reference)


def perplexity(mean_loss: float | None) -> float | None:
    """exp(mean token loss); None when there was nothing to score, inf on overflow."""
    if mean_loss is None:
        return None
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return float("inf")
