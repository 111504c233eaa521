"""`phitune.submit(recipe, target="local")`: the training core in this process, behind the same handle."""

from __future__ import annotations

import json

import pytest

import phitune
from conftest import EXAMPLES
from phitune.errors import SubmitError
from phitune.recipe import load_recipe

RECIPE = EXAMPLES / "recipes" / "tiny-lora.yaml"


@pytest.mark.slow
def test_local_submit_trains_in_process_and_returns_a_completed_handle(tmp_path):
    recipe = load_recipe(RECIPE, overrides=["train.max_steps=2", "tracking=none", "eval.before_after=false"])
    handle = phitune.submit(recipe, target="local", output_dir=tmp_path / "run")
    assert handle.status() == handle.wait() == "Completed"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())
    copy = handle.download(tmp_path / "copy")
    assert (copy / "adapter").is_dir() and (copy / "resolved_recipe.json").is_file()


def test_local_target_has_no_dry_run():
    with pytest.raises(SubmitError, match="--dry-run does not apply to the local target"):
        phitune.submit(load_recipe(RECIPE), target="local", dry_run=True)


def test_local_target_refuses_an_azure_registry_model():
    recipe = load_recipe(RECIPE, overrides=["model.name=azureml://registries/azureml/models/Phi-4-mini-instruct/labels/latest"])
    with pytest.raises(SubmitError) as err:
        phitune.submit(recipe, target="local-pipeline", dry_run=True)
    assert err.value.problems[0].location == "model.name"
