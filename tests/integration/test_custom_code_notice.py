"""A local model whose config.json has an `auto_map` to custom code trains with the built-in class
(trust_remote_code is off by default): phitune says its code was not run and how to allow it."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import yaml

from conftest import EXAMPLES, run_cli
from phitune.models.loader import load_base_model
from phitune.recipe.sections import ModelSpec

AUTO_MAP = {"AutoConfig": "configuration_custom.CustomConfig",
            "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}


@pytest.fixture
def custom_code_model(tiny_model_dir, tmp_path):
    folder = tmp_path / "custom-model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": AUTO_MAP}))
    (folder / "modeling_custom.py").write_text("raise SystemExit('custom code ran')\n")
    return folder


class Records(logging.Handler):
    """Collects phitune's warnings directly (the CLI's logger does not propagate to pytest's caplog)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_of_phitune():
    handler, logger = Records(), logging.getLogger("phitune.models")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_loading_says_the_custom_code_was_not_run(custom_code_model, warnings_of_phitune):
    model = load_base_model(ModelSpec(name=str(custom_code_model)))
    assert type(model).__module__.startswith("transformers.")
    (message,) = [m for m in warnings_of_phitune if "auto_map" in m]
    assert "modeling_custom.CustomForCausalLM" in message and "NOT run" in message
    assert "model.trust_remote_code: true" in message
    warnings_of_phitune.clear()
    load_base_model(ModelSpec(name="builtin:tiny-phi3"))  # no auto_map: nothing to say
    assert not warnings_of_phitune


@pytest.mark.slow  # a one-step training run
def test_train_cli_prints_the_notice_and_trains_with_the_built_in_class(custom_code_model, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(custom_code_model), "data": {"train": str(EXAMPLES / "data" / "reviews-train.jsonl")},
        "train": {"max_steps": 1, "batch_size": 4, "max_seq_len": 64}, "tracking": "none"}))
    result = run_cli("train", str(recipe), "--output", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "custom code ran" not in result.stdout + result.stderr
    assert "auto_map points at custom code (modeling_custom.CustomForCausalLM); it was NOT run" in result.stderr
    assert "set model.trust_remote_code: true" in result.stderr
