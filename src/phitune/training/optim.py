"""AdamW over the trainable parameters only (frozen base weights get no optimizer state: for LoRA
that is most of the memory saving).

Weight decay applies to matrices, not to biases and norm scales: decaying a LayerNorm gain toward 0
is never what anyone wants, and it is what HF Trainer and TRL do too. `param_groups` is the one
place that split is made: the single-process optimizer and the DeepSpeed engine both take it.
"""

from __future__ import annotations


def param_groups(model, weight_decay: float) -> list[dict]:
    """The trainable parameters in two optimizer groups: matrices with `weight_decay`, the rest
    (biases, norm scales) without; the second group only when there is such a parameter."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model, spec):
    import torch

    return torch.optim.AdamW(param_groups(model, spec.weight_decay), lr=spec.lr, betas=(0.9, 0.999), eps=1e-8)
