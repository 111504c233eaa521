"""The registry of task metrics, keyed by task type: a new task (classification, NER, QA,
BLEU/ROUGE...) adds its metrics with one decorator. phitune.evaluate.metrics imports every metric
module and is what callers (`phitune train` before/after, `phitune eval`) use.

A metric takes the predictions and references of a whole eval set and returns named scores;
a task's correctness test decides the per-example flag written to the predictions file.
"""

from __future__ import annotations

from typing import Callable

MetricFn = Callable[[list[str], list[str]], dict[str, float]]
CorrectFn = Callable[[str, str], bool]

_METRICS: dict[str, dict[str, MetricFn]] = {}
_CORRECT: dict[str, CorrectFn] = {}


def register_metric(task_type: str, name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: add `fn` to the metrics computed for `task_type`."""

    def wrap(fn: MetricFn) -> MetricFn:
        _METRICS.setdefault(task_type, {})[name] = fn
        return fn

    return wrap


def register_correct(task_type: str, fn: CorrectFn) -> None:
    """Set the per-example correctness test for `task_type` (default: normalised exact match)."""
    _CORRECT[task_type] = fn


def metrics_for(task_type: str) -> dict[str, MetricFn]:
    """The metrics registered for `task_type`, by name, in registration order."""
    return dict(_METRICS.get(task_type, {}))


def correct_for(task_type: str) -> CorrectFn | None:
    return _CORRECT.get(task_type)
