"""Summarization: ROUGE-L, the F-measure of the longest common subsequence of words.

Words are lower-cased runs of letters and digits (as rouge-score tokenises without stemming).
Per example: P = LCS / predicted words, R = LCS / reference words, F = 2PR / (P + R); 0 when
either side is empty. The reported value is the mean over examples (0-1).
"""

from __future__ import annotations

import re

from phitune.evaluate.matching import overlap_f1
from phitune.evaluate.metric_registry import register_metric

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length, O(len(a) * len(b)) time and O(len(b)) memory."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    pred, gold = words(prediction), words(reference)
    return overlap_f1(lcs_length(pred, gold), len(pred), len(gold))


def rouge_l_mean(predictions: list[str], references: list[str]) -> dict[str, float]:
    if not references:
        return {"rouge_l": float("nan")}
    return {"rouge_l": sum(rouge_l(p, r) for p, r in zip(predictions, references)) / len(references)}


register_metric("summarization", "rouge_l")(rouge_l_mean)
