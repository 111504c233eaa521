"""`method:` — how the weights are adapted. A union discriminated on `type`, so a recipe cannot
ask for an invalid mix (there is no `use_peft` / `use_dora` / `load_in_4bit` boolean to combine).

Add a method by adding a class here and to `MethodSpec`; `phitune.models.adapters` turns it into a
PEFT config. Each class declares what it needs as class attributes (`Method`'s capabilities: not
fields, so not in the schema or the resolved recipe); callers ask the method, never compare its
`type`. Rules that involve other sections (packing, merge, ZeRO stage) are in `method_conflicts`,
called by the `Recipe` validator.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal, Sequence, Union

from pydantic import Field, field_validator, model_validator

from phitune.recipe.base import Conflict, Section

# Phi-3 fuses q/k/v and gate/up into single projections.
PHI3_LORA_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
PHI3_FEEDFORWARD = ("down_proj",)
PHI3_DEFAULT_MODULES = {"target_modules": PHI3_LORA_TARGETS, "feedforward_modules": PHI3_FEEDFORWARD}
DType = Literal["float32", "bfloat16", "float16"]
ARCHITECTURE_DEFAULT = (
    "Unset: the architecture's default, filled in when the model is known (a built-in model: when the recipe "
    "loads; any other: when the model is built, from its config.model_type). Phi-3 models (model_type phi3, "
    "the built-in tiny model) get phitune's Phi-3 preset ({phi3}); other architectures get peft's own default "
    "for the method and model_type (peft.utils.constants TRANSFORMERS_MODELS_TO_*_TARGET_MODULES_MAPPING)."
)


def _targets_field(what: str = "Module name suffixes to adapt.", phi3: tuple[str, ...] = PHI3_LORA_TARGETS,
                   min_length: int | None = 1):
    return Field(None, min_length=min_length,
                 description=f"{what} {ARCHITECTURE_DEFAULT.format(phi3=', '.join(phi3))}")


def _no_empty(value: list[str] | None) -> list[str] | None:
    if value is not None and any(not name.strip() for name in value):
        raise ValueError("target_modules contains an empty name")
    return value


class Method(Section):
    """What every method declares about itself; callers ask these instead of comparing `type`."""

    own_rows: ClassVar[bool] = False
    """Each example needs its own batch row (virtual tokens): no packing, no padding-free rows."""
    zero3_allowed: ClassVar[bool] = True
    """DeepSpeed ZeRO stage 3 can partition this method's base weights."""
    quantized_base: ClassVar[bool] = False
    """The frozen base is loaded quantized by bitsandbytes."""
    trains_all_weights: ClassVar[bool] = False
    """Every parameter of the base trains: the output is a whole model, not an adapter."""
    mergeable: ClassVar[bool] = True
    """There are weights to fold into the base, so output.merge: true is possible."""
    checkpointing_allowed: ClassVar[bool] = True
    """train.gradient_checkpointing can be combined with this method."""
    head_supported: ClassVar[bool] = False
    """Verified with a classification head (task.head: classifier)."""
    lora_adapter: ClassVar[bool] = False
    """Trains a peft LoRA adapter (LoraConfig; DoRA and QLoRA included)."""
    plain_lora: ClassVar[bool] = False
    """Plain LoRA A·B on a full-precision base: a separable adapter (several can share one base)."""
    qlora_variant: ClassVar[bool] = False
    """QLoRA can train the same adapter on a 4-bit base (method.type: qlora, same method.adapter)."""
    activation_coefficients: ClassVar[tuple[float, float, float]] = (14.0, 5.0, 0.0)
    """(c_h, c_i, c_0): activation elements saved per token and layer (x h, x MLP width) and once (estimate.memory)."""
    weight_sized_update: ClassVar[float] = 0.0
    """Elements built per step, as a multiple of sum(in*out) of the adapted layers (a materialised update)."""

    @property
    def input_tokens_added(self) -> int:
        """Tokens the method prepends to every input sequence (prompt tuning's virtual tokens)."""
        return 0

    def with_default_modules(self, defaults: dict[str, Sequence[str]]) -> "Method":
        """This method with its unset module lists (target_modules, feedforward_modules) taken from
        `defaults` (field name -> module names); itself when it has none unset."""
        unset = {name: list(modules) for name, modules in defaults.items()
                 if name in type(self).model_fields and getattr(self, name) is None}
        if not unset:
            return self
        filled = self.model_copy(update=unset)
        object.__setattr__(filled, "__pydantic_fields_set__", set(self.model_fields_set))  # still the defaults
        return filled

    def module_conflicts(self) -> list[Conflict]:
        """Module lists that contradict each other (once the architecture's defaults are filled in)."""
        return []

    @property
    def uses_dora(self) -> bool:
        """The adapter learns DoRA's per-output magnitude vectors."""
        return False


class _RankedUpdate(Method):
    """What every low-rank-update method has: a rank, its scaling and the modules it adapts."""

    r: int = Field(8, ge=1, le=1024, description="Rank of the low-rank update.")
    alpha: float = Field(16.0, gt=0, description="Scaling numerator: the update is scaled by alpha / r.")
    target_modules: list[str] | None = _targets_field()

    @field_validator("target_modules")
    @classmethod
    def _no_empty_names(cls, value: list[str]) -> list[str]:
        return _no_empty(value)


class _LowRank(_RankedUpdate):
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    bias: Literal["none", "all", "lora_only"] = "none"


class LoraMethod(_LowRank):
    """LoRA: train a low-rank update A·B beside each frozen target linear layer."""

    type: Literal["lora"] = "lora"
    head_supported = True
    lora_adapter = True
    plain_lora = True
    qlora_variant = True


class DoraMethod(_LowRank):
    """DoRA: LoRA plus a learned per-output magnitude (peft `use_dora=True`)."""

    type: Literal["dora"] = "dora"
    head_supported = True
    lora_adapter = True
    qlora_variant = True

    @property
    def uses_dora(self) -> bool:
        return True


class FullMethod(Method):
    """Full fine-tuning: every parameter trains."""

    type: Literal["full"] = "full"
    trains_all_weights = True
    head_supported = True
    activation_coefficients = (13.0, 4.0, 3.0)


class QloraMethod(_LowRank):
    """QLoRA: the frozen base is loaded quantized by bitsandbytes (4-bit nf4/fp4 or 8-bit), prepared
    with peft's `prepare_model_for_kbit_training`, and a LoRA (or DoRA) adapter trains on top."""

    type: Literal["qlora"] = "qlora"
    zero3_allowed = False
    quantized_base = True
    lora_adapter = True
    bits: Literal[4, 8] = Field(4, description="4 (nf4/fp4 blocks of 64) or 8 (LLM.int8).")
    quant_type: Literal["nf4", "fp4"] | None = Field(None, description="4-bit data type (default nf4). Only with bits: 4.")
    double_quant: bool | None = Field(
        None, description="Quantize the 4-bit block scales too (~0.37 bits/param saved; default true). Only with bits: 4."
    )
    compute_dtype: DType | None = Field(
        None, description="dtype the dequantized weights are multiplied in; default: model.dtype."
    )
    adapter: Literal["lora", "dora"] = Field("lora", description="The adapter trained on the quantized base.")

    @property
    def uses_dora(self) -> bool:
        return self.adapter == "dora"

    @model_validator(mode="before")
    @classmethod
    def _four_bit_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("bits", 4) == 4:
            data.setdefault("quant_type", "nf4")
            data.setdefault("double_quant", True)
            return data
        given = [k for k in ("quant_type", "double_quant") if data.get(k) is not None]
        if given:
            names = " and ".join(f"method.{k}" for k in given)
            raise ValueError(f"{names} only apply to 4-bit quantization, but method.bits is {data.get('bits')}: "
                             f"remove {names}, or set method.bits: 4")
        return data


class Ia3Method(Method):
    """(IA)³: learn a scaling vector per target module (keys, values and feed-forward inputs)."""

    type: Literal["ia3"] = "ia3"
    activation_coefficients = (12.0, 6.0, 0.0)
    target_modules: list[str] | None = _targets_field("Modules whose activations are rescaled.")
    feedforward_modules: list[str] | None = _targets_field(
        "Target modules treated as feed-forward (their input is scaled, not their output).", PHI3_FEEDFORWARD,
        min_length=None)  # none is fine: every target's output is scaled

    @field_validator("target_modules", "feedforward_modules")
    @classmethod
    def _no_empty_names(cls, value: list[str]) -> list[str]:
        return _no_empty(value)

    @model_validator(mode="after")
    def _feedforward_subset(self) -> "Ia3Method":
        conflicts = self.module_conflicts()
        if conflicts:
            raise ValueError(conflicts[0].message)
        return self

    def module_conflicts(self) -> list[Conflict]:
        if self.target_modules is None or self.feedforward_modules is None:
            return []  # checked again when the architecture's defaults are filled in
        extra = [m for m in self.feedforward_modules if m not in self.target_modules]
        if not extra:
            return []
        return [Conflict("method.feedforward_modules", f"method.feedforward_modules must be a subset of "
                         f"method.target_modules: {', '.join(extra)} is not a target module")]


class _PromptLearning(Method):
    own_rows = True
    mergeable = False
    num_virtual_tokens: int = Field(20, ge=1, le=4096, description="Trainable virtual tokens.")


class PromptTuningMethod(_PromptLearning):
    """Prompt tuning: learn `num_virtual_tokens` input embeddings prepended to every sequence."""

    type: Literal["prompt_tuning"] = "prompt_tuning"
    activation_coefficients = (8.0, 3.0, 1.0)
    init: Literal["random", "text"] = Field("random", description="Start from random embeddings or from init_text.")
    init_text: str | None = Field(None, min_length=1, description="Text whose token embeddings start the prompt (init: text).")

    @model_validator(mode="after")
    def _text_init(self) -> "PromptTuningMethod":
        if self.init == "text" and self.init_text is None:
            raise ValueError("method.init: text needs method.init_text (the text to start from)")
        if self.init != "text" and self.init_text is not None:
            raise ValueError("method.init_text is only used with method.init: text (got init: random)")
        return self

    @property
    def input_tokens_added(self) -> int:
        return self.num_virtual_tokens


class PrefixTuningMethod(_PromptLearning):
    """Prefix tuning: learn `num_virtual_tokens` keys and values prepended in every attention layer."""

    type: Literal["prefix_tuning"] = "prefix_tuning"
    checkpointing_allowed = False
    activation_coefficients = (6.5, 3.0, 0.0)
    projection: bool = Field(False, description="Reparameterise the prefix through a 2-layer MLP.")
    projection_hidden: int | None = Field(None, ge=1, description="Hidden size of that MLP (projection: true).")

    @model_validator(mode="after")
    def _projection_width(self) -> "PrefixTuningMethod":
        if self.projection_hidden is not None and not self.projection:
            raise ValueError("method.projection_hidden needs method.projection: true")
        return self


class _Factorised(_RankedUpdate):
    activation_coefficients = (12.5, 4.0, 0.0)
    weight_sized_update = 0.8

    rank_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on rank components during training.")
    module_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Probability of skipping the adapter of a module.")


class LohaMethod(_Factorised):
    """LoHa: the update is the Hadamard product of two low-rank products (peft LoHaConfig)."""

    type: Literal["loha"] = "loha"


class LokrMethod(_Factorised):
    """LoKr: the update is a Kronecker product of a small matrix and a low-rank one (peft LoKrConfig)."""

    type: Literal["lokr"] = "lokr"
    decompose_both: bool = Field(False, description="Also factor the left Kronecker matrix into low rank.")
    decompose_factor: int = Field(-1, description="Kronecker factor size; -1 picks it automatically.")

    @field_validator("decompose_factor")
    @classmethod
    def _factor(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("decompose_factor must be -1 (automatic) or a positive integer")
        return value


# lora, dora, full first: their order is what `type must be one of: ...` lists first.
MethodSpec = Annotated[
    Union[LoraMethod, DoraMethod, FullMethod, QloraMethod, Ia3Method, PromptTuningMethod, PrefixTuningMethod,
          LohaMethod, LokrMethod],
    Field(discriminator="type"),
]


def method_classes() -> dict[str, type[Method]]:
    """Method name (`type`) -> its class, in `MethodSpec` order."""
    return {cls.model_fields["type"].default: cls for cls in typing.get_args(typing.get_args(MethodSpec)[0])}


def method_class(type_name: str) -> type[Method] | None:
    """The method class named `type_name` (e.g. a method name stored in a run folder), or None."""
    return method_classes().get(type_name)


def method_conflicts(recipe) -> list[Conflict]:
    """Combinations of `method` with other sections that cannot work: one `Conflict` each, located at
    the field the fix changes (so its YAML line is shown), the message naming both fields."""
    method, out = recipe.method, []
    if method.own_rows and recipe.train.packing:
        out.append(Conflict("train.packing", f"method.type: {method.type} cannot be combined with train.packing: "
                            "true (virtual tokens are prepended to each row, and packed examples would see each "
                            "other): set train.packing: false"))
    if not method.mergeable and recipe.output.merge:
        out.append(Conflict("output.merge", f"method.type: {method.type} has no weights to fold into the base, "
                            "so output.merge: true is impossible: set output.merge: false"))
    if not method.checkpointing_allowed and recipe.train.gradient_checkpointing:
        out.append(Conflict("train.gradient_checkpointing", f"method.type: {method.type} cannot be combined with "
                            "train.gradient_checkpointing: true (peft passes the prefix as a KV cache, which "
                            "checkpointing drops): set train.gradient_checkpointing: false"))
    deepspeed = getattr(recipe.train, "deepspeed", None)
    if not method.zero3_allowed and deepspeed is not None and deepspeed.stage == 3:
        out.append(Conflict("train.deepspeed.stage", f"method.type: {method.type} cannot be combined with "
                            "train.deepspeed.stage: 3 (ZeRO-3 partitions the bitsandbytes weights it cannot "
                            "quantize): use stage 2, or method.type: lora"))
    return out
