"""Unset `method.target_modules` means the architecture's default: phitune's preset for Phi-3 models,
peft's own per-architecture list for any other (models built here from a config, nothing downloaded)."""

import pytest
import torch
from peft.utils import constants
from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config, Qwen2Config

from phitune.errors import RecipeError
from phitune.models.adapters import apply_method
from phitune.models.default_modules import default_modules
from phitune.recipe.load import load_recipe
from phitune.recipe.method import PHI3_FEEDFORWARD, PHI3_LORA_TARGETS
from phitune.recipe.schema import Recipe

SMALL = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
             num_key_value_heads=2, vocab_size=64, max_position_embeddings=32, pad_token_id=0,
             bos_token_id=1, eos_token_id=2)


def _model(config_class):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config_class(**SMALL))


def _method(model_name: str, **method):
    return Recipe.model_validate({"data": {"train": "t.jsonl"}, "model": model_name, "method": method}).method


def _adapted(model) -> set[str]:
    return set(model.peft_config["default"].target_modules)


@pytest.mark.parametrize("config_class", [LlamaConfig, Qwen2Config])
def test_another_architecture_gets_peft_default_targets(config_class):
    method = _method("some-org/some-model", type="lora")
    assert method.target_modules is None  # not known until the model is built
    model = apply_method(_model(config_class), method)
    model_type = config_class.model_type
    assert _adapted(model) == set(constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])
    assert _adapted(model) == {"q_proj", "v_proj"}


def test_ia3_and_loha_defaults_come_from_their_own_peft_mappings():
    ia3 = apply_method(_model(Qwen2Config), _method("some-org/qwen", type="ia3"))
    config = ia3.peft_config["default"]
    assert set(config.target_modules) == set(constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING["qwen2"])
    assert set(config.feedforward_modules) == {"down_proj"}
    loha = apply_method(_model(LlamaConfig), _method("some-org/llama", type="loha"))
    assert _adapted(loha) == set(constants.TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING["llama"])


def test_phi3_keeps_phitunes_preset():
    builtin = load_recipe({"data": {"train": "t.jsonl"}, "model": "builtin:tiny-phi3", "tracking": "none"})
    assert builtin.method.target_modules == list(PHI3_LORA_TARGETS)  # known when the recipe loads
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns when a validator's copy would be dropped
        built = Recipe(data={"train": "t.jsonl"}, model="builtin:tiny-phi3", tracking="none")
    assert built.method == builtin.method  # Recipe(...) fills them in too
    hub = _method("microsoft/Phi-3-mini-4k-instruct", type="lora")
    assert hub.target_modules is None
    assert _adapted(apply_method(_model(Phi3Config), hub)) == set(PHI3_LORA_TARGETS)
    ia3 = apply_method(_model(Phi3Config), _method("microsoft/Phi-3-mini-4k-instruct", type="ia3"))
    assert set(ia3.peft_config["default"].feedforward_modules) == set(PHI3_FEEDFORWARD)


def test_explicit_targets_are_kept_and_unknown_architectures_ask_for_them():
    method = _method("some-org/llama", type="lora", target_modules=["q_proj", "k_proj"])
    assert _adapted(apply_method(_model(LlamaConfig), method)) == {"q_proj", "k_proj"}
    ia3 = _method("some-org/llama", type="ia3", target_modules=["q_proj"], feedforward_modules=[])
    assert apply_method(_model(LlamaConfig), ia3).peft_config["default"].feedforward_modules == set()
    with pytest.raises(RecipeError) as err:
        default_modules(_method("some-org/x", type="lora"), "no-such-architecture")
    assert err.value.problems[0].location == "method.target_modules"


def test_the_rule_is_documented_on_the_field():
    schema = Recipe.model_json_schema()["$defs"]["LoraMethod"]["properties"]["target_modules"]
    assert "architecture's default" in schema["description"] and "qkv_proj" in schema["description"]
