"""Learning-rate schedule and step arithmetic.

The schedule is a pure function of (step, total steps), so a resumed run recomputes exactly the lr
an uninterrupted run would have used; the scheduler's state is just its step counter.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phitune.recipe.sections import TrainSpec


def warmup_steps(spec: "TrainSpec", total_steps: int) -> int:
    if spec.warmup_steps:
        return min(spec.warmup_steps, total_steps)
    return math.ceil(spec.warmup_ratio * total_steps)


def lr_factor(step: int, total_steps: int, warmup: int, kind: str) -> float:
    """Multiplier of the peak lr for optimizer step `step` (0-based).

    Warmup rises linearly to 1 at the last warmup step (the first step does not waste itself at
    lr 0); then cosine/linear decay towards 0 at `total_steps`, or constant.
    """
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    progress = min(1.0, max(0.0, progress))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "linear":
        return 1.0 - progress
    raise ValueError(f"unknown scheduler {kind!r}")


def make_scheduler(optimizer, spec: "TrainSpec", total_steps: int):
    """A LambdaLR over `lr_factor`; its `state_dict` is plain numbers (JSON in checkpoints)."""
    from torch.optim.lr_scheduler import LambdaLR

    warm = warmup_steps(spec, total_steps)
    return LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warm, spec.scheduler))


def total_steps(spec: "TrainSpec", micro_batches_per_epoch: int) -> int:
    """Optimizer steps for the run: `max_steps`, else `epochs` x steps per epoch (rounded up).

    A partial last accumulation window still makes an optimizer step (its loss is normalised by its
    own label-token count), so steps per epoch is a ceiling division.
    """
    if spec.max_steps is not None:
        return spec.max_steps
    per_epoch = steps_per_epoch(micro_batches_per_epoch, spec.grad_accum)
    return max(1, math.ceil(spec.epochs * per_epoch))


def steps_per_epoch(micro_batches_per_epoch: int, grad_accum: int) -> int:
    return max(1, math.ceil(micro_batches_per_epoch / grad_accum))
