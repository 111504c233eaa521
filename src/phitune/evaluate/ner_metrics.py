"""Entity-level precision, recall and F1 (micro-averaged over the eval set).

Predictions and references are canonical entity texts (`PER: John Smith; LOC: Paris` / `none`,
phitune.data.entities); each becomes a multiset of (TYPE, text) and an entity counts as correct
only when both its type and its full text match a gold entity of the same sentence. A classifier
head's per-word tags are turned into the same text first, so both modes are scored alike.
"""

from __future__ import annotations

from phitune.data.entities import parse_entities
from phitune.evaluate.metric_registry import register_correct, register_metric


def entity_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    tp = n_pred = n_gold = 0
    for prediction, reference in zip(predictions, references):
        pred, gold = parse_entities(prediction), parse_entities(reference)
        tp += sum((pred & gold).values())
        n_pred += sum(pred.values())
        n_gold += sum(gold.values())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1}


def same_entities(prediction: str, reference: str) -> bool:
    return parse_entities(prediction) == parse_entities(reference)


register_metric("ner", "entity_f1")(entity_scores)
register_correct("ner", same_entities)
