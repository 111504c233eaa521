"""One call from recipe to trainable model: load the base (quantized when the method asks for it)
and wrap it with the recipe's method. The training loop, compare and estimate all go through here,
so a new method only touches `phitune.models`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe


def load_trainable_model(recipe: "Recipe"):
    """The base model named by `recipe.model`, adapted by `recipe.method`, in train mode."""
    from phitune.models.adapters import apply_method
    from phitune.models.loader import load_base_model

    model = load_base_model(recipe.model, **base_model_kwargs(recipe))
    model = apply_method(model, recipe.method)
    model.train()
    return model


def base_model_kwargs(recipe: "Recipe") -> dict:
    """Extra `from_pretrained` kwargs the method needs (e.g. a quantization config for QLoRA)."""
    return {}
