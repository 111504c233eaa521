"""Hostile and unlucky recipe input: every case ends in a message naming the field or FILE:LINE,
exit 2, in bounded time and memory (alias bombs, recursive anchors, huge or deep files, duplicate
keys, booleans and .inf/.nan for numbers, missing local paths, conflicting settings)."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from phitune.errors import RecipeError
from phitune.recipe import load_recipe
from conftest import EXAMPLES, REPO, run_cli

TRAIN = EXAMPLES / "data" / "reviews-train.jsonl"
BILLION_LAUGHS = f"""\
data:
  train: {TRAIN}
description: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""
MEMORY_CAP = 1536 * 1024 * 1024  # address space for the child: validate needs a few hundred MB


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def validate_bounded(*args: str) -> subprocess.CompletedProcess:
    """`phitune validate ...` with a memory cap and a timeout: an unbounded parse fails either way."""
    return subprocess.run([sys.executable, "-m", "phitune.cli", "validate", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, preexec_fn=_cap_memory)


def write(tmp_path, text: str, name: str = "r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_alias_bomb_is_refused_with_its_line_in_bounded_time_and_memory(tmp_path):
    path = write(tmp_path, BILLION_LAUGHS)
    result = validate_bounded(str(path))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"{path}:11" in result.stderr and "*h at line 11" in result.stderr
    assert "at most 100,000" in result.stderr


def test_alias_bomb_in_a_set_value_is_refused(tmp_path):
    value = f"[&a [1,1,1,1,1,1,1,1,1,1], &b [{', '.join(['*a'] * 10)}], &c [{', '.join(['*b'] * 10)}], " \
            f"&d [{', '.join(['*c'] * 10)}], &e [{', '.join(['*d'] * 10)}], [{', '.join(['*e'] * 10)}]]"
    result = validate_bounded(str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--set", f"description={value}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--set description=" in result.stderr and "at most 100,000" in result.stderr


def test_recursive_anchor_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, f"data: &x\n  train: {TRAIN}\n  more: *x\n")
    result = validate_bounded(str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:3: alias *x is used inside the node it names" in result.stderr


def test_oversized_and_too_deep_recipes_are_refused(tmp_path):
    big = write(tmp_path, f"data:\n  train: {TRAIN}\ndescription: '{'x' * 300_000}'\n", "big.yaml")
    deep = write(tmp_path, f"data:\n  train: {TRAIN}\ndescription: {'[' * 5000}{']' * 5000}\n", "deep.yaml")
    deep_json = write(tmp_path, '{"data": {"train": "t.jsonl"}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
                      "deep.json")
    result = validate_bounded(str(big))
    assert result.returncode == 2 and "a recipe may be at most 262,144 bytes" in result.stderr
    result = validate_bounded(str(deep))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{deep}:3: more than 32 levels of nesting" in result.stderr
    result = validate_bounded(str(deep_json))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "nested too deeply" in result.stderr


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path):
    path = write(tmp_path, f"""\
data:
  train: {TRAIN}
method:
  type: ia3
  target_modules: &modules [qkv_proj, down_proj]
  feedforward_modules: *modules
""")
    recipe = load_recipe(path)
    assert recipe.method.feedforward_modules == ["qkv_proj", "down_proj"]
    # a merge key then an explicit key is an override, not a duplicate
    path = write(tmp_path, f"data:\n  train: {TRAIN}\ntrain:\n  <<: {{lr: 1.0e-3, batch_size: 2}}\n  batch_size: 4\n",
                 "merge.yaml")
    recipe = load_recipe(path)
    assert recipe.train.batch_size == 4 and recipe.train.lr == pytest.approx(1e-3)


def test_duplicate_key_is_an_error_naming_both_lines(tmp_path):
    path = write(tmp_path, f"data:\n  train: {TRAIN}\ntrain:\n  lr: 1.0e-4\n  batch_size: 4\n  lr: 1.0e-2\n")
    result = run_cli("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:6: `train.lr` is given twice (lines 4 and 6)" in result.stderr
    top = write(tmp_path, f"data:\n  train: {TRAIN}\ndata:\n  train: other.jsonl\n", "top.yaml")
    with pytest.raises(RecipeError, match=r"`data` is given twice \(lines 1 and 3\)"):
        load_recipe(top)
    dup_json = write(tmp_path, '{"data": {"train": "a.jsonl", "train": "b.jsonl"}}', "r.json")
    with pytest.raises(RecipeError, match="key 'train' is given twice"):
        load_recipe(dup_json)


def test_booleans_are_not_numbers(tmp_path):
    path = write(tmp_path, f"""\
data:
  train: {TRAIN}
train:
  batch_size: true
  lr: true
  deepspeed:
    stage: true
method:
  type: lora
  r: false
""")
    result = run_cli("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for field, line in (("train.batch_size", 4), ("train.lr", 5), ("train.deepspeed.stage", 7), ("method.r", 10)):
        assert f"{field} ({path}:{line})" in result.stderr
    assert "got true, a boolean" in result.stderr and "got false, a boolean" in result.stderr
    assert load_recipe(path.parent / "r.yaml", ["train.batch_size=4", "train.lr=1e-3", "train.deepspeed.stage=2",
                                                 "method.r=8"]).train.batch_size == 4
    # booleans stay booleans where the field is one
    assert load_recipe({"data": {"train": "t.jsonl"}, "train": {"packing": True}}).train.packing is True


def test_inf_and_nan_are_rejected_at_their_own_field(tmp_path):
    path = write(tmp_path, f"data:\n  train: {TRAIN}\ntrain:\n  epochs: .inf\n  weight_decay: .inf\n")
    result = run_cli("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "OverflowError" not in result.stderr
    assert f"train.epochs ({path}:4): Input should be a finite number" in result.stderr
    assert f"train.weight_decay ({path}:5): Input should be a finite number" in result.stderr
    assert "train.lr" not in result.stderr
    with pytest.raises(RecipeError, match=r"train.epochs .*less than or equal to 10000"):  # 1e308 x steps is inf too
        load_recipe(path, ["train.epochs=1e308", "train.weight_decay=0"])
    for override in ("method.alpha=.nan", "data.validation_split=.nan", "train.max_grad_norm=-.inf"):
        with pytest.raises(RecipeError, match="finite number"):
            load_recipe(path, ["method.type=lora", override, "train.epochs=1", "train.weight_decay=0"])


def test_validate_checks_local_paths_exist_and_are_the_right_kind(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty-model").mkdir()
    (tmp_path / "ds.json").write_text("{}")
    path = write(tmp_path, """\
data:
  train: folder
  validation: missing/held-out.jsonl
model: ./empty-model
train:
  deepspeed:
    config: nope.json
""")
    result = run_cli("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"data.train ({path}:2): {tmp_path / 'folder'} is a folder; this field names a file" in result.stderr
    assert f"data.validation ({path}:3): {tmp_path / 'missing' / 'held-out.jsonl'} does not exist" in result.stderr
    assert f"model.name ({path}:4): {tmp_path / 'empty-model'} holds no model" in result.stderr
    assert f"train.deepspeed.config ({path}:7): {tmp_path / 'nope.json'} does not exist" in result.stderr

    missing_model = run_cli("validate", str(path), "--set", f"data.train={TRAIN}", "--set", "data.validation=null",
                            "--set", "train.deepspeed.config=ds.json", "--set", "model=../no/such/model")
    assert missing_model.returncode == 2
    assert "model.name (from --set model=../no/such/model): model folder" in missing_model.stderr
    assert "does not exist" in missing_model.stderr and "data." not in missing_model.stderr

    # URIs, hub ids and builtin models are not local paths; nothing is read from the data
    ok = run_cli("validate", str(path), "--set", "data.train=https://acct.blob.core.windows.net/c/t.jsonl",
                 "--set", "data.validation=azureml:held-out:1", "--set", "train.deepspeed=null",
                 "--set", "model=microsoft/Phi-3-mini-4k-instruct")
    assert ok.returncode == 0, ok.stderr
    ok = run_cli("validate", str(path), "--set", "data.train=hf://datasets/x/y.jsonl", "--set", "data.validation=null",
                 "--set", "train.deepspeed=null", "--set", "model=builtin:tiny-phi3")
    assert ok.returncode == 0, ok.stderr


def test_prompt_tuning_with_packing_and_merge_is_two_problems_each_with_its_line(tmp_path):
    path = write(tmp_path, f"""\
data:
  train: {TRAIN}
method:
  type: prompt_tuning
train:
  packing: true
output:
  merge: true
""")
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert "(2 problems)" in result.stderr
    assert f"train.packing ({path}:6): method.type: prompt_tuning cannot be combined with train.packing" \
        in result.stderr
    assert f"output.merge ({path}:8): method.type: prompt_tuning has no weights" in result.stderr
    with_set = run_cli("validate", str(path), "--set", "output.merge=false", "--set", "task.type=classification",
                       "--set", "task.head=classifier")
    assert "(3 problems)" in with_set.stderr and f"method.type ({path}:4): task.head: classifier" in with_set.stderr


def test_set_target_field_without_a_target_lists_the_types(tmp_path):
    result = run_cli("validate", str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--set", "target.compute=gpu")
    assert result.returncode == 2
    assert "target.type (from --set target.compute=gpu): `target` has no `type`" in result.stderr
    assert "type must be one of: local, local-pipeline, maap, maas" in result.stderr
    assert "the keys given fit only maap" in result.stderr
    method = run_cli("validate", str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--set", "method={r: 4}")
    assert "type must be one of: lora, dora, full" in method.stderr


def test_a_long_string_aliased_many_times_is_refused(tmp_path):
    tags = "\n".join(f"    t{i}: *big" for i in range(100))
    path = write(tmp_path, f"data:\n  train: {TRAIN}\ndescription: &big '{'x' * 20_000}'\n"
                           f"target:\n  type: maap\n  tags:\n{tags}\n")
    result = validate_bounded(str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "characters of text through YAML aliases (*big at line" in result.stderr
    assert "at most 1,048,576 are allowed" in result.stderr
