"""Token cross-entropy computed by phitune, not by the model.

Why not `model(labels=...)`: the model would average per micro-batch, which makes gradient
accumulation inexact when micro-batches hold different numbers of learned tokens. We return the
*sum* over learned tokens and the caller divides by the label-token count of the whole
accumulation window. And we ask the model for logits only where a label is learned
(`logits_to_keep` as a boolean mask): on chat data most positions are prompt, and the vocabulary
projection is the most expensive matmul of a small model.
"""

from __future__ import annotations

import inspect

IGNORE_INDEX = -100
_SUPPORTS_MASK: dict[type, bool] = {}


def target_mask(labels):
    """Boolean (B, T): position t is scored when token t+1 is a learned label (causal shift)."""
    import torch

    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask


def count_targets(batch) -> int:
    """Learned tokens in a collated batch, after the causal shift."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def model_inputs(batch) -> dict:
    """Everything the model's forward takes: padded batches carry attention_mask, packed rows
    carry position_ids (so packed examples never attend to each other, with use_cache=False)."""
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}


def token_loss_sum(model, batch):
    """(sum of token cross-entropy over learned labels as a 0-d float32 tensor, label count)."""
    import torch
    import torch.nn.functional as F

    labels = batch["labels"]
    mask = target_mask(labels)
    targets = labels[:, 1:][mask[:, :-1]]
    n = int(targets.numel())
    if n == 0:
        # Nothing learned here: a zero that still belongs to the graph, so backward() is harmless.
        return sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad), 0
    if _supports_mask(model):
        logits = model(**model_inputs(batch), use_cache=False, logits_to_keep=mask).logits
        if logits.dim() == 3:  # a model that ignored the mask: select the scored positions ourselves
            logits = logits[mask]
    else:
        logits = model(**model_inputs(batch), use_cache=False).logits[mask]
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss, n


def _supports_mask(model) -> bool:
    """Does the underlying HF model accept a tensor `logits_to_keep`? (transformers 5 causal LMs do.)"""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cls = type(base)
    if cls not in _SUPPORTS_MASK:
        params = inspect.signature(cls.forward).parameters
        _SUPPORTS_MASK[cls] = "logits_to_keep" in params
    return _SUPPORTS_MASK[cls]


def evaluate_loss(model, batches) -> tuple[float | None, int]:
    """Mean token loss over collated batches (no grad, eval mode restored by the caller)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            loss, n = token_loss_sum(model, batch)
            total += float(loss)
            count += n
    return (total / count if count else None), count
