"""CSV/TSV/Parquet readers, label sets read from data, classifier-head encoding, and the task rules
of the recipe."""

from __future__ import annotations

import json

import pytest

from phitune.data import load_examples
from phitune.data.heads import SequenceLabelSample, WordLabelSample, encode_head_samples
from phitune.data.labels import complete_bio, with_task_labels
from phitune.data.readers import read_records
from phitune.data.records import IGNORE_INDEX
from phitune.errors import DataError, RecipeError
from phitune.recipe import load_recipe


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_csv_rows_are_records_at_their_starting_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes('\ufefftext,label\n"hello, world",pos\n\nbad,row,extra\n"two\nlines",neg\n,\n'.encode())
    read = read_records(str(path))
    assert [(r.location, r.data) for r in read.records] == [
        (f"{path}:2", {"text": "hello, world", "label": "pos"}),
        (f"{path}:5", {"text": "two\nlines", "label": "neg"}),
        (f"{path}:7", {"text": "", "label": ""}),
    ]
    assert [(i, b.location, b.kind) for i, b in read.bad] == [(1, f"{path}:4", "wrong field count")]
    assert read.count == 4


def test_csv_that_is_not_utf8_is_one_problem_at_its_line_and_no_records(tmp_path):
    path = tmp_path / "d.csv"
    rows = "".join(f"row {i},caf\u00e9\n" for i in range(50_000)).encode()  # two-byte characters
    path.write_bytes(b"text,label\n" + rows + b"bad,\xe9t\xe9\n" + rows)
    read = read_records(str(path))
    assert read.records == [] and [(i, b.location, b.kind, b.message) for i, b in read.bad] == [
        (None, f"{path}:50002", "not UTF-8", "not valid UTF-8 (byte 0xe9)")]
    from phitune.data.tabular import first_invalid_utf8

    for block in (1, 2, 3, 7, 4096):  # the line count and a character's held-back bytes carried across blocks
        assert first_invalid_utf8(path, block=block) == (50002, 0xe9), block


@pytest.mark.slow
def test_csv_is_read_as_a_stream(tmp_path):
    """Reading a 60 MB CSV raises the peak RSS by far less than the file's size (it was read and decoded whole)."""
    import subprocess
    import sys

    path = tmp_path / "big.csv"
    row = ("\"" + "a sentence of about one hundred characters, with a comma, that a classifier would read " + "\",pos\n")
    with path.open("w", encoding="utf-8") as handle:
        handle.write("text,label\n")
        for _ in range(60 * 1024 * 1024 // len(row)):
            handle.write(row)
    code = ("import resource, sys\nfrom phitune.data.readers import iter_records\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "n = sum(1 for _ in iter_records(sys.argv[1]))\n"
            "print(n, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout.split()
    rows, grew_mb = int(out[0]), int(out[1])
    assert rows == 60 * 1024 * 1024 // len(row)
    assert grew_mb < 20, f"peak RSS grew {grew_mb} MB reading a 60 MB CSV"


def test_tsv_and_bad_headers(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("sentence1\tlabel\na, b\tx\n")
    assert read_records(str(tsv)).records[0].data == {"sentence1": "a, b", "label": "x"}
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a\n1,2\n")
    assert read_records(str(dup)).bad[0][1].kind == "bad header"
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    assert read_records(str(empty)).bad[0][1].kind == "empty file"


def test_parquet_rows_keep_their_types(tmp_path):
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame({"tokens": [["ann", "sang"], ["hi"]], "ner_tags": [[1, 0], [0]]}).to_parquet(path)
    read = read_records(str(path))
    assert [(r.location, r.data) for r in read.records] == [
        (f"{path}:1", {"tokens": ["ann", "sang"], "ner_tags": [1, 0]}), (f"{path}:2", {"tokens": ["hi"], "ner_tags": [0]})]
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet at all")
    assert read_records(str(junk)).bad[0][1].kind == "not Parquet"


def test_head_labels_are_read_from_the_training_data(tmp_path):
    train = tmp_path / "t.jsonl"
    rows = [{"tokens": ["ann", "sang"], "ner_tags": ["B-PER", "O"]}, {"tokens": ["rome"], "ner_tags": ["B-LOC"]},
            {"tokens": ["bad"], "ner_tags": ["B-ORG", "O"]}]  # the bad record's tags are not counted
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe({"data": {"train": str(train)}, "task": {"type": "ner", "head": "classifier"}})
    assert with_task_labels(recipe).task.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert complete_bio(["I-X", "O"]) == ["O", "B-X", "I-X"]
    generative = load_recipe({"data": {"train": str(train)}, "task": {"type": "ner"}})
    assert with_task_labels(generative) is generative  # only a head needs a fixed label set


def test_one_label_cannot_train_a_classifier(tmp_path):
    train = tmp_path / "t.jsonl"
    train.write_text(json.dumps({"sentence1": "a", "label": "x"}) + "\n")
    recipe = load_recipe({"data": {"train": str(train)}, "task": {"type": "classification", "head": "classifier"}})
    with pytest.raises(DataError) as info:
        with_task_labels(recipe)
    assert info.value.problems[0].location == "task.labels"


def test_sequence_head_example_labels_the_last_prompt_token(tokenizer):
    sample = SequenceLabelSample([{"role": "system", "content": "Classify."}, {"role": "user", "content": "good"}], 2, "pos")
    ((ids, labels),) = encode_head_samples(tokenizer, [("f:1", sample)])
    assert labels[-1] == 2 and all(label == IGNORE_INDEX for label in labels[:-1])
    assert tokenizer.decode(ids).endswith("<|assistant|>\n")


def test_token_head_example_labels_the_first_subtoken_of_each_word(tokenizer):
    words = ["Xylophone", "went", "to", "Paris"]  # rare words split into several tokens
    sample = WordLabelSample([{"role": "system", "content": "Tag."}, {"role": "user", "content": " ".join(words)}],
                             words, [1, 0, 0, 3], ["B-PER", "O", "O", "B-LOC"])
    ((ids, labels),) = encode_head_samples(tokenizer, [("f:1", sample)])
    positions = [k for k, label in enumerate(labels) if label != IGNORE_INDEX]
    assert [labels[k] for k in positions] == [1, 0, 0, 3] and positions[0] > 0
    assert len(ids) > len(words) + 10  # several sub-tokens, template tokens: most positions are unlabelled
    for k, word in zip(positions, words):
        assert word.startswith(tokenizer.decode([ids[k]]).strip())


def test_head_examples_through_the_loader(tmp_path, tiny_model_dir, tokenizer):
    train = tmp_path / "t.csv"
    train.write_text("sentence1,label\ngreat,pos\nawful,neg\nfine,pos\n")
    recipe = with_task_labels(load_recipe({"model": str(tiny_model_dir), "data": {"train": str(train)},
                                           "task": {"type": "classification", "head": "classifier"}}))
    assert recipe.task.labels == ["neg", "pos"]
    examples, _, report = load_examples(recipe, tokenizer)
    assert report.clean and [ex.labels[-1] for ex in examples] == [1, 0, 1]
    assert all(ex.learned_tokens == 1 for ex in examples)


def test_task_rules_in_the_recipe():
    def problems(**sections):
        with pytest.raises(RecipeError) as info:
            load_recipe({"data": {"train": "x.jsonl"}, **sections})
        return " | ".join(f"{p.location}: {p.message}" for p in info.value.problems)

    assert "task.target_lang" in problems(task={"type": "translation", "source_lang": "en"})
    assert "both name the key 'en'" in problems(task={"type": "translation", "source_lang": "en", "target_lang": "en"})
    assert "both name the key 'a'" in problems(task={"type": "classification", "sentence1_key": "a", "label_key": "a"})
    assert "must include the outside tag O" in problems(task={"type": "ner", "labels": ["B-PER", "I-PER"]})
    assert "more than once" in problems(task={"type": "classification", "labels": ["a", "a"]})
    assert "train.packing" in problems(task={"type": "ner", "head": "classifier"}, train={"packing": True})
    assert "method.type" in problems(task={"type": "classification", "head": "classifier"}, method={"type": "ia3"})
    assert "head" in problems(task={"type": "qa", "head": "classifier"})  # only classification and NER have heads
