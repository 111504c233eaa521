"""`method:` -> a trainable model. LoRA and DoRA wrap the base with PEFT; full trains every weight."""

from __future__ import annotations

from typing import TYPE_CHECKING

from phitune.errors import Problem, RecipeError

if TYPE_CHECKING:
    from phitune.recipe.method import MethodSpec


def peft_config(method: "MethodSpec"):
    """The PEFT config for an adapter method, or None for full fine-tuning."""
    from peft import LoraConfig, TaskType

    if method.type in ("lora", "dora"):
        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=method.r,
            lora_alpha=method.alpha,
            lora_dropout=method.dropout,
            target_modules=list(method.target_modules),
            bias=method.bias,
            use_dora=method.type == "dora",
        )
    if method.type == "full":
        return None
    raise RecipeError("unsupported method", [Problem("method.type", f"no adapter builder for {method.type!r}")])


def apply_method(model, method: "MethodSpec"):
    """Wrap `model` for training with `method`; returns the model whose trainable params the optimizer gets."""
    config = peft_config(method)
    if config is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model

    _check_targets(model, list(getattr(config, "target_modules", None) or []))
    return get_peft_model(model, config)


def is_adapter_model(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _check_targets(model, targets: list[str]) -> None:
    if not targets:
        return
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise RecipeError(
            "method.target_modules names modules the model does not have",
            [Problem("method.target_modules", f"no module named {', '.join(missing)} in this model",
                     f"this model's linear layers are: {', '.join(linear)}")],
        )
