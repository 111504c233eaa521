"""Batching: which examples go together (`plan_batches`) and how they become tensors (`collate`).

Plans are plain lists of example indices, a pure function of (lengths, seed, epoch), so a resumed run
replays exactly the same batches and distributed ranks can agree on them without communicating.

- random: a seeded permutation cut into batches.
- group_by_length (like HF's LengthGroupedSampler): shuffle, cut into mega-chunks of 50 batches,
  sort each chunk by length, cut into batches, shuffle the batch order. Padding drops to a few percent
  while the order stays random. The batch holding the longest example goes first, so an out-of-memory
  shows up at step 1 rather than hours in.
- packing: best-fit-decreasing bins of at most batch_size * max_seq_len tokens; one bin is one batch,
  collated padding-free into a single row (see `collate`).

Without packing, a batch still goes padding-free (`Collator`) when that costs less compute than
padded rows and the recipe allows it: same examples, same loss (tests/unit/test_train_packed_rows.py),
no padding. That is why random batches are the default: length grouping cuts padding too, but its
batches are less random, and it measured a higher held-out loss (benchmarks/train_throughput.py).
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from phitune.data.records import IGNORE_INDEX

if TYPE_CHECKING:
    import torch

    from phitune.data.records import Example

MEGABATCH_MULT = 50


def plan_batches(lengths: list[int], batch_size: int, *, seed: int, epoch: int, group_by_length: bool,
                 packing: bool, max_seq_len: int) -> list[list[int]]:
    """Deterministic batches of example indices for one epoch; every index appears exactly once."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(f"phitune-batches:{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if packing:
        batches = _pack(order, lengths, batch_size * max_seq_len)
        rng.shuffle(batches)
        return batches
    if not group_by_length:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mega = batch_size * MEGABATCH_MULT
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    if batches:
        longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches.insert(0, batches.pop(longest))
    return batches


def _pack(order: list[int], lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: each example (longest first) goes into the open bin with the least room
    that still fits it. `order` (already shuffled) breaks ties, so equal-length examples are packed
    with different neighbours each epoch. O(n log n) with a sorted list of (room, bin)."""
    items = sorted(order, key=lambda i: lengths[i], reverse=True)  # stable: ties keep the shuffled order
    bins: list[list[int]] = []
    rooms: list[tuple[int, int]] = []  # sorted (remaining capacity, bin number)
    for i in items:
        size = lengths[i]
        k = bisect.bisect_left(rooms, (size, -1))
        if k == len(rooms):
            bins.append([i])
            room = capacity - size
            bin_no = len(bins) - 1
        else:
            room, bin_no = rooms.pop(k)
            bins[bin_no].append(i)
            room -= size
        if room > 0:
            bisect.insort(rooms, (room, bin_no))
    return bins


@dataclass(frozen=True)
class Collator:
    """Tensors for one batch of a training run: one padding-free row when `packing` is set, or when
    `padding_free_width` (the model's hidden size) is given and `padding_free_is_cheaper`; else
    padded rows. None means the run cannot go padding-free (heads, prompt learning).
    `per_example_attention`: the model attends within each example of a row
    (models/segment_attention.py) instead of densely over the whole row."""

    pad_id: int
    packing: bool = False
    padding_free_width: int | None = None
    per_example_attention: bool = False

    def __call__(self, examples: list["Example"]) -> dict[str, "torch.Tensor"]:
        return collate(examples, self.pad_id, packing=self.padding_free([len(ex.input_ids) for ex in examples]))

    def padding_free(self, lengths: list[int]) -> bool:
        """Whether a batch of examples of these lengths becomes one padding-free row."""
        return self.packing or (self.padding_free_width is not None and padding_free_is_cheaper(
            lengths, self.padding_free_width, self.per_example_attention))


def padding_free_is_cheaper(lengths: list[int], width: int, per_example_attention: bool = False) -> bool:
    """Whether one padding-free row of examples of these lengths costs less compute than padded rows.

    A sequence of n positions costs about n x (1 + n / (8 x width)): per position ~32 x width² FLOPs
    of linear layers (Phi-3 shapes) plus 4 x n x width of attention. With per-example attention a
    padding-free row costs the sum of its examples' costs, so it wins whenever there is padding.
    Without it, attention is dense over the whole row (transformers masks the other examples out, it
    does not skip them), so a few long examples are cheaper padded than concatenated."""
    if len(lengths) < 2:
        return False
    total, longest = sum(lengths), max(lengths)
    padded = len(lengths) * longest * (1 + longest / (8 * width))
    if per_example_attention:
        return sum(n * (1 + n / (8 * width)) for n in lengths) < padded
    return total * (1 + total / (8 * width)) < padded


def collate(examples: list["Example"], pad_id: int, *, packing: bool) -> dict[str, "torch.Tensor"]:
    """Tensors for one batch. Every key except "labels" goes straight into `model(**batch)`.

    Not packed: right-padded `input_ids`, `labels` (-100 on padding), `attention_mask`; shape [B, T].
    Packed (padding-free): one row [1, total] with `input_ids`, `labels` and `position_ids` that
    restart at 0 for each example, and no attention_mask: transformers then builds a block-diagonal
    mask from the position ids (needs use_cache=False), so no example attends to another. The first
    label of every example is -100, so the last token of one example never learns to predict the
    first token of the next.
    """
    import torch

    if not examples:
        raise ValueError("collate needs at least one example")
    if packing:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for ex in examples:
            input_ids.extend(ex.input_ids)
            labels.append(IGNORE_INDEX)
            labels.extend(ex.labels[1:])
            positions.extend(range(len(ex.input_ids)))
        return {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
        }
    width = max(len(ex.input_ids) for ex in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels_t = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids, dtype=torch.long)
        labels_t[row, :n] = torch.tensor(ex.labels, dtype=torch.long)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels_t, "attention_mask": mask}
