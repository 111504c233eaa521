"""What to change when a recipe does not fit: each suggestion is a set of `--set` overrides, and is
only offered if the estimate of the changed recipe fits (so every suggestion is checked, not guessed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from phitune.errors import PhituneError

if TYPE_CHECKING:
    from phitune.estimate.memory import Estimate, Hardware
    from phitune.estimate.shapes import ModelShape
    from phitune.recipe.schema import Recipe


@dataclass(frozen=True)
class Suggestion:
    overrides: tuple[str, ...]
    why: str
    total: float  # estimated bytes per device after the change

    @property
    def command(self) -> str:
        return " ".join(f"--set {o}" for o in self.overrides)


def suggestions(recipe: "Recipe", hardware: "Hardware", est: "Estimate",
                shape_for: Callable[["Recipe"], "ModelShape"], limit: int = 5) -> list[Suggestion]:
    """Changes that make `recipe` fit on `hardware`, least invasive first (at most `limit`)."""
    from phitune.estimate.memory import estimate, fits, max_micro_batch

    out: list[Suggestion] = []
    candidates = _candidates(recipe, hardware, est, shape_for)
    for overrides, why in candidates:
        changed = _changed(recipe, overrides)
        if changed is None:
            continue
        shape = shape_for(changed)
        new = estimate(changed, shape, hardware)
        if fits(new, hardware):
            out.append(Suggestion(tuple(overrides), why, new.total))
        elif len(out) < limit:
            # A smaller micro-batch (with more accumulation) may complete this change.
            b = max_micro_batch(changed, shape, hardware, new)
            if b and b < changed.train.batch_size:
                extra = _smaller_batch(changed, b)
                again = _changed(recipe, overrides + extra)
                if again is not None:
                    total = estimate(again, shape_for(again), hardware)
                    if fits(total, hardware):
                        out.append(Suggestion(tuple(overrides + extra), f"{why}, with micro-batch {b}", total.total))
        if len(out) >= limit:
            break
    return out


def _candidates(recipe: "Recipe", hardware: "Hardware", est: "Estimate", shape_for) -> list[tuple[list[str], str]]:
    from phitune.estimate.memory import max_micro_batch

    train, method = recipe.train, recipe.method
    found: list[tuple[list[str], str]] = []
    b = max_micro_batch(recipe, shape_for(recipe), hardware, est)
    if b and b < train.batch_size:
        found.append((_smaller_batch(recipe, b), f"micro-batch {b} with more accumulation (same effective batch)"))
    if not train.gradient_checkpointing and method.checkpointing_allowed:
        found.append((["train.gradient_checkpointing=true"], "recompute activations in backward (~30% slower)"))
    if method.qlora_variant:
        extra = ["method.adapter=dora"] if method.uses_dora else []
        found.append((["method.type=qlora", *extra], "4-bit nf4 base weights (QLoRA)"))
    if method.trains_all_weights:
        found.append((["method.type=lora"], "train a LoRA adapter instead of every weight"))
    if hardware.device == "gpu" and recipe.model.dtype == "float32":
        found.append((["model.dtype=bfloat16"], "bf16 weights and activations"))
    ds = train.deepspeed
    stage = ds.stage if ds is not None and ds.config is None else (None if ds is not None else 0)
    if stage is not None and hardware.world > 1:
        for higher in range(max(stage + 1, 1), 4):
            found.append(([f"train.deepspeed.stage={higher}"], f"ZeRO stage {higher} across {hardware.world} devices"))
    if stage is not None and hardware.device == "gpu" and not (ds and ds.offload_optimizer):
        found.append(([f"train.deepspeed.stage={max(stage, 1) if hardware.world > 1 else 2}",
                       "train.deepspeed.offload_optimizer=true"], "optimizer states in CPU RAM (ZeRO-Offload)"))
        found.append((["train.deepspeed.stage=3", "train.deepspeed.offload_optimizer=true",
                       "train.deepspeed.offload_params=true"], "parameters and optimizer states in CPU RAM (ZeRO-3)"))
    if train.max_seq_len >= 256:
        found.append(([f"train.max_seq_len={train.max_seq_len // 2}"], "shorter sequences (longer examples become errors)"))
    if not train.gradient_checkpointing and method.checkpointing_allowed:  # then the same, plus checkpointing
        found += [(overrides + ["train.gradient_checkpointing=true"], f"{why}, and gradient checkpointing")
                  for overrides, why in list(found) if any(o.startswith(("train.deepspeed", "method.type"))
                                                           for o in overrides)]
    return found


def _smaller_batch(recipe: "Recipe", batch: int) -> list[str]:
    train = recipe.train
    accum = math.ceil(train.batch_size * train.grad_accum / batch)
    return [f"train.batch_size={batch}", f"train.grad_accum={accum}"]


def _changed(recipe: "Recipe", overrides: list[str]):
    from phitune.recipe.load import load_recipe

    try:
        return load_recipe(recipe.to_dict(), overrides)
    except PhituneError:
        return None  # an invalid combination (e.g. qlora with ZeRO-3) is no suggestion
