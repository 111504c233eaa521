"""A packed batch is re-laid as several rows before the forward (attention costs row length squared):
same loss, count and gradients as the unpacked batch, and examples still never see each other."""

from __future__ import annotations

import random

import pytest
import torch

from phitune.data.batching import collate
from phitune.data.records import IGNORE_INDEX, Example
from phitune.models.loss import count_targets, packed_rows, token_loss_sum


@pytest.fixture(scope="module")
def tiny():
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    cfg = Phi3Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=4, pad_token_id=0, rope_scaling=None)
    return Phi3ForCausalLM(cfg)


def _examples(n=9, seed=0):
    rng = random.Random(seed)
    out = []
    for k in range(n):
        length = rng.randint(3, 20)
        ids = [rng.randrange(1, 96) for _ in range(length)]
        prompt = rng.randint(1, length - 1)
        out.append(Example(ids, [IGNORE_INDEX] * prompt + ids[prompt:], f"f:{k}"))
    return out


def test_packed_rows_are_as_wide_as_the_longest_example_and_keep_every_token():
    examples = _examples()
    packed = collate(examples, pad_id=0, packing=True)
    rows = packed_rows(packed)
    longest = max(len(e) for e in examples)
    assert rows["input_ids"].size(1) == longest and rows["input_ids"].size(0) > 1
    real = rows["labels"] != IGNORE_INDEX
    assert sorted(rows["input_ids"][real].tolist()) == sorted(packed["input_ids"][packed["labels"] != IGNORE_INDEX].tolist())
    assert count_targets(rows) == count_targets(packed)
    starts = int((rows["position_ids"] == 0).sum())
    assert starts >= len(examples)  # every example restarts at 0 (padding tails are segments of their own)


def test_unpacked_batches_and_short_packed_rows_are_left_alone():
    examples = _examples()
    padded = collate(examples, pad_id=0, packing=False)
    assert packed_rows(padded) is padded
    long, short = Example(list(range(1, 11)), list(range(1, 11)), "f:1"), Example([4, 5, 6], [4, 5, 6], "f:2")
    two = collate([long, short], pad_id=0, packing=True)  # 13 tokens: no second row of 10 would help
    assert packed_rows(two) is two


def test_packed_loss_and_gradients_equal_unpacked(tiny):
    examples = _examples()

    def run(batch):
        tiny.zero_grad()
        loss, n = token_loss_sum(tiny, batch)
        (loss / n).backward()
        return loss.detach(), n, [p.grad.clone() for p in tiny.parameters() if p.grad is not None]

    unpacked = run(collate(examples, pad_id=0, packing=False))
    packed = run(collate(examples, pad_id=0, packing=True))
    assert packed[1] == unpacked[1]
    torch.testing.assert_close(packed[0], unpacked[0], atol=1e-4, rtol=1e-5)
    for a, b in zip(packed[2], unpacked[2]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)

    # control: positions that run on across examples let them see each other, and the loss moves
    batch = collate(examples, pad_id=0, packing=True)
    leaky = dict(batch, position_ids=torch.arange(batch["input_ids"].size(1)).unsqueeze(0))
    assert abs(token_loss_sum(tiny, leaky)[0].item() - unpacked[0].item()) > 1e-2
