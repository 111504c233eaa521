"""Classification metrics: accuracy and macro-F1 over the gold label set.

Labels are compared after `normalize` (case and surrounding whitespace). Macro-F1 averages the
per-label F1 of every label that occurs in the references; a prediction outside that set (a
generation that is no label at all) is simply wrong for its example, so free text cannot inflate
or dilute the average with classes of its own.
"""

from __future__ import annotations

from phitune.evaluate.matching import normalize
from phitune.evaluate.metric_registry import register_metric


def accuracy(predictions: list[str], references: list[str]) -> dict[str, float]:
    if not references:
        return {"accuracy": float("nan")}
    hits = sum(normalize(p) == normalize(r) for p, r in zip(predictions, references))
    return {"accuracy": hits / len(references)}


def macro_f1(predictions: list[str], references: list[str]) -> dict[str, float]:
    if not references:
        return {"macro_f1": float("nan")}
    preds = [normalize(p) for p in predictions]
    golds = [normalize(r) for r in references]
    scores = []
    for label in sorted(set(golds)):
        tp = sum(p == label and g == label for p, g in zip(preds, golds))
        fp = sum(p == label and g != label for p, g in zip(preds, golds))
        fn = sum(p != label and g == label for p, g in zip(preds, golds))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"macro_f1": sum(scores) / len(scores)}


register_metric("classification", "accuracy")(accuracy)
register_metric("classification", "macro_f1")(macro_f1)
