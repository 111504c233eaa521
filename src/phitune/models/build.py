"""One call from recipe to trainable model: load the base (quantized when the method asks for it),
prepare it for training (gradient checkpointing, k-bit preparation, no KV cache) and wrap it with
the recipe's method. The training loop, compare and estimate all go through here, so a new method
only touches `phitune.models`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe

# Non-reentrant checkpointing needs no `enable_input_require_grads` hack and works with frozen inputs.
CHECKPOINTING_KWARGS = {"use_reentrant": False}


def load_trainable_model(recipe: "Recipe"):
    """The base model named by `recipe.model`, adapted by `recipe.method`, in train mode."""
    from phitune.models.adapters import apply_method
    from phitune.recipe.task import uses_head

    if uses_head(recipe.task):  # task.head: classifier -> a sequence/token-classification model
        from phitune.models.heads import apply_head_method, load_head_base

        seed_everything(recipe.train.seed)  # the new head's initial weights
        return apply_head_method(prepare_for_training(load_head_base(recipe), recipe), recipe)
    model = load_base_for_method(recipe)
    model = prepare_for_training(model, recipe)
    # Seed after loading (loading may draw from or reseed the global RNGs): what must be reproducible
    # is the adapter's initial weights and everything after them.
    seed_everything(recipe.train.seed)
    model = apply_method(model, recipe.method)
    model.train()
    return model


def load_base_for_method(recipe: "Recipe"):
    """The frozen base as the method needs it: quantized (streamed from safetensors) for QLoRA."""
    if recipe.method.quantized_base:
        from phitune.models.quantize import load_quantized_model

        return load_quantized_model(recipe.model, **base_model_kwargs(recipe))
    from phitune.models.loader import load_base_model

    return load_base_model(recipe.model, **base_model_kwargs(recipe))


def base_model_kwargs(recipe: "Recipe") -> dict:
    """Extra `from_pretrained` kwargs the method needs (the bitsandbytes config for QLoRA)."""
    if recipe.method.quantized_base:
        from phitune.models.quantize import quantization_config

        return {"quantization_config": quantization_config(recipe.method, recipe.model.dtype)}
    return {}


def prepare_for_training(model, recipe: "Recipe"):
    """Gradient checkpointing as `train.gradient_checkpointing` says; k-bit preparation for a quantized
    base (frozen, norms and embeddings in fp32); no KV cache (training never reuses it)."""
    from phitune.models.quantize import loaded_in_kbit

    checkpointing = recipe.train.gradient_checkpointing
    if loaded_in_kbit(model):
        from peft import prepare_model_for_kbit_training

        from phitune.models.quantize import keep_trainable_layout

        keep_trainable_layout(model)  # evaluations during training must not repack the 4-bit weights
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
        model.enable_input_require_grads()
    model.config.use_cache = False
    return model


def seed_everything(seed: int) -> None:
    """python, numpy and torch: adapter init, dropout and anything else random."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
