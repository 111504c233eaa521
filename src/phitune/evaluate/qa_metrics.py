"""Question answering: SQuAD's exact match and token F1.

Both compare answers after SQuAD normalisation (lower case, no punctuation, no articles a/an/the,
single spaces). Token F1 is the harmonic mean of precision and recall of the bag of answer tokens.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from phitune.evaluate.matching import overlap_f1
from phitune.evaluate.metric_registry import register_correct, register_metric

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def answer_exact(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def token_f1(prediction: str, reference: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not gold:
        return float(pred == gold)
    return overlap_f1(sum((Counter(pred) & Counter(gold)).values()), len(pred), len(gold))


def qa_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    if not references:
        return {"exact_match": float("nan"), "token_f1": float("nan")}
    n = len(references)
    return {"exact_match": sum(answer_exact(p, r) for p, r in zip(predictions, references)) / n,
            "token_f1": sum(token_f1(p, r) for p, r in zip(predictions, references)) / n}


register_metric("qa", "squad")(qa_scores)
register_correct("qa", answer_exact)
