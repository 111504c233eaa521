"""Exact match and overlap F1: the building blocks the task metrics share."""

from __future__ import annotations


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
