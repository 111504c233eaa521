"""Each method declares what it needs as class attributes: callers ask these, never the method's name.
They are not recipe fields: the schema, the resolved recipe and the tracked params do not show them."""

import json

import pytest

from phitune.recipe.method import method_class, method_classes
from phitune.recipe.schema import Recipe

CAPABILITIES = ("own_rows", "zero3_allowed", "quantized_base", "trains_all_weights", "mergeable",
                "checkpointing_allowed", "head_supported", "lora_adapter", "plain_lora", "qlora_variant",
                "activation_coefficients", "weight_sized_update")


def _recipe(**method) -> Recipe:
    return Recipe.model_validate({"data": {"train": "t.jsonl"}, "method": method})


def _having(capability: str) -> set[str]:
    return {name for name, cls in method_classes().items() if getattr(cls, capability)}


def test_each_capability_names_the_methods_it_did_by_name():
    assert _having("own_rows") == {"prompt_tuning", "prefix_tuning"}
    assert _having("mergeable") == set(method_classes()) - {"prompt_tuning", "prefix_tuning"}
    assert set(method_classes()) - _having("zero3_allowed") == {"qlora"}
    assert _having("quantized_base") == {"qlora"}
    assert _having("trains_all_weights") == {"full"}
    assert set(method_classes()) - _having("checkpointing_allowed") == {"prefix_tuning"}
    assert _having("head_supported") == {"lora", "dora", "full"}
    assert _having("lora_adapter") == {"lora", "dora", "qlora"}
    assert _having("plain_lora") == {"lora"}
    assert _having("qlora_variant") == {"lora", "dora"}
    assert _having("weight_sized_update") == {"loha", "lokr"}


def test_instance_capabilities_follow_the_settings():
    assert _recipe(type="dora").method.uses_dora and not _recipe(type="lora").method.uses_dora
    assert _recipe(type="qlora", adapter="dora").method.uses_dora and not _recipe(type="qlora").method.uses_dora
    assert _recipe(type="prompt_tuning", num_virtual_tokens=7).method.input_tokens_added == 7
    assert _recipe(type="prefix_tuning").method.input_tokens_added == 0


@pytest.mark.parametrize("name", list(method_classes()))
def test_capabilities_are_not_recipe_fields(name):
    recipe = _recipe(type=name)
    text = json.dumps(Recipe.model_json_schema()) + recipe.resolved_json() + json.dumps(recipe.flat_params())
    for capability in (*CAPABILITIES, "uses_dora", "input_tokens_added"):
        assert capability not in text
        assert capability not in type(recipe.method).model_fields


def test_method_class_looks_up_a_stored_name():
    assert method_class("qlora").quantized_base and method_class("lora").plain_lora
    assert method_class("no-such-method") is None
