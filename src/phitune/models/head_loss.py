"""Cross-entropy of a classifier head (`task.head: classifier`), summed like `token_loss_sum` so
gradient accumulation stays exact.

Examples come from phitune.data.heads with the label ids in `labels` (-100 elsewhere):
- sequence classification: one label per row (on its last prompt token); the model's logits are
  already pooled at the last non-padding token, shape (B, num_labels);
- token classification: a label on the first sub-token of each word; logits (B, T, num_labels),
  scored where the label is set, with no causal shift (a tag belongs to its own token).
Labels never sit at position 0, so `count_targets` (which counts after the causal shift) counts
exactly the labels scored here.
"""

from __future__ import annotations

from phitune.data.records import IGNORE_INDEX


def head_loss_sum(model, batch):
    """(summed cross-entropy over labelled rows or words as a 0-d float32 tensor, label count)."""
    import torch.nn.functional as F

    labels = batch["labels"]
    mask = labels != IGNORE_INDEX
    n = int(mask.sum())
    if n == 0:
        return sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad), 0
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    logits = model(**inputs, use_cache=False).logits
    if logits.dim() == 2:  # pooled: one row per example, the label is the row's only set value
        rows = mask.any(dim=1)
        gold = labels.masked_fill(~mask, 0).sum(dim=1)
        return F.cross_entropy(logits[rows].float(), gold[rows], reduction="sum"), int(rows.sum())
    return F.cross_entropy(logits[mask].float(), labels[mask], reduction="sum"), n
