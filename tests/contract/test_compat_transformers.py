"""transformers' private config attributes that phitune.compat reads and writes still behave as
phitune relies on in the installed version, which is the one pyproject.toml pins (an upgrade fails
here and points at the transformers section of phitune/compat.py)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from phitune import compat

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_pinned_transformers_is_the_checked_one_and_is_installed():
    pin = re.search(r'"transformers==([^"]+)"', PYPROJECT.read_text()).group(1)
    assert compat.TRANSFORMERS_CHECKED == pin, "compat.py was checked against another transformers than the pin"
    assert importlib.metadata.version("transformers") == pin


def test_config_attributes_used_exist():
    from transformers import Phi3Config

    config = Phi3Config()
    for name in compat.TRANSFORMERS_CONFIG_ATTRIBUTES:
        assert hasattr(config, name), f"PretrainedConfig.{name} is gone"


def test_attention_implementation_follows_set_attn_implementation(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    assert compat.attention_implementation(model.config) == "sdpa"
    model.set_attn_implementation("eager")
    assert compat.attention_implementation(model.config) == "eager"


def test_model_source_is_where_from_pretrained_records_it(tiny_model_dir, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config._name_or_path == str(tiny_model_dir)
    compat.set_model_source(config, tmp_path)
    assert config._name_or_path == str(tmp_path)
