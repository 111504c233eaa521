"""Recipe validation: every problem at once, with field path, YAML line and fix."""

from __future__ import annotations

import json

import pytest

from phitune.errors import RecipeError
from phitune.recipe import Recipe, load_recipe

BAD = """\
name: demo
data:
  train: train.jsonl
  validaton: x.jsonl
method:
  type: lorra
train:
  lr: 1e-4
  epoch: 2
  batch_size: 0
"""


def test_all_problems_reported_at_once_with_paths_lines_and_fixes(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(BAD)
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides=["train.seed=abc"])
    text = str(info.value)
    assert "4 problems" not in text  # five problems, all listed
    assert "5 problems" in text
    assert f"data.validaton ({path}:4): unknown key 'validaton'" in text
    assert "did you mean 'validation'?" in text
    assert f"method.type ({path}:6): unknown method type 'lorra'" in text
    assert "type must be one of: lora, dora, full" in text
    assert "did you mean 'epochs'?" in text
    assert f"train.batch_size ({path}:10)" in text
    assert "train.seed (from --set train.seed=abc)" in text


def test_defaults_and_string_shorthands():
    r = load_recipe({"data": {"train": "t.jsonl"}, "model": "builtin:tiny-phi3", "tracking": "none"})
    assert r.model.name == "builtin:tiny-phi3" and r.model.trust_remote_code is False
    assert r.tracking.backend == "none"
    assert r.method.type == "lora"
    assert r.method.target_modules == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert r.task.type == "chat" and r.target.type == "local"


def test_overrides_parse_yaml_values_and_switch_method():
    r = load_recipe({"data": {"train": "t.jsonl"}}, ["method.type=dora", "train.lr=1e-3", "train.packing=true",
                                                   "model.revision=main"])
    assert r.method.type == "dora" and r.train.lr == pytest.approx(1e-3) and r.train.packing is True
    assert r.model.name == "builtin:tiny-phi3" and r.model.revision == "main"


def test_bad_override_syntax_is_a_recipe_error():
    with pytest.raises(RecipeError, match="section.key=value"):
        load_recipe({"data": {"train": "t.jsonl"}}, ["train.lr"])


def test_cross_field_rules_name_both_fields():
    with pytest.raises(RecipeError) as info:
        load_recipe({"data": {"train": "t", "validation": "v", "validation_split": 0.1},
                     "train": {"warmup_steps": 5, "warmup_ratio": 0.1}})
    text = str(info.value)
    assert "data.validation and data.validation_split are exclusive" in text
    assert "train.warmup_steps and train.warmup_ratio are exclusive" in text


def test_full_method_rejects_lora_fields():
    with pytest.raises(RecipeError, match=r"method.r.*unknown key 'r'"):
        load_recipe({"data": {"train": "t"}, "method": {"type": "full", "r": 8}})


def test_paths_resolve_against_recipe_folder_and_resolved_json_round_trips(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "r.yaml"
    path.write_text("data:\n  train: ../data/train.jsonl\n")
    r = load_recipe(path)
    assert r.data.train == str((tmp_path / "data" / "train.jsonl").resolve())
    resolved = tmp_path / "resolved_recipe.json"
    resolved.write_text(r.resolved_json())
    again = load_recipe(resolved)
    assert again == r and again.content_hash() == r.content_hash()
    assert json.loads(resolved.read_text())["content_hash"] == r.content_hash()


def test_recipe_is_frozen():
    r = load_recipe({"data": {"train": "t"}})
    with pytest.raises(Exception):
        r.train.lr = 1.0  # type: ignore[misc]


def test_json_schema_lists_method_types():
    schema = Recipe.model_json_schema()
    text = json.dumps(schema)
    assert '"lora"' in text and '"dora"' in text and '"full"' in text
