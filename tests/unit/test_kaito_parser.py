"""The generated training_config.yaml (golden files, which test_kaito_config.py ties to the generator)
checked section by section against the classes KAITO's tuning image builds from it:
TrainingArguments -> trl SFTConfig, LoraConfig -> peft LoraConfig (KAITO subclasses it), QuantizationConfig
-> transformers BitsAndBytesConfig (KAITO subclasses it), DataCollator -> transformers
DataCollatorForLanguageModeling; ModelConfig and DatasetConfig are KAITO's own dataclasses, whose keys
and value types phitune records in kaito_config.KAITO_SECTION_FIELDS.

Each check is a function the last tests feed a misspelled key, so they are shown to fail."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from pathlib import Path

import pytest
import yaml

from phitune.targets.kaito_config import KAITO_SECTION_FIELDS
from phitune.targets.kaito_schema import KNOWN_SECTIONS

GOLDEN = Path(__file__).parent / "golden"

pytestmark = pytest.mark.slow  # imports torch, transformers, peft and trl


def sections(golden: str) -> dict:
    return yaml.safe_load((GOLDEN / f"kaito_training_config_{golden}.yaml").read_text())["training_config"]


def plain(value):
    return value.value if isinstance(value, enum.Enum) else value


def check_training_arguments(section: dict):
    from trl import SFTConfig

    # The cluster has a GPU for bf16; this machine has none, so the config is built for the CPU.
    config = SFTConfig(**section, use_cpu=True)  # a key SFTConfig lacks is a TypeError
    for key, value in section.items():
        assert plain(getattr(config, key)) == value, f"TrainingArguments.{key}"
    return config


def check_lora_config(section: dict):
    from peft import LoraConfig

    config = LoraConfig(**section)  # a dataclass: an unknown key is a TypeError
    for key, value in section.items():
        got = getattr(config, key)
        assert (set(got) if key == "target_modules" else got) == (set(value) if key == "target_modules" else value), key
    return config


def check_quantization_config(section: dict):
    import torch
    from transformers import BitsAndBytesConfig

    # BitsAndBytesConfig swallows unknown keywords (**kwargs) with a warning: require named parameters.
    named = set(inspect.signature(BitsAndBytesConfig.__init__).parameters) - {"self", "kwargs"}
    assert set(section) <= named, f"QuantizationConfig: {set(section) - named} are not BitsAndBytesConfig parameters"
    config = BitsAndBytesConfig(**section)
    for key, value in section.items():
        got = getattr(config, key)
        assert (str(got).removeprefix("torch.") if isinstance(got, torch.dtype) else got) == value, key
    return config


def check_kaito_section(name: str, section: dict):
    fields = KAITO_SECTION_FIELDS[name]
    assert set(section) <= set(fields), f"{name}: {set(section) - set(fields)} are not fields KAITO reads"
    for key, value in section.items():
        kind = fields[key]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        assert ok or (kind is float and type(value) is int), f"{name}.{key}: {value!r} is not {kind.__name__}"


@pytest.mark.parametrize("golden", ["lora", "qlora"])
def test_every_section_is_one_kaito_reads(golden):
    found = sections(golden)
    assert set(found) <= set(KNOWN_SECTIONS)
    assert ("QuantizationConfig" in found) == (golden == "qlora")


@pytest.mark.parametrize("golden", ["lora", "qlora"])
def test_training_arguments_round_trip_through_sft_config(golden):
    config = check_training_arguments(sections(golden)["TrainingArguments"])
    assert config.output_dir == "/mnt/output" and config.bf16 and config.save_strategy.value == "steps"


@pytest.mark.parametrize("golden", ["lora", "qlora"])
def test_lora_section_builds_a_peft_lora_config(golden):
    config = check_lora_config(sections(golden)["LoraConfig"])
    assert (config.r, config.lora_alpha, config.lora_dropout, config.bias) == (16, 32, 0.1, "none")
    assert set(config.target_modules) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}  # Phi-3's fused names


def test_qlora_section_makes_a_quantizable_4bit_nf4_config():
    import torch

    bnb = check_quantization_config(sections("qlora")["QuantizationConfig"])
    assert bnb.is_quantizable() and bnb.load_in_4bit and not bnb.load_in_8bit
    assert bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16


@pytest.mark.parametrize("golden", ["lora", "qlora"])
@pytest.mark.parametrize("name", ["ModelConfig", "DatasetConfig", "DataCollator"])
def test_kaito_own_sections_use_only_fields_kaito_reads(golden, name):
    check_kaito_section(name, sections(golden)[name])


def test_model_dtype_names_a_torch_dtype():
    import torch

    for golden in ("lora", "qlora"):
        dtype = sections(golden)["ModelConfig"]["torch_dtype"]  # KAITO turns it into getattr(torch, name)
        assert isinstance(getattr(torch, dtype, None), torch.dtype), dtype


def test_data_collator_section_builds_the_causal_lm_collator(tiny_model_dir):
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    real = {f.name for f in dataclasses.fields(DataCollatorForLanguageModeling)}
    assert set(KAITO_SECTION_FIELDS["DataCollator"]) <= real
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, **sections("lora")["DataCollator"])
    assert collator.mlm is False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = collator([{"input_ids": [5, 6, 7]}])
    assert batch["labels"].tolist() == [[5, 6, 7]]  # causal LM: the labels are the inputs


MISSPELLED = [
    ("TrainingArguments", check_training_arguments, "learning_rat", 1e-4),
    ("LoraConfig", check_lora_config, "lora_alpah", 32),
    ("QuantizationConfig", check_quantization_config, "bnb_4bit_quant_typ", "nf4"),
    ("ModelConfig", lambda s: check_kaito_section("ModelConfig", s), "dtype", "bfloat16"),
    ("DatasetConfig", lambda s: check_kaito_section("DatasetConfig", s), "message_column", "messages"),
    ("DataCollator", lambda s: check_kaito_section("DataCollator", s), "mlm_prob", 0.1),
]


@pytest.mark.parametrize("name, check, key, value", MISSPELLED, ids=[m[0] for m in MISSPELLED])
def test_a_misspelled_key_fails_the_check(name, check, key, value):
    section = {**sections("qlora")[name], key: value}
    with pytest.raises((AssertionError, TypeError)):
        check(section)


def test_a_wrongly_typed_value_fails_the_check():
    with pytest.raises(AssertionError):
        check_kaito_section("DatasetConfig", {**sections("lora")["DatasetConfig"], "shuffle_seed": "7"})
    with pytest.raises(AssertionError):
        check_kaito_section("DataCollator", {"mlm": "false"})
