"""KAITO's tuning presets as phitune pins them: names, Hugging Face repositories, and the LoRA target
names of each architecture checked against transformers and peft."""

from __future__ import annotations

import pytest

from phitune.targets.kaito_presets import lora_targets, resolve_preset, tuning_presets

PHI = ("phi-3-mini-4k-instruct", "phi-3-mini-128k-instruct", "phi-3-medium-4k-instruct",
       "phi-3-medium-128k-instruct", "phi-3.5-mini-instruct", "phi-4-mini-instruct", "phi-4")


def test_every_phi_tuning_preset_is_listed_with_its_hub_repository():
    presets = tuning_presets()
    assert set(PHI) <= set(presets)
    assert presets["phi-3-mini-4k-instruct"].hf_repo == "microsoft/Phi-3-mini-4k-instruct"
    assert presets["phi-4"].hf_repo == "microsoft/phi-4"
    assert all(p.model_type == "phi3" for name, p in presets.items() if name.startswith("phi-"))
    assert "mistral-7b" not in presets  # KAITO's tuning table key (mistral-7b-v0.3) matches no supported model


@pytest.mark.parametrize("given", ["microsoft/Phi-3-mini-4k-instruct", "phi-3-mini-4k-instruct",
                                   "Phi-3-mini-4k-instruct", "hf://microsoft/phi-3-mini-4k-instruct"])
def test_model_names_resolve_to_the_preset(given):
    preset, problems = resolve_preset(given)
    assert problems == [] and preset.name == "phi-3-mini-4k-instruct"


def test_targets_the_architecture_lacks_are_named():
    preset = tuning_presets()["phi-3-mini-128k-instruct"]
    # KAITO's own Phi-3 example ConfigMap lists these: none is a layer of Phi-3.
    _, problems = lora_targets(preset, ["q_proj", "k_proj", "v_proj", "o_proj"], ("qkv_proj",))
    assert problems[0].location == "method.target_modules"
    assert "q_proj, k_proj, v_proj" in problems[0].message and "gate_up_proj" in problems[0].fix


@pytest.mark.slow  # imports torch and transformers
@pytest.mark.parametrize("model_type", ["phi3", "qwen2"])
def test_linear_module_names_are_the_architectures_own(model_type):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                                  pad_token_id=0)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layer_linears = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear) and ".layers." in name}
    preset = next(p for p in tuning_presets().values() if p.model_type == model_type)
    assert layer_linears == set(preset.linear_modules)


@pytest.mark.slow  # imports peft
def test_peft_default_targets_are_peft_own_mapping():
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_defaults

    for preset in tuning_presets().values():
        assert list(preset.peft_default_targets) == list(peft_defaults.get(preset.model_type, [])), preset.name
