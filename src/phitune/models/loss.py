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

from phitune.data.records import IGNORE_INDEX  # noqa: F401  (the one definition; callers also import it from here)
from phitune.models import base_of
from phitune.models.heads import is_head_model
from phitune.models.segment_attention import attends_per_example

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

    if is_head_model(model):  # task.head: classifier: the head's cross-entropy, not the LM's
        from phitune.models.head_loss import head_loss_sum

        return head_loss_sum(model, batch)
    if not attends_per_example(model):  # per-example attention: one long row costs no more than several
        batch = packed_rows(batch)
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


def packed_rows(batch):
    """A packed batch (one row, position ids restarting per example, no attention_mask) laid out as
    several rows as wide as its longest example, first-fit decreasing; other batches unchanged.

    Why: examples in a packed row never attend to each other, but attention still costs the row
    length squared: a bin of 8 x 512 tokens is one 4096-token row, 8-10x the attention of the
    same examples in rows of their own size (measured 2-2.5x slower steps on the tiny model). Same
    tokens, labels and position ids per example, so the loss and its count are unchanged. Padding
    after the examples is its own segment (positions restart at 0) and has no labels.
    """
    import torch

    positions = batch.get("position_ids")
    if positions is None or "attention_mask" in batch or positions.size(0) != 1:
        return batch
    total = positions.size(1)
    starts = (positions[0] == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:  # not laid out by `collate(packing=True)`: leave it alone
        return batch
    spans = list(zip(starts, starts[1:] + [total]))
    width = max(end - start for start, end in spans)
    if total < 2 * width:
        return batch
    rows: list[list[tuple[int, int]]] = []
    room: list[int] = []
    for start, end in sorted(spans, key=lambda s: s[0] - s[1]):  # longest first
        free = next((r for r, left in enumerate(room) if end - start <= left), None)
        if free is None:
            rows.append([])
            room.append(width)
            free = len(rows) - 1
        rows[free].append((start, end))
        room[free] -= end - start
    index = torch.zeros((len(rows), width), dtype=torch.long)
    real = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, row in enumerate(rows):
        flat = torch.cat([torch.arange(start, end) for start, end in row])
        index[r, : len(flat)] = flat
        real[r, : len(flat)] = True
    return {
        "input_ids": batch["input_ids"][0][index].masked_fill(~real, 0),
        "labels": batch["labels"][0][index].masked_fill(~real, IGNORE_INDEX),
        "position_ids": torch.where(real, positions[0][index], (~real).long().cumsum(1) - 1),
    }


def _supports_mask(model) -> bool:
    """Does the underlying HF model accept a tensor `logits_to_keep`? (transformers 5 causal LMs do.)"""
    base = base_of(model)
    cls = type(base)
    if cls not in _SUPPORTS_MASK:
        params = inspect.signature(cls.forward).parameters
        _SUPPORTS_MASK[cls] = "logits_to_keep" in params
    return _SUPPORTS_MASK[cls]


def evaluate_loss(model, batches) -> tuple[float | None, int]:
    """Mean token loss over collated batches (no grad, eval mode restored by the caller)."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            loss, n = token_loss_sum(model, to_device(batch, device))
            total += float(loss)
            count += n
    return (total / count if count else None), count


def to_device(batch: dict, device) -> dict:
    """A collated batch on `device` (a no-op on the CPU, which is where collate builds it)."""
    if device is None or device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
