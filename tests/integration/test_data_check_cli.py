"""`phitune data check` through the real CLI entry point, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import EXAMPLES, run_cli  # tests/ is on sys.path (rootdir conftest, prepend import mode)

REVIEWS = EXAMPLES / "data" / "reviews-train.jsonl"


def test_known_good_file_exits_0_with_counts_and_length_stats(tiny_model_dir):
    result = run_cli("data", "check", str(REVIEWS), "--task", "chat", "--model", str(tiny_model_dir))
    assert result.returncode == 0, result.stderr
    assert "480 records, 480 usable, 0 bad" in result.stdout
    assert "min " in result.stdout and "median " in result.stdout and "p95 " in result.stdout and "max " in result.stdout
    assert "Traceback" not in result.stderr


def test_bad_file_exits_2_listing_every_bad_record(tmp_path: Path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad.write_text("\n".join([
        json.dumps(good),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        json.dumps({"messages": [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]}),
    ]) + "\n")
    result = run_cli("data", "check", str(bad), "--max-seq-len", "64", "--model", str(tiny_model_dir))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:2: invalid JSON" in result.stderr
    assert f"{bad}:3: no assistant turn" in result.stderr
    assert f"{bad}:4: " in result.stderr and "more than train.max_seq_len=64" in result.stderr
    assert f"{bad}:1:" not in result.stderr
    assert "4 records, 1 usable, 3 bad" in result.stdout
    listing = result.stderr.split(f"all 3 bad record(s) of {bad}: ")[1].splitlines()[0]
    assert Path(listing).read_text().splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith(f"{bad}:")]

    # No model given: lengths are estimates by the built-in tokenizer, said so, and not enforced.
    estimated = run_cli("data", "check", str(bad), "--max-seq-len", "64")
    assert estimated.returncode == 2  # lines 2 and 3 are still bad
    assert "lengths are estimates, counted with builtin:tiny-phi3's tokenizer" in estimated.stdout
    assert "tokenizer: builtin:tiny-phi3 (an estimate)" in estimated.stdout
    assert "4 records, 2 usable, 2 bad" in estimated.stdout
    assert f"{bad}:4: about " in estimated.stderr and "(an estimate: not rejected)" in estimated.stderr


def test_a_model_whose_tokenizer_cannot_be_loaded_gives_estimates_not_rejections(tmp_path: Path):
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "word " * 300},
                                             {"role": "assistant", "content": "ok"}]}) + "\n")
    result = run_cli("data", "check", str(data), "--model", "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/labels/latest",
                     "--max-seq-len", "64")
    assert result.returncode == 0, result.stderr
    assert "lengths are estimates" in result.stdout and "cannot be loaded here" in result.stdout
    assert "1 records, 1 usable, 0 bad" in result.stdout
    assert "about 1 record(s) may be longer than max_seq_len=64" in result.stdout


def _completion_recipe(tmp_path: Path, model_dir: Path) -> tuple[Path, Path]:
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"q": "Q: sky?", "a": " blue"}) + "\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {model_dir}\ntask:\n  type: completion\n  prompt_key: q\n  completion_key: a\n"
                      "data:\n  train: qa.jsonl\n")
    return recipe, data


def test_recipe_supplies_files_task_keys_and_model(tmp_path: Path, tiny_model_dir):
    recipe, _ = _completion_recipe(tmp_path, tiny_model_dir)
    result = run_cli("data", "check", "--recipe", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "task: completion" in result.stdout and "1 records, 1 usable, 0 bad" in result.stdout


def test_set_overrides_reach_the_check(tmp_path: Path, tiny_model_dir):
    recipe, data = _completion_recipe(tmp_path, tiny_model_dir)
    result = run_cli("data", "check", str(data), "--recipe", str(recipe), "--set", "task.prompt_key=question")
    assert result.returncode == 2
    assert f"{data}:1: no 'question' key" in result.stderr and "Traceback" not in result.stderr


def test_missing_file_is_a_clean_error(tmp_path: Path):
    result = run_cli("data", "check", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert "nope.jsonl" in result.stderr and "no such file" in result.stderr and "Traceback" not in result.stderr
