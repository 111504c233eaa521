"""The finetune component's hyperparameter inputs, defined once.

Each row maps a component input to the recipe field it overrides. The Azure type, min/max and enum
come from the recipe's pydantic field constraints, so the component YAML (inputs and its
`$[[--set field=${{inputs.name}}]]` command lines) can be checked against the recipe schema by a test
(tests/contract/test_aml_components.py) instead of being written three times by hand.
`python -m phitune.targets.component_inputs` prints the YAML the component must contain.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel

from phitune.recipe.method import LoraMethod
from phitune.recipe.schema import Recipe


@dataclass(frozen=True)
class RecipeOverride:
    input: str  # component input name (Azure ML style, like its own fine-tuning components)
    field: str  # recipe field path it overrides via `--set`


# Optional inputs: unset means "what the recipe says". Method fields apply to lora/dora recipes.
FINETUNE_OVERRIDES: tuple[RecipeOverride, ...] = (
    RecipeOverride("epochs", "train.epochs"),
    RecipeOverride("max_steps", "train.max_steps"),
    RecipeOverride("learning_rate", "train.lr"),
    RecipeOverride("batch_size", "train.batch_size"),
    RecipeOverride("grad_accum", "train.grad_accum"),
    RecipeOverride("max_seq_len", "train.max_seq_len"),
    RecipeOverride("seed", "train.seed"),
    RecipeOverride("lora_r", "method.r"),
    RecipeOverride("lora_alpha", "method.alpha"),
    RecipeOverride("lora_dropout", "method.dropout"),
    RecipeOverride("merge", "output.merge"),
)

# Inputs that carry Azure paths into the recipe (not hyperparameters).
FINETUNE_PATH_INPUTS = {
    "train_data": "data.train",
    "validation_data": "data.validation",
    "base_model": "model.name",
    "base_mlflow_model": "model.name",
}

_SECTION_MODELS: dict[str, type[BaseModel]] = {"method": LoraMethod}


def recipe_field(path: str):
    """The pydantic FieldInfo for `section.field` (method fields are read from LoraMethod)."""
    section, name = path.split(".")
    model = _SECTION_MODELS.get(section) or Recipe.model_fields[section].annotation
    return model.model_fields[name]


def azure_input_spec(override: RecipeOverride) -> dict[str, Any]:
    """The component input YAML for one override, derived from the recipe field."""
    field = recipe_field(override.field)
    spec: dict[str, Any] = {"type": _azure_type(field.annotation), "optional": True}
    for meta in field.metadata:
        # Azure's min/max are inclusive; an exclusive pydantic bound becomes the inclusive one and
        # the recipe validation still rejects the edge value with the field's own message.
        if isinstance(meta, (at.Ge, at.Gt)):
            spec["min"] = getattr(meta, "ge", getattr(meta, "gt", None))
        if isinstance(meta, (at.Le, at.Lt)):
            spec["max"] = getattr(meta, "le", getattr(meta, "lt", None))
    enum = _literal_values(field.annotation)
    if enum:
        spec["enum"] = list(enum)
    spec["description"] = f"Overrides {override.field}. {field.description or ''}".strip()
    return spec


def set_fragment(override: RecipeOverride) -> str:
    """The optional command-line fragment the component must contain for this override."""
    return f"$[[--set {override.field}=${{{{inputs.{override.input}}}}}]]"


def _azure_type(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    base = args[0]
    if base is bool:
        return "boolean"
    if base is int:
        return "integer"
    if base is float:
        return "number"
    return "string"


def _literal_values(annotation: Any) -> tuple:
    for arg in [annotation, *typing.get_args(annotation)]:
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()


def finetune_yml_fragments() -> str:
    """The `inputs:` block and the `--set` fragments of components/finetune.yml, for whoever edits it
    (`python -m phitune.targets.component_inputs`)."""
    import yaml

    inputs = {o.input: azure_input_spec(o) for o in FINETUNE_OVERRIDES}
    return (yaml.safe_dump({"inputs": inputs}, sort_keys=False, width=120) + "\n"
            + "\n".join(set_fragment(o) for o in FINETUNE_OVERRIDES) + "\n")


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(finetune_yml_fragments())
