"""`--target local-pipeline`: aml/pipelines/finetune.yml's steps as local subprocesses, each the exact
command line of its component YAML with local paths in place of ${{inputs.*}} / ${{outputs.*}}."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from conftest import EXAMPLES, REPO, run_cli
from phitune.targets.pipeline_yaml import COMMAND_REF, OPTIONAL_BLOCK, load_component

RECIPE = EXAMPLES / "recipes" / "tiny-lora.yaml"
FAST = ["--set", "train.max_steps=3", "--set", "train.batch_size=8", "--set", "eval.before_after=false",
        "--set", "tracking=none", "--set", "eval.limit=4", "--set", "eval.max_new_tokens=2"]


def _template_words(component: str) -> list[str]:
    """The fixed words of a component command (everything but references and optional blocks)."""
    command = OPTIONAL_BLOCK.sub(" ", load_component(REPO / "components" / component).command)
    return [w for w in COMMAND_REF.sub(" ", command).split() if w]


def test_dry_run_lists_each_steps_command_from_its_component_yaml(tmp_path):
    result = run_cli("submit", str(RECIPE), "--target", "local-pipeline", "--dry-run", "--output", str(tmp_path), *FAST)
    assert result.returncode == 0, result.stderr
    steps = json.loads((tmp_path / "request.json").read_text())["steps"][:3]
    assert [s["name"] for s in steps] == ["validate_data", "finetune", "evaluate"]
    for step, component in zip(steps, ("validate_data.yml", "finetune.yml", "evaluate.yml")):
        words = shlex.split(step["command"])
        for word in _template_words(component):  # e.g. `data.train=` is glued to its value
            assert any(word in w for w in words), (word, words)
        # its own working folder (never the package's src/), importing phitune from the component's code folder
        assert step["cwd"] == str((tmp_path / "steps" / step["name"]).resolve())
        assert step["pythonpath"] == str((REPO / "src").resolve())
    validate, finetune, evaluate = (shlex.split(s["command"]) for s in steps)
    checked = validate[-1]  # cp TRAIN <validate_data's checked_train_data output>
    assert f"data.train={checked}" in finetune
    assert finetune[4:7] == [str(tmp_path / "resolved_recipe.json"), "--output", str(tmp_path / "run")]
    assert evaluate[4] == str(tmp_path / "run") and "--limit" in evaluate
    assert not (tmp_path / "run").exists()  # nothing ran


@pytest.mark.slow
def test_a_failing_step_is_named_with_the_tail_of_its_log(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "not a list"}\n')
    result = run_cli("submit", str(RECIPE), "--target", "local-pipeline", "--output", str(tmp_path / "out"),
                     "--set", f"data.train={bad}")
    assert result.returncode == 2
    assert "local pipeline step 'validate_data' failed" in result.stderr
    assert f"{bad}:1" in result.stderr  # the step's own error, from the tail of its log
    assert str(tmp_path / "out" / "steps" / "validate_data" / "std_log.txt") in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "run").exists()  # finetune never started


@pytest.mark.slow
def test_local_pipeline_runs_validate_finetune_evaluate_end_to_end_on_the_tiny_model(tmp_path):
    out = tmp_path / "out"
    result = run_cli("submit", str(RECIPE), "--target", "local-pipeline", "--output", str(out), *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = yaml.safe_load((out / "job.yml").read_text())["jobs"]
    assert list(jobs)[:3] == ["validate_data", "finetune", "evaluate"]
    for name in jobs:  # every step of aml/pipelines/finetune.yml ran and logged
        assert (out / "steps" / name / "std_log.txt").is_file()
        assert f"] {name}: python -m phitune.cli " in result.stdout
    run = out / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics  # written last: the run completed
    assert (run / "adapter").is_dir() and (run / "merged").is_dir() and (run / "resolved_recipe.json").is_file()
    assert json.loads((run / "resolved_recipe.json").read_text())["recipe"]["train"]["max_steps"] == 3
    assert (out / "metrics" / "eval.json").is_file()
    assert (out / "steps" / "validate_data" / "outputs" / "checked_train_data" / "checked_train_data").read_bytes() \
        == (EXAMPLES / "data" / "reviews-train.jsonl").read_bytes()

    # A second run into the same folder is refused before anything there is touched.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = run_cli("submit", str(RECIPE), "--target", "local-pipeline", "--output", str(out), *FAST)
    assert again.returncode == 2 and "holds a finished local pipeline" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr and "use another --output" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
