"""Batch plans (deterministic, complete, low padding when grouped, bounded when packed) and collation,
including proof that padding-free packing keeps examples apart: packed and unpacked losses agree."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from phitune.data import collate, load_examples, padding_tokens, plan_batches
from phitune.data.records import IGNORE_INDEX, Example
from phitune.recipe import load_recipe

REVIEWS = Path(__file__).resolve().parents[2] / "examples" / "data" / "reviews-train.jsonl"


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(10, 500) for _ in range(n)]


def _plan(lengths, epoch=0, seed=3, group=False, packing=False, batch_size=8, max_seq_len=512):
    return plan_batches(lengths, batch_size, seed=seed, epoch=epoch, group_by_length=group, packing=packing,
                        max_seq_len=max_seq_len)


@pytest.mark.parametrize("mode", [dict(), dict(group=True), dict(packing=True)], ids=["random", "grouped", "packed"])
def test_plans_are_deterministic_complete_and_change_per_epoch(mode):
    lengths = _lengths()
    plan = _plan(lengths, **mode)
    assert plan == _plan(lengths, **mode)
    assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))  # every index exactly once
    assert plan != _plan(lengths, epoch=1, **mode)
    assert plan != _plan(lengths, seed=4, **mode)
    if not mode.get("packing"):
        assert all(len(batch) == 8 for batch in plan)  # 1000 = 125 x 8


def test_grouping_cuts_padding_but_keeps_order_random():
    lengths = _lengths()
    random_pad = padding_tokens(lengths, _plan(lengths))
    grouped = _plan(lengths, group=True)
    grouped_pad = padding_tokens(lengths, grouped)
    assert grouped_pad < 0.1 * random_pad, (grouped_pad, random_pad)
    batch_max = [max(lengths[i] for i in batch) for batch in grouped]
    assert batch_max[0] == max(lengths)  # the longest batch first: an OOM shows at step 1
    assert batch_max[1:] != sorted(batch_max[1:], reverse=True)  # the rest is not simply sorted


def test_packing_fills_bins_without_overflow():
    lengths = _lengths()
    plan = _plan(lengths, packing=True, batch_size=4, max_seq_len=512)
    capacity = 4 * 512
    totals = [sum(lengths[i] for i in batch) for batch in plan]
    assert max(totals) <= capacity
    assert len(plan) <= sum(lengths) // capacity + 2  # best-fit-decreasing wastes almost nothing here
    assert _plan([], packing=True) == [] and _plan([]) == []


def test_collate_pads_right_and_masks_padding():
    a = Example([5, 6, 7], [-100, 6, 7], "f:1")
    b = Example([8, 9], [-100, 9], "f:2")
    batch = collate([a, b], pad_id=1, packing=False)
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, 9, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_collate_packed_is_one_row_with_restarting_positions():
    a = Example([5, 6, 7], [5, 6, 7], "f:1")
    b = Example([8, 9], [8, 9], "f:2")
    batch = collate([a, b], pad_id=1, packing=True)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9]]  # no prediction across a boundary
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]


def _summed_token_loss(model, batch):
    import torch
    import torch.nn.functional as F

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits.float()
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), batch["labels"][:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def test_packed_and_unpacked_losses_agree(tiny_model_dir):
    """If any packed example attended to another, its logits (and so the loss) would change."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    recipe = load_recipe({"model": str(tiny_model_dir), "data": {"train": str(REVIEWS)}})
    examples = load_examples(recipe, tokenizer)[0][:6]
    assert len({len(ex) for ex in examples}) > 1  # different lengths, so padding is really exercised
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()

    unpacked = _summed_token_loss(model, collate(examples, tokenizer.pad_token_id, packing=False))
    packed_batch = collate(examples, tokenizer.pad_token_id, packing=True)
    packed = _summed_token_loss(model, packed_batch)
    assert torch.allclose(packed, unpacked, atol=1e-4, rtol=0), (packed.item(), unpacked.item())

    # control: the same row with continuous positions lets examples see each other, and the loss moves
    leaky = dict(packed_batch, position_ids=torch.arange(packed_batch["input_ids"].size(1)).unsqueeze(0))
    assert abs(_summed_token_loss(model, leaky).item() - unpacked.item()) > 1e-2


def test_padding_free_only_when_cheaper():
    from phitune.data.batching import padding_free_is_cheaper

    assert padding_free_is_cheaper([40, 400, 60, 80], width=256)  # mostly padding: concatenating wins
    assert not padding_free_is_cheaper([200, 200, 200, 200], width=256)  # no padding to save
    assert not padding_free_is_cheaper([300], width=256)  # one example: nothing to concatenate
    # long examples, narrow model: dense attention over the concatenation outweighs the padding saved
    assert not padding_free_is_cheaper([2000, 1500, 1800, 1900], width=64)
    assert padding_free_is_cheaper([2000, 300, 500, 400], width=3072)  # Phi-3-mini's width, 60% padding: worth it


def test_collator_picks_the_layout_per_batch_and_never_for_own_row_runs():
    from phitune.data import Collator

    mixed = [Example([5] * n, [5] * n, f"f:{n}") for n in (3, 40, 4, 5)]
    even = [Example([5] * 20, [5] * 20, "f:1"), Example([6] * 20, [6] * 20, "f:2")]
    auto = Collator(pad_id=1, padding_free_width=256)
    assert auto(mixed)["input_ids"].shape == (1, 52) and "position_ids" in auto(mixed)
    assert auto(even)["input_ids"].shape == (2, 20) and "attention_mask" in auto(even)
    assert Collator(pad_id=1)(mixed)["input_ids"].shape == (4, 40)  # width None: heads, prompt learning
    assert Collator(pad_id=1, packing=True)(even)["input_ids"].shape == (1, 40)


@pytest.mark.parametrize("overrides, padding_free", [
    ({}, True),
    ({"method": {"type": "prompt_tuning"}}, False),
    ({"task": {"type": "classification", "head": "classifier"}}, False),
])
def test_training_runs_go_padding_free_unless_each_example_needs_its_own_row(overrides, padding_free, tiny_model_dir):
    from transformers import AutoConfig

    from phitune.training.run import make_collator

    class Model:  # make_collator reads only the config's width
        config = AutoConfig.from_pretrained(tiny_model_dir)

    recipe = load_recipe({"data": {"train": str(REVIEWS)}, **overrides})
    collator = make_collator(recipe, 0, Model())
    assert (collator.padding_free_width == Model.config.hidden_size) is padding_free and not collator.packing
