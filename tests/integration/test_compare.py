"""`phitune compare`: each method in its own `phitune train` process, measured into a table and chart."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from phitune.errors import RecipeError
from test_train_methods import small_data


def write_recipe(tmp: Path, **train) -> Path:
    train_file, heldout = small_data(tmp, n_train=24, n_eval=6)
    body = {"name": "cmp", "model": "builtin:tiny-phi3", "data": {"train": train_file, "validation": heldout},
            "method": {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["qkv_proj", "down_proj"]},
            "train": {"max_steps": 50, "batch_size": 8, "lr": 1e-2, "max_seq_len": 128, **train},
            "output": {"merge": True}, "eval": {"before_after": True}, "tracking": "none"}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_each_method_gets_a_valid_recipe_of_its_own(tmp_path):
    from phitune.compare import plan_runs
    from phitune.recipe.load import load_recipe

    recipe = write_recipe(tmp_path, packing=True)
    plans = plan_runs(recipe, ["lora", "dora", "ia3", "prompt_tuning", "full"], steps=3, overrides=[])
    runs = {m: load_recipe(recipe, overrides=sets) for m, sets in plans.items()}
    assert runs["dora"].method.r == 4 and runs["dora"].method.target_modules == ["qkv_proj", "down_proj"]
    assert runs["ia3"].method.target_modules == ["qkv_proj", "down_proj"]
    assert runs["ia3"].method.feedforward_modules == ["down_proj"]
    assert not hasattr(runs["full"].method, "r")
    assert runs["prompt_tuning"].train.packing is False and runs["lora"].train.packing is True
    assert all(r.train.max_steps == 3 and not r.output.merge and not r.eval.before_after for r in runs.values())

    with pytest.raises(RecipeError) as info:
        plan_runs(recipe, ["lora", "lorax"], steps=None, overrides=[])
    assert info.value.problems[0].location == "--methods" and "lorax" in info.value.problems[0].message


@pytest.mark.slow
def test_compare_writes_one_measured_row_per_method(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path)
    out = tmp_path / "cmp"
    proc = run_cli("compare", str(recipe), "--methods", "lora,full", "--steps", "3", "--output", str(out),
                   "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.md", "compare.png", "runs"]
    rows = {r["method"]: r for r in csv.DictReader((out / "compare.csv").open())}
    assert list(rows) == ["lora", "full"]
    params = {m: int(r["trainable_params"]) for m, r in rows.items()}
    assert 0 < params["lora"] < params["full"]
    assert float(rows["full"]["trainable_pct"]) == 100.0
    for row in rows.values():
        assert float(row["peak_rss_mb"]) > 50 and float(row["tokens_per_s"]) > 0
        assert 0 < float(row["final_train_loss"]) < 20 and 0 < float(row["final_eval_loss"]) < 20
        assert float(row["wall_time_s"]) >= float(row["train_runtime_s"]) > 0
        assert row["error"] == ""
    assert (out / "runs" / "full" / "model").is_dir() and (out / "runs" / "lora" / "adapter").is_dir()
    table = (out / "compare.md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == 3 and "| lora |" in table  # header + 2 rows
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "compare.md" in proc.stdout and "| full |" in proc.stdout
