"""The modules a method adapts when the recipe leaves `method.target_modules` unset: the
architecture's default, by `config.model_type`.

Phi-3 models keep phitune's preset (the fused qkv_proj / gate_up_proj names and o_proj, down_proj,
recipe.method.PHI3_DEFAULT_MODULES); any other architecture gets peft's own per-architecture list for the
method (peft.utils.constants), the list peft itself would pick, resolved here so that it is checked
against the model and recorded with the run.
"""

from __future__ import annotations

from phitune.errors import Problem, RecipeError
from phitune.recipe.method import (PHI3_DEFAULT_MODULES, DoraMethod, Ia3Method, LohaMethod, LokrMethod, LoraMethod,
                                   Method, QloraMethod)

PHI3_MODEL_TYPES = ("phi3",)  # the built-in tiny model is one too
# method class -> {module field: name of peft's model_type -> modules mapping}
PEFT_MAPPINGS = {
    LoraMethod: {"target_modules": "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"},
    DoraMethod: {"target_modules": "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"},
    QloraMethod: {"target_modules": "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"},
    Ia3Method: {"target_modules": "TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING",
                "feedforward_modules": "TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING"},
    LohaMethod: {"target_modules": "TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING"},
    LokrMethod: {"target_modules": "TRANSFORMERS_MODELS_TO_LOKR_TARGET_MODULES_MAPPING"},
}


def default_modules(method: Method, model_type: str | None) -> dict[str, list[str]]:
    """Module field -> the architecture's default module names for `method` (only the fields it has)."""
    if model_type in PHI3_MODEL_TYPES:
        fields = type(method).model_fields
        return {name: list(modules) for name, modules in PHI3_DEFAULT_MODULES.items() if name in fields}
    from peft.utils import constants

    out = {}
    for name, mapping in PEFT_MAPPINGS.get(type(method), {}).items():
        modules = getattr(constants, mapping).get(model_type)
        if not isinstance(modules, list):  # unknown architecture, or a regex (not a list of names)
            raise RecipeError(f"no default {name} for model_type {model_type!r}", [Problem(
                f"method.{name}", f"peft has no default {method.type} modules for model_type {model_type!r}",
                f"set method.{name} to names of this model's linear layers")])
        out[name] = list(modules)
    return out


def with_architecture_modules(method: Method, model_type: str | None) -> Method:
    """`method` with its unset module lists filled in for `model_type`, checked against each other."""
    if all(getattr(method, name, None) is not None for name in ("target_modules", "feedforward_modules")
           if name in type(method).model_fields):
        return method
    filled = method.with_default_modules(default_modules(method, model_type))
    conflicts = filled.module_conflicts()
    if conflicts:
        raise RecipeError("the method's modules contradict each other",
                          [Problem(c.field, c.message, "set both module lists explicitly") for c in conflicts])
    return filled
