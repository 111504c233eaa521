"""The serverless text-generation sample's data shape ({"text", "ground_truth"}) trains locally."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES
from phitune.recipe import load_recipe


@pytest.mark.slow  # a real (3-step) training run with evaluation on the tiny model
def test_text_and_ground_truth_records_train_locally_with_loss_on_the_ground_truth(tmp_path):
    from phitune.training.run import train

    recipe = load_recipe(EXAMPLES / "recipes" / "text-generation.yaml", overrides=["train.max_steps=3"])
    assert (recipe.task.text_key, recipe.task.ground_truth_key, recipe.task.learn) == ("text", "ground_truth", "target")
    result = train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (tmp_path / "run" / "adapter").is_dir() and result.final_train_loss > 0
    # Only the ground truth (a short summary + EOS) is learned, not the ~70-token text before it.
    assert 0 < metrics["label_tokens"] * 4 < metrics["train_tokens"], metrics
