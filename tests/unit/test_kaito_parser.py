"""phitune's training_config.yaml through KAITO's own parser (tests/kaito_upstream: cli.py + parser.py
of the pinned KAITO release): each section becomes the class KAITO's tuning image builds from it,
with the values phitune wrote.

LoraConfig is the one section not run through HfArgumentParser: with the installed peft its
`trainable_token_indices` field is a Union the parser rejects (KAITO's image pins an older peft), so
its keys are checked against the dataclass and built the way fine_tuning.py builds it."""

from __future__ import annotations

import dataclasses
import enum
import sys
from pathlib import Path

import pytest
import yaml

UPSTREAM = Path(__file__).resolve().parents[1] / "kaito_upstream"
GOLDEN = Path(__file__).parent / "golden"

pytestmark = pytest.mark.slow  # imports torch, transformers, peft and trl


@pytest.fixture(scope="module")
def kaito_parser():
    sys.path.insert(0, str(UPSTREAM))
    try:
        import parser as kaito_parser  # KAITO's parser.py (the stdlib `parser` module is gone since 3.10)

        assert Path(kaito_parser.__file__).parent == UPSTREAM
        yield kaito_parser
    finally:
        sys.path.remove(str(UPSTREAM))
        for name in ("parser", "cli"):
            sys.modules.pop(name, None)


def plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if type(value).__module__ == "torch":  # ModelConfig turns torch_dtype into a torch.dtype
        return str(value).removeprefix("torch.")
    return value


@pytest.mark.parametrize("golden", ["lora", "qlora"])
def test_kaito_parses_every_section_into_its_class(kaito_parser, golden):
    sections = yaml.safe_load((GOLDEN / f"kaito_training_config_{golden}.yaml").read_text())["training_config"]
    assert set(sections) <= set(kaito_parser.CONFIG_CLASS_MAP)
    for name, section in sections.items():
        cls = kaito_parser.CONFIG_CLASS_MAP[name]
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(section) <= fields, f"{name}: {set(section) - fields} are not fields of {cls.__name__}"
        if name == "LoraConfig":
            continue
        # bf16 needs a GPU when SFTConfig is built; this machine has none, the cluster has.
        given = {**section, "use_cpu": True} if name == "TrainingArguments" else dict(section)
        parsed = kaito_parser.parse_section(name, given)
        assert isinstance(parsed, cls)
        for key, value in section.items():
            assert plain(getattr(parsed, key)) == value, f"{name}.{key}"


@pytest.mark.parametrize("golden", ["lora", "qlora"])
def test_lora_section_builds_peft_config_like_fine_tuning_py(kaito_parser, golden):
    from peft import LoraConfig

    section = yaml.safe_load((GOLDEN / f"kaito_training_config_{golden}.yaml").read_text())["training_config"]["LoraConfig"]
    ext = kaito_parser.CONFIG_CLASS_MAP["LoraConfig"](**section)
    config = LoraConfig(**dataclasses.asdict(ext))
    assert (config.r, config.lora_alpha, config.lora_dropout, config.bias) == (16, 32, 0.1, "none")
    assert set(config.target_modules) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}


def test_qlora_section_makes_a_quantizable_bitsandbytes_config(kaito_parser):
    from transformers import BitsAndBytesConfig

    section = yaml.safe_load((GOLDEN / "kaito_training_config_qlora.yaml").read_text())["training_config"]
    parsed = kaito_parser.parse_section("QuantizationConfig", dict(section["QuantizationConfig"]))
    bnb = BitsAndBytesConfig(**dataclasses.asdict(parsed))  # what fine_tuning.py does
    assert bnb.is_quantizable() and bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4"
