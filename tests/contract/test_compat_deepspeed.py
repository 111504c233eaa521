"""DeepSpeed's private API that phitune.compat reaches into still exists in the installed version,
and the installed version is the one pyproject.toml pins (an upgrade fails here and points at the
DeepSpeed section of phitune/compat.py)."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from pathlib import Path

import pytest

from phitune import compat

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture(scope="module", autouse=True)
def cpu_accelerator():
    """Importing deepspeed probes for an accelerator; on a machine without one, name the CPU."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DS_ACCELERATOR", "cpu")
        yield


def test_the_pinned_deepspeed_is_the_checked_one_and_is_installed():
    pin = re.search(r'"deepspeed==([^"]+)"', PYPROJECT.read_text()).group(1)
    assert compat.DEEPSPEED_CHECKED == pin, "compat.py was checked against another DeepSpeed than the pin"
    assert importlib.metadata.version("deepspeed") == pin


@pytest.mark.parametrize("module, cls, attribute", compat.DEEPSPEED_PRIVATE_ATTRIBUTES)
def test_every_private_deepspeed_attribute_used_exists(module, cls, attribute):
    owner = getattr(importlib.import_module(module), cls)
    assert callable(getattr(owner, attribute, None)), f"{module}.{cls}.{attribute} is gone"


def test_zero3_state_dict_takes_exclude_frozen_parameters():
    import inspect

    from deepspeed.runtime.engine import DeepSpeedEngine

    params = inspect.signature(DeepSpeedEngine._zero3_consolidated_16bit_state_dict).parameters
    assert "exclude_frozen_parameters" in params


@pytest.mark.parametrize("module, constant, key", compat.DEEPSPEED_UNDOCUMENTED_CONFIG)
def test_every_undocumented_config_key_is_still_read(module, constant, key):
    assert getattr(importlib.import_module(module), constant, None) == key
