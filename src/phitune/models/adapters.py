"""`method:` -> a trainable model. Adapter methods wrap the base with PEFT; full trains every weight.

One small builder per method family turns the recipe's method into a peft config; `apply_method`
wraps the model. QLoRA's quantized base is loaded by `phitune.models.quantize` (through
`phitune.models.build`): here it is LoRA/DoRA on whatever base it gets, after checking the base is
quantized.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phitune.errors import ModelError, Problem, RecipeError
from phitune.recipe.method import (DoraMethod, Ia3Method, LohaMethod, LokrMethod, LoraMethod, PrefixTuningMethod,
                                   PromptTuningMethod, QloraMethod)

if TYPE_CHECKING:
    from phitune.recipe.method import MethodSpec


def peft_config(method: "MethodSpec", tokenizer_path: str | None = None):
    """The PEFT config for an adapter method, or None for full fine-tuning. Unset module lists should be
    filled in first (`default_modules.with_architecture_modules`); left unset, peft picks its own.

    tokenizer_path: where prompt tuning's `init: text` reads the tokenizer from (the base model folder).
    """
    if method.trains_all_weights:
        return None
    builder = _BUILDERS.get(type(method))
    if builder is None:
        raise RecipeError("unsupported method", [Problem("method.type", f"no adapter builder for {method.type!r}")])
    return builder(method, tokenizer_path)


def apply_method(model, method: "MethodSpec"):
    """Wrap `model` for training with `method` (unset module lists: the architecture's default, see
    phitune.models.default_modules); returns the model whose trainable params the optimizer gets."""
    from phitune.models.default_modules import with_architecture_modules
    from phitune.models.quantize import loaded_in_kbit

    if method.quantized_base and not loaded_in_kbit(model):
        raise ModelError(f"method {method.type} needs a quantized base model", [Problem(
            "method.type", "the model was loaded in full precision, so this would be plain LoRA",
            "load it with phitune.models.build.load_trainable_model(recipe), which quantizes it")])
    method = with_architecture_modules(method, getattr(model.config, "model_type", None))
    config = peft_config(method, tokenizer_path=getattr(model, "name_or_path", None) or None)
    if config is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    check_targets(model, _module_names(getattr(config, "target_modules", None)))
    if method.input_tokens_added:  # logits lined up with the caller's tokens again
        from phitune.models.prompt_learning import PromptTuningCausalLM

        return PromptTuningCausalLM(model, config)
    if method.quantized_base:
        from phitune.models.qlora_model import QloraCausalLM

        return QloraCausalLM(model, config)  # merges into the full-precision base
    from peft import get_peft_model

    return get_peft_model(model, config)


def is_adapter_model(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


# --- one builder per method family ----------------------------------------------------------------


def _lora(method, _tokenizer_path):
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout,
                      target_modules=_names(method.target_modules), bias=method.bias, use_dora=method.uses_dora)


def _ia3(method, _tokenizer_path):
    from peft import IA3Config, TaskType

    return IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=_names(method.target_modules),
                     feedforward_modules=_names(method.feedforward_modules))


def _prompt_tuning(method, tokenizer_path):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    if method.init == "text":
        if not tokenizer_path:
            raise ModelError("prompt tuning init: text needs the base model's tokenizer",
                             [Problem("method.init", "the model has no name_or_path to load the tokenizer from",
                                      "use method.init: random, or load the base from a folder")])
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=method.num_virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=method.init_text,
                                  tokenizer_name_or_path=tokenizer_path)
    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=method.num_virtual_tokens,
                              prompt_tuning_init=PromptTuningInit.RANDOM)


def _prefix_tuning(method, _tokenizer_path):
    from peft import PrefixTuningConfig, TaskType

    extra = {"encoder_hidden_size": method.projection_hidden} if method.projection_hidden else {}
    return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=method.num_virtual_tokens,
                              prefix_projection=method.projection, **extra)


def _loha(method, _tokenizer_path):
    from peft import LoHaConfig, TaskType

    return LoHaConfig(task_type=TaskType.CAUSAL_LM, r=method.r, alpha=method.alpha, rank_dropout=method.rank_dropout,
                      module_dropout=method.module_dropout, target_modules=_names(method.target_modules))


def _lokr(method, _tokenizer_path):
    from peft import LoKrConfig, TaskType

    return LoKrConfig(task_type=TaskType.CAUSAL_LM, r=method.r, alpha=method.alpha, rank_dropout=method.rank_dropout,
                      module_dropout=method.module_dropout, target_modules=_names(method.target_modules),
                      decompose_both=method.decompose_both, decompose_factor=method.decompose_factor)


_BUILDERS = {LoraMethod: _lora, DoraMethod: _lora, QloraMethod: _lora, Ia3Method: _ia3,
             PromptTuningMethod: _prompt_tuning, PrefixTuningMethod: _prefix_tuning, LohaMethod: _loha, LokrMethod: _lokr}


def _names(modules: list[str] | None) -> list[str] | None:
    return None if modules is None else list(modules)


def _module_names(targets) -> list[str]:
    if not targets or isinstance(targets, str):  # a str is a regex (never produced from a recipe)
        return []
    return list(targets)


def check_targets(model, targets: list[str]) -> None:
    """Every name in `targets` is a module of `model`, or a RecipeError listing its linear layers."""
    if not targets:
        return
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if type(m).__name__ in ("Linear", "Linear4bit", "Linear8bitLt")})
        raise RecipeError(
            "method.target_modules names modules the model does not have",
            [Problem("method.target_modules", f"no module named {', '.join(missing)} in this model",
                     f"this model's linear layers are: {', '.join(linear)}")],
        )
