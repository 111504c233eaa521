"""`method.type` values beyond LoRA/DoRA/full and `train.deepspeed`: defaults, and invalid
combinations rejected with messages that name the fields."""

from __future__ import annotations

import pytest

from phitune.errors import RecipeError
from phitune.recipe import load_recipe

BASE = {"data": {"train": "t.jsonl"}}


def recipe(*overrides: str):
    return load_recipe(BASE, list(overrides))


def rejected(*overrides: str) -> str:
    with pytest.raises(RecipeError) as info:
        recipe(*overrides)
    return str(info.value)


def test_every_method_type_loads_with_defaults_and_round_trips(tmp_path):
    from phitune.recipe.load import write_resolved

    for kind in ("lora", "dora", "full", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "loha", "lokr"):
        r = recipe(f"method.type={kind}")
        assert r.method.type == kind
        again = load_recipe(write_resolved(r, tmp_path / f"{kind}.json"))
        assert again == r


def test_qlora_defaults_to_nf4_double_quant_and_8_bit_has_neither():
    four = recipe("method.type=qlora").method
    assert (four.bits, four.quant_type, four.double_quant, four.adapter, four.compute_dtype) == (4, "nf4", True, "lora", None)
    eight = recipe("method.type=qlora", "method.bits=8").method
    assert (eight.quant_type, eight.double_quant) == (None, None)
    assert recipe("method.type=qlora", "method.adapter=dora", "method.quant_type=fp4").method.quant_type == "fp4"


def test_qlora_4_bit_options_with_8_bits_name_both_fields():
    text = rejected("method.type=qlora", "method.bits=8", "method.quant_type=nf4")
    assert "method.quant_type only apply to 4-bit quantization, but method.bits is 8" in text
    assert "method.bits" in text and "method.quant_type" in text
    assert "method.double_quant" in rejected("method.type=qlora", "method.bits=8", "method.double_quant=false")
    assert "method.bits" in rejected("method.type=qlora", "method.bits=3")


def test_method_specific_rules_name_the_fields():
    assert "method.feedforward_modules must be a subset of method.target_modules: mlp" in \
        rejected("method.type=ia3", "method.feedforward_modules=[mlp]")
    assert "method.init: text needs method.init_text" in rejected("method.type=prompt_tuning", "method.init=text")
    assert "method.init_text is only used with method.init: text" in \
        rejected("method.type=prompt_tuning", "method.init_text=hello")
    assert "method.projection_hidden needs method.projection: true" in \
        rejected("method.type=prefix_tuning", "method.projection_hidden=32")
    assert "decompose_factor must be -1" in rejected("method.type=lokr", "method.decompose_factor=0")
    # options of one method are unknown keys on another
    assert "unknown key 'bits'" in rejected("method.type=lora", "method.bits=4")
    assert "unknown key 'r'" in rejected("method.type=prompt_tuning", "method.r=4")


def test_method_conflicts_with_other_sections_name_both_fields():
    text = rejected("method.type=prompt_tuning", "train.packing=true")
    assert "method.type: prompt_tuning cannot be combined with train.packing: true" in text
    assert "output.merge: true is impossible" in rejected("method.type=prefix_tuning", "output.merge=true")
    assert "train.gradient_checkpointing: true" in rejected("method.type=prefix_tuning", "train.gradient_checkpointing=true")
    text = rejected("method.type=qlora", "train.deepspeed.stage=3")
    assert "method.type: qlora cannot be combined with train.deepspeed.stage: 3" in text
    # the same settings are fine for the methods they do not concern
    assert recipe("method.type=lora", "train.packing=true", "train.deepspeed.stage=3").train.deepspeed.stage == 3


def test_deepspeed_section_defaults_and_exclusive_config(tmp_path):
    ds = recipe("train.deepspeed.stage=3", "train.deepspeed.offload_params=true").train.deepspeed
    assert (ds.stage, ds.offload_optimizer, ds.offload_params, ds.config) == (3, False, True, None)
    assert recipe("train.deepspeed={}").train.deepspeed.stage == 2
    assert recipe().train.deepspeed is None
    text = rejected("train.deepspeed.stage=2", "train.deepspeed.offload_params=true")
    assert "train.deepspeed.offload_params needs train.deepspeed.stage: 3 (got stage 2)" in text
    text = rejected("train.deepspeed.config=ds.json", "train.deepspeed.stage=3", "train.deepspeed.offload_optimizer=true")
    assert "train.deepspeed.config is exclusive with train.deepspeed.stage, train.deepspeed.offload_optimizer" in text
    assert "train.deepspeed.stage" in rejected("train.deepspeed.stage=4")


def test_deepspeed_config_path_resolves_against_the_recipe_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "r.yaml"
    path.write_text("data: {train: t.jsonl}\ntrain:\n  deepspeed: {config: ds/zero2.json}\n")
    ds = load_recipe(path).train.deepspeed
    assert ds.config == str(tmp_path / "sub" / "ds" / "zero2.json") and ds.stage is None
