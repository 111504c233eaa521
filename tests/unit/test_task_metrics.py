"""Task metrics against values computed by hand (the comments show the arithmetic)."""

from __future__ import annotations

import math

import pytest

from phitune.data.entities import bio_spans, format_entities, parse_entities
from phitune.evaluate.classification_metrics import accuracy, macro_f1
from phitune.evaluate.metrics import compute_metrics, is_correct, metric_names
from phitune.evaluate.ner_metrics import entity_scores
from phitune.evaluate.qa_metrics import answer_exact, normalize_answer, qa_scores, token_f1
from phitune.evaluate.summarization_metrics import lcs_length, rouge_l, rouge_l_mean
from phitune.evaluate.translation_metrics import bleu_chrf


def test_accuracy_and_macro_f1_over_the_gold_labels():
    refs = ["a", "a", "b", "c"]
    preds = ["A ", "b", "b", "not a label"]
    # a: tp 1, fp 0, fn 1 -> 2/3; b: tp 1, fp 1, fn 0 -> 2/3; c: tp 0 -> 0; mean 4/9
    assert accuracy(preds, refs)["accuracy"] == 0.5
    assert macro_f1(preds, refs)["macro_f1"] == pytest.approx(4 / 9)
    assert macro_f1(refs, refs)["macro_f1"] == 1.0


def test_bio_spans_follow_conlleval():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "B-PER", "I-LOC"]
    # an I- after O or after another type starts an entity; B- always starts one
    assert bio_spans(tags) == [("PER", 0, 2), ("LOC", 3, 5), ("LOC", 5, 6), ("PER", 6, 7), ("LOC", 7, 8)]
    assert bio_spans(["O", "O"]) == []


def test_canonical_entity_text_round_trips():
    words = ["john", "smith", "flew", "to", "new", "york"]
    text = format_entities(words, ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"])
    assert text == "PER: john smith; LOC: new york"
    assert parse_entities(text) == {("PER", "john smith"): 1, ("LOC", "new york"): 1}
    assert format_entities(["hi"], ["O"]) == "none" and not parse_entities("None ")
    assert parse_entities("paris") == {(None, "paris"): 1}  # malformed: can never match


def test_entity_precision_recall_f1():
    preds = ["PER: John  Smith; LOC: london; ORG: acme", "none", "paris"]
    refs = ["PER: john smith; LOC: paris", "none", "LOC: paris"]
    # tp 1; predicted 3 + 0 + 1 = 4; gold 2 + 0 + 1 = 3 -> P 1/4, R 1/3, F1 2PR/(P+R) = (1/6)/(7/12) = 2/7
    scores = entity_scores(preds, refs)
    assert scores["entity_precision"] == pytest.approx(1 / 4)
    assert scores["entity_recall"] == pytest.approx(1 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 7)
    assert is_correct("ner", "LOC: Paris", "LOC: paris") and not is_correct("ner", "LOC: paris; PER: x", "LOC: paris")


def test_squad_exact_match_and_token_f1():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert answer_exact("an apple", "Apple.")
    # pred {eiffel, tower}, gold {eiffel, tower, in, paris}: P 1, R 1/2, F1 2/3
    assert token_f1("The Eiffel Tower!", "eiffel tower in Paris") == pytest.approx(2 / 3)
    assert token_f1("berlin", "paris") == 0.0
    scores = qa_scores(["The Eiffel Tower!", "an apple"], ["eiffel tower in Paris", "Apple."])
    assert scores["exact_match"] == 0.5 and scores["token_f1"] == pytest.approx((2 / 3 + 1) / 2)


def test_rouge_l_is_the_lcs_f_measure():
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    # 5 of 6 words in common order each side: P = R = 5/6
    assert rouge_l("the cat sat on the mat", "The cat is on the mat.") == pytest.approx(5 / 6)
    # LCS 2: P 2/4, R 2/2 -> F 2/3
    assert rouge_l("a b c d", "b d") == pytest.approx(2 / 3)
    assert rouge_l("", "b d") == 0.0
    assert rouge_l_mean(["a b c d", "x"], ["b d", "y"])["rouge_l"] == pytest.approx(1 / 3)


def test_bleu_and_chrf_come_from_sacrebleu():
    refs = ["the small cat sat on the warm mat", "a dog ran in the big park today"]
    perfect = bleu_chrf(refs, refs)
    assert perfect == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    partial = bleu_chrf(["the small cat sat on a cold mat", "a dog ran in the park"], refs)
    assert 0 < partial["bleu"] < 100 and 0 < partial["chrf"] < 100
    assert bleu_chrf(["zzz qqq", "xxx"], refs)["bleu"] == pytest.approx(0.0)


def test_every_task_has_metrics_in_the_registry():
    expected = {"classification": {"accuracy", "macro_f1"}, "ner": {"entity_precision", "entity_recall", "entity_f1"},
                "qa": {"exact_match", "token_f1"}, "translation": {"bleu", "chrf"}, "summarization": {"rouge_l"}}
    for task, names in expected.items():
        assert metric_names(task), task
        assert set(compute_metrics(task, ["x y z w"], ["x y z w"])) == names
    assert all(math.isnan(v) for v in compute_metrics("summarization", [], []).values())
