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
    result = run_cli("data", "check", str(bad), "--max-seq-len", "64")  # default tokenizer: builtin:tiny-phi3
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:2: invalid JSON" in result.stderr
    assert f"{bad}:3: no assistant turn" in result.stderr
    assert f"{bad}:4: " in result.stderr and "max_seq_len=64" in result.stderr
    assert f"{bad}:1:" not in result.stderr
    assert "4 records, 1 usable, 3 bad" in result.stdout


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
