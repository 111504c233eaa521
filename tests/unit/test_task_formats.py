"""Task formatters: each task renders a record into instruction + user turn + answer, and every bad
record is refused with the reason a user can act on."""

from __future__ import annotations

import pytest

from phitune.data.heads import SequenceLabelSample, WordLabelSample
from phitune.data.records import RecordInvalid
from phitune.data.tasks import ChatSample, format_record, task_types
from phitune.recipe import load_recipe
from phitune.recipe.task import TASK_TYPES


def _task(**task):
    return load_recipe({"data": {"train": "x.jsonl"}, "task": task}).task


def _turns(sample: ChatSample) -> tuple[str, str, str]:
    assert [m["role"] for m in sample.messages] == ["system", "user", "assistant"]
    return tuple(m["content"] for m in sample.messages)  # type: ignore[return-value]


def _refused(task, record) -> RecordInvalid:
    with pytest.raises(RecordInvalid) as info:
        format_record(task, record)
    return info.value


def test_every_recipe_task_type_has_a_formatter():
    assert set(task_types()) == set(TASK_TYPES)


def test_classification_single_and_pair():
    system, user, answer = _turns(format_record(_task(type="classification", labels=["neg", "pos"]),
                                                {"sentence1": "great phone", "label": "pos"}))
    assert user == "great phone" and answer == "pos" and "Labels: neg, pos." in system
    pair = _task(type="classification", sentence1_key="premise", sentence2_key="hypothesis", label_key="y")
    _, user, answer = _turns(format_record(pair, {"premise": "a man sleeps", "hypothesis": "a man is awake", "y": "contradiction"}))
    assert user == "Sentence 1: a man sleeps\nSentence 2: a man is awake" and answer == "contradiction"


def test_classification_labels_indices_and_errors():
    task = _task(type="classification", labels=["neg", "pos"])
    assert _turns(format_record(task, {"sentence1": "ok", "label": 1}))[2] == "pos"  # ClassLabel index
    assert _turns(format_record(task, {"sentence1": "ok", "label": "0"}))[2] == "neg"  # index as CSV text
    assert _refused(task, {"sentence1": "ok", "label": "meh"}).kind == "unknown label"
    assert _refused(task, {"sentence1": "ok", "label": 7}).kind == "unknown label"
    assert _refused(task, {"sentence1": "ok", "label": " "}).kind == "empty label"
    assert _refused(task, {"sentence1": "ok", "label": None}).kind == "empty label"
    assert _refused(task, {"sentence1": "ok"}).message.startswith("no 'label' key")
    assert _refused(task, {"text": "ok", "label": "pos"}).fix.endswith("set task.sentence1_key to the key your data uses")


def test_classification_head_gives_label_ids():
    sample = format_record(_task(type="classification", labels=["neg", "pos"], head="classifier"),
                           {"sentence1": "fine", "label": "pos"})
    assert isinstance(sample, SequenceLabelSample) and sample.label == 1 and sample.reference() == "pos"
    assert [m["role"] for m in sample.messages] == ["system", "user"]


def test_ner_answer_is_the_canonical_entity_text():
    task = _task(type="ner")
    record = {"tokens": ["john", "smith", "visited", "paris"], "ner_tags": ["B-PER", "I-PER", "O", "B-LOC"]}
    _, user, answer = _turns(format_record(task, record))
    assert user == "john smith visited paris" and answer == "PER: john smith; LOC: paris"
    assert _turns(format_record(task, {"tokens": ["hi"], "ner_tags": ["O"]}))[2] == "none"


def test_ner_reads_lists_from_csv_text_and_integer_tags():
    task = _task(type="ner", labels=["O", "B-PER", "I-PER"])
    _, _, answer = _turns(format_record(task, {"tokens": "ann lee sang", "ner_tags": "[1, 2, 0]"}))
    assert answer == "PER: ann lee"
    head = format_record(_task(type="ner", labels=["O", "B-PER", "I-PER"], head="classifier"),
                         {"tokens": ["ann", "sang"], "ner_tags": ["B-PER", "O"]})
    assert isinstance(head, WordLabelSample) and head.tags == [1, 0] and head.reference() == "PER: ann"


def test_ner_errors():
    task = _task(type="ner", labels=["O", "B-PER", "I-PER"])
    mismatch = _refused(task, {"tokens": ["a", "b"], "ner_tags": ["O"]})
    assert mismatch.kind == "tag/token length mismatch" and "2 tokens" in mismatch.message and "1 tags" in mismatch.message
    assert _refused(task, {"tokens": ["a"], "ner_tags": ["B-LOC"]}).kind == "unknown label"
    assert _refused(_task(type="ner"), {"tokens": ["a"], "ner_tags": ["PER"]}).kind == "not a BIO tag"
    assert _refused(task, {"tokens": [], "ner_tags": []}).kind == "empty tokens"
    assert _refused(task, {"tokens": ["a", ""], "ner_tags": ["O", "O"]}).kind == "bad token"
    assert _refused(task, {"tokens": {"a": 1}, "ner_tags": ["O"]}).kind == "not a list"


def test_qa_answers_in_every_shape():
    task = _task(type="qa")
    base = {"question": "who?", "context": "ann sang."}
    for answer in ("ann", ["ann", "ann lee"], {"text": ["ann"], "answer_start": [0]}):
        _, user, learned = _turns(format_record(task, {**base, "answer": answer}))
        assert user == "Context: ann sang.\nQuestion: who?" and learned == "ann"
    assert _refused(task, {**base, "answer": {"text": []}}).kind == "empty answer"
    assert _refused(task, {**base, "answer": ""}).kind == "empty answer"
    assert _refused(task, {"question": "who?", "answer": "x"}).message.startswith("no 'context' key")


def test_translation_flat_and_nested():
    task = _task(type="translation", source_lang="en", target_lang="de")
    system, user, answer = _turns(format_record(task, {"en": "hello", "de": "hallo"}))
    assert system == "Translate the text from English to German." and (user, answer) == ("hello", "hallo")
    assert _turns(format_record(task, {"translation": {"en": "yes", "de": "ja"}}))[1:] == ("yes", "ja")
    refused = _refused(task, {"en": "hello", "fr": "bonjour"})
    assert refused.message.startswith("no 'de' key") and "task.target_lang" in refused.fix


def test_summarization_and_custom_instruction():
    task = _task(type="summarization", document_key="article", summary_key="highlights", instruction="TL;DR")
    assert _turns(format_record(task, {"article": "long text", "highlights": "short"})) == ("TL;DR", "long text", "short")
    assert _refused(task, {"article": "long text", "highlights": "  "}).kind == "empty summary"


def test_non_object_record_names_the_task_keys():
    refused = _refused(_task(type="qa"), ["not", "an", "object"])
    assert '"question"' in refused.fix and '"context"' in refused.fix and '"answer"' in refused.fix
