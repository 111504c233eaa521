"""What the estimator needs to know about a model, read from its config alone.

The model is instantiated on PyTorch's meta device (shapes, no storage: ~0.1 s even for billions of
parameters) and the recipe's method is applied to it with peft, so parameter counts are exact for
any architecture transformers knows, trainable adapter parameters included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phitune.errors import ModelError, Problem

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe

_LAYER = re.compile(r"\.layers?\.(\d+)\.|\.h\.(\d+)\.|\.blocks?\.(\d+)\.")


@dataclass(frozen=True)
class Linear:
    name: str
    in_features: int
    out_features: int


@dataclass(frozen=True)
class ModelShape:
    """Parameter counts and layer sizes. Architecture fields are 0 when only `--params` is known."""

    name: str
    total_params: int
    trainable_params: int | None  # for the recipe's method; None when unknown (no config)
    hidden: int = 0
    layers: int = 0
    heads: int = 0
    intermediate: int = 0
    vocab: int = 0
    quantizable_params: int = 0  # linear weights bitsandbytes would quantize (all but the LM head)
    quantized_rows: int = 0  # their output rows (8-bit keeps one fp32 scale per row)
    largest_layer_params: int = 0
    adapted: tuple[Linear, ...] = field(default_factory=tuple)  # target linear layers of the method

    @property
    def has_architecture(self) -> bool:
        return self.layers > 0 and self.hidden > 0

    @classmethod
    def from_params(cls, name: str, params: int, recipe: "Recipe") -> "ModelShape":
        """Only a parameter count (`--params`): model states for full fine-tuning, nothing else."""
        return cls(name=name, total_params=params, trainable_params=params if recipe.method.trains_all_weights else None)


def model_shape(recipe: "Recipe") -> ModelShape:
    """The shape of `recipe.model` with `recipe.method` applied (config only, no weights read)."""
    import torch
    from transformers import AutoModelForCausalLM

    from phitune.models.default_modules import with_architecture_modules

    config = _load_config(recipe)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=recipe.model.trust_remote_code)
    total = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings()
    linears = [Linear(n, m.in_features, m.out_features) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and m is not head]
    per_layer: dict[str, int] = {}
    for name, p in model.named_parameters():
        match = _LAYER.search(f".{name}")
        if match:
            key = next(g for g in match.groups() if g is not None)
            per_layer[key] = per_layer.get(key, 0) + p.numel()
    method = with_architecture_modules(recipe.method, getattr(config, "model_type", None))
    trainable = total if method.trains_all_weights else _trainable_params(model, method)
    targets = set(getattr(method, "target_modules", None) or [])
    return ModelShape(
        name=recipe.model.name,
        total_params=total,
        trainable_params=trainable,
        hidden=_first(config, "hidden_size", "n_embd", "d_model"),
        layers=_first(config, "num_hidden_layers", "n_layer", "num_layers"),
        heads=_first(config, "num_attention_heads", "n_head"),
        intermediate=_first(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * _first(config, "hidden_size", "n_embd"),
        vocab=_first(config, "vocab_size"),
        quantizable_params=sum(lin.in_features * lin.out_features for lin in linears),
        quantized_rows=sum(lin.out_features for lin in linears),
        largest_layer_params=max(per_layer.values(), default=0),
        adapted=tuple(lin for lin in linears if lin.name.rsplit(".", 1)[-1] in targets),
    )


def _trainable_params(model, method) -> int:
    """Apply the method's peft config (module lists filled in) to the meta model and count what requires grad."""
    from peft import get_peft_model

    from phitune.models.adapters import peft_config
    from phitune.recipe.method import PromptTuningMethod

    if isinstance(method, PromptTuningMethod) and method.init == "text":
        method = method.model_copy(update={"init": "random", "init_text": None})  # same size, no tokenizer
    peft_model = get_peft_model(model, peft_config(method))  # qlora: its LoRA/DoRA adapter
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


def _load_config(recipe: "Recipe"):
    from transformers import AutoConfig

    from phitune.models.loader import resolve_model_path

    source = resolve_model_path(recipe.model)
    try:
        return AutoConfig.from_pretrained(source, revision=recipe.model.revision,
                                          trust_remote_code=recipe.model.trust_remote_code)
    except (OSError, ValueError) as exc:
        text = str(exc).strip()
        raise ModelError(f"cannot read the config of {source}", [Problem(
            "model.name", text.splitlines()[0] if text else type(exc).__name__,
            "pass --params N (e.g. --params 3.8B) to estimate model states without the config, "
            "or point model.name at a local folder")]) from None


def _first(config, *names: str) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0
