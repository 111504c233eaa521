"""Completion keys as Azure ships them: `text_key` is the input, `ground_truth_key` the target learned;
learning the whole text is the explicit `learn: all`; a key the user names is never silently ignored."""

from __future__ import annotations

import json

import pytest

from phitune.data import load_examples
from phitune.errors import DataError, RecipeError
from phitune.recipe import load_recipe

SAMPLE = [{"text": "Summarize the dialog.\n<dialog>: Tim: Hi!\n<summary>: ", "ground_truth": "Tim says hi."},
          {"text": "Summarize the dialog.\n<dialog>: Kim: Bye.\n<summary>: ", "ground_truth": "Kim leaves."}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _file(tmp_path, records) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _recipe(tiny_model_dir, train: str, **task):
    return load_recipe({"model": str(tiny_model_dir), "data": {"train": train}, "task": {"type": "completion", **task}})


def _learned(tokenizer, example) -> str:
    return tokenizer.decode([t for t in example.labels if t >= 0])


def test_text_and_ground_truth_learn_the_ground_truth_only(tmp_path, tiny_model_dir, tokenizer):
    recipe = _recipe(tiny_model_dir, _file(tmp_path, SAMPLE), text_key="text", ground_truth_key="ground_truth")
    train, _, _ = load_examples(recipe, tokenizer)
    assert [_learned(tokenizer, ex) for ex in train] == ["Tim says hi.<|endoftext|>", "Kim leaves.<|endoftext|>"]
    # The input is read (it is in input_ids), just not learned.
    assert tokenizer.decode(train[0].input_ids).startswith("Summarize the dialog.")


def test_learn_all_is_the_explicit_choice_to_learn_the_whole_text(tmp_path, tiny_model_dir, tokenizer):
    recipe = _recipe(tiny_model_dir, _file(tmp_path, SAMPLE), text_key="text", ground_truth_key="ground_truth",
                     learn="all")
    train, _, _ = load_examples(recipe, tokenizer)
    assert train[0].labels == train[0].input_ids


@pytest.mark.parametrize("task, words", [
    ({"text_key": "text"}, "alone names no target to learn"),  # would silently drop the ground truth
    ({"ground_truth_key": "ground_truth"}, "set task.text_key"),
    ({"text_key": "text", "ground_truth_key": "ground_truth", "prompt_key": "q"}, "not both"),
    ({"text_key": "text", "ground_truth_key": "text"}, "different keys"),
])
def test_key_settings_that_would_be_ignored_or_ambiguous_are_errors(task, words):
    with pytest.raises(RecipeError) as err:
        load_recipe({"data": {"train": "x.jsonl"}, "task": {"type": "completion", **task}})
    assert words in str(err.value)


def test_a_record_without_the_ground_truth_is_reported_with_the_setting_to_change(tmp_path, tiny_model_dir, tokenizer):
    path = _file(tmp_path, [SAMPLE[0], {"text": "no target here"}])
    recipe = _recipe(tiny_model_dir, path, text_key="text", ground_truth_key="ground_truth")
    with pytest.raises(DataError) as err:
        load_examples(recipe, tokenizer)
    (problem,) = err.value.problems
    assert problem.location == f"{path}:2" and "'ground_truth'" in problem.message
    assert "task.ground_truth_key" in problem.fix


def test_a_resolved_recipe_with_every_default_written_reloads():
    recipe = load_recipe({"data": {"train": "x.jsonl"},
                          "task": {"type": "completion", "text_key": "text", "ground_truth_key": "ground_truth"}})
    assert load_recipe(recipe.to_dict()) == recipe


def test_data_check_takes_the_ground_truth_key_and_refuses_text_key_alone():
    from conftest import EXAMPLES, run_cli

    data = str(EXAMPLES / "data" / "textgen-train.jsonl")
    ok = run_cli("data", "check", data, "--task", "completion", "--text-key", "text", "--ground-truth-key",
                 "ground_truth", "--no-progress")
    assert ok.returncode == 0, ok.stderr
    alone = run_cli("data", "check", data, "--task", "completion", "--text-key", "text", "--no-progress")
    assert alone.returncode == 2 and "task.text_key" in alone.stderr and "task.learn: all" in alone.stderr
