"""`phitune data check` knows every task schema: the example data of each task passes, and bad
records of each task are reported at FILE:LINE with the task's reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLES, run_cli

from phitune.cli import main as phitune_main
from phitune.data.labels import with_task_labels
from phitune.data.loader import scan_file
from phitune.recipe import load_recipe

TASK_RECIPES = sorted(p for p in (EXAMPLES / "recipes").glob("*.yaml") if p.stem != "tiny-lora")


def _check(capsys, *args: str) -> tuple[int, str, str]:
    """The real CLI entry point, in-process (a subprocess per case costs seconds of imports)."""
    code = phitune_main(["data", "check", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("recipe_path", TASK_RECIPES, ids=lambda p: p.stem)
def test_example_data_of_every_task_is_clean(recipe_path, tiny_model_dir):
    from transformers import AutoTokenizer

    recipe = with_task_labels(load_recipe(recipe_path, overrides=[f"model.name={tiny_model_dir}"]))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for path in (recipe.data.train, recipe.data.validation):
        scan = scan_file(path, recipe.task, tokenizer, recipe.train.max_seq_len)
        assert scan.report.skipped == 0, [str(p) for p in scan.report.problems[:3]]
        assert scan.report.used == scan.report.records >= 60


@pytest.mark.slow
def test_ner_records_are_checked(tmp_path, tiny_model_dir):
    bad = _jsonl(tmp_path / "ner.jsonl", [
        {"words": ["ann", "sang"], "tags": ["B-PER", "O"]},        # 1 good
        {"words": ["ann", "sang"], "tags": ["B-PER"]},             # 2 length mismatch
        {"words": ["ann"], "tags": ["PER"]},                       # 3 not BIO
        {"words": ["rome"], "tags": ["B-LOC"]},                    # 4 unknown tag (not in --labels)
        {"tags": ["O"]},                                           # 5 missing tokens
    ])
    result = run_cli("data", "check", str(bad), "--task", "ner", "--token-key", "words", "--tag-key", "tags",
                     "--labels", "O,B-PER,I-PER", "--model", str(tiny_model_dir))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "task: ner" in result.stdout and "5 records, 1 usable, 4 bad" in result.stdout
    assert f"{bad}:2: 2 tokens in 'words' but 1 tags in 'tags'" in result.stderr
    assert f"{bad}:3: tag 1 of 'tags' is 'PER', not a BIO tag" in result.stderr
    assert f"{bad}:4: tag 1 of 'tags' is 'B-LOC', not one of task.labels" in result.stderr
    assert f"{bad}:5: no 'words' key" in result.stderr and f"{bad}:1:" not in result.stderr


def test_classification_csv_labels_are_checked(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "cls.csv"
    bad.write_text("text,y\ngreat,pos\nawful,\nfine,meh\n,neg\n")
    code, _, err = _check(capsys, str(bad), "--task", "classification", "--sentence1-key", "text",
                          "--label-key", "y", "--labels", "neg,pos", "--model", str(tiny_model_dir))
    assert code == 2
    assert f"{bad}:3: 'y' is empty" in err
    assert f"{bad}:4: 'y' is 'meh', not one of task.labels (neg, pos)" in err
    assert f"{bad}:5: 'text' is empty" in err and f"{bad}:2:" not in err


def test_held_out_labels_never_seen_in_training_are_reported(tmp_path, tiny_model_dir, capsys):
    train = _jsonl(tmp_path / "train.jsonl", [{"sentence1": "great", "label": "pos"}, {"sentence1": "bad", "label": "neg"}])
    held = _jsonl(tmp_path / "held.jsonl", [{"sentence1": "ok", "label": "pos"}, {"sentence1": "meh", "label": "neutral"}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {tiny_model_dir}\ntask:\n  type: classification\n"
                      "data:\n  train: train.jsonl\n  validation: held.jsonl\n")
    code, out, err = _check(capsys, "--recipe", str(recipe))
    assert code == 2
    assert "'neutral' never occurs in the training data" in err and f"{held}:2:" in err
    assert "2 records, 1 usable, 1 bad" in out


def test_qa_translation_summarization_keys_are_checked(tmp_path, tiny_model_dir, capsys):
    cases = [
        ("qa", [], {"question": "q?", "context": "c", "answers": {"text": ["x"]}}, "no 'answer' key"),
        ("translation", ["--source-lang", "en", "--target-lang", "de"], {"en": "hi", "fr": "salut"}, "no 'de' key"),
        ("summarization", [], {"document": "long", "summary": ""}, "'summary' is empty"),
    ]
    for task, flags, record, message in cases:
        path = _jsonl(tmp_path / f"{task}.jsonl", [record])
        code, _, err = _check(capsys, str(path), "--task", task, *flags, "--model", str(tiny_model_dir))
        assert code == 2 and f"{path}:1: {message}" in err, (task, err)
