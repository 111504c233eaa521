"""`method:` — how the weights are adapted. A union discriminated on `type`, so a recipe cannot
ask for an invalid mix (there is no `use_peft` / `use_dora` / `load_in_4bit` boolean to combine).

Add a method by adding a class here and to `MethodSpec`; `phitune.models.adapters` turns it into a
PEFT config.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator

from phitune.recipe.base import Section

# Phi-3 fuses q/k/v and gate/up into single projections.
PHI3_LORA_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


class _LowRank(Section):
    r: int = Field(8, ge=1, le=1024, description="Rank of the low-rank update.")
    alpha: float = Field(16.0, gt=0, description="Scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(PHI3_LORA_TARGETS),
        min_length=1,
        description="Module name suffixes to adapt; default is the Phi-3 preset.",
    )
    bias: Literal["none", "all", "lora_only"] = "none"

    @field_validator("target_modules")
    @classmethod
    def _no_empty_names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("target_modules contains an empty name")
        return value


class LoraMethod(_LowRank):
    """LoRA: train a low-rank update A·B beside each frozen target linear layer."""

    type: Literal["lora"] = "lora"


class DoraMethod(_LowRank):
    """DoRA: LoRA plus a learned per-output magnitude (peft `use_dora=True`)."""

    type: Literal["dora"] = "dora"


class FullMethod(Section):
    """Full fine-tuning: every parameter trains."""

    type: Literal["full"] = "full"


MethodSpec = Annotated[Union[LoraMethod, DoraMethod, FullMethod], Field(discriminator="type")]
