"""Per-example attention for padding-free rows (models/segment_attention.py): the same logits as each
example run on its own, no attention across examples, and the masked path wherever it must apply."""

from __future__ import annotations

import pytest
import torch

from phitune.data.batching import collate
from phitune.data.records import Example


@pytest.fixture(scope="module")
def models(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from phitune.models.segment_attention import NAME, use_segment_attention

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    segmented = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert use_segment_attention(segmented) and segmented.config._attn_implementation == NAME
    return plain, segmented


def _examples():
    g = torch.Generator().manual_seed(0)
    return [Example(ids, ids, f"f:{i}") for i, ids in
            enumerate(torch.randint(5, 1000, (n,), generator=g).tolist() for n in (7, 19, 3, 12))]


def test_a_padding_free_row_gives_each_example_its_own_logits(models):
    plain, segmented = models
    examples = _examples()
    row = collate(examples, 0, packing=True)
    with torch.no_grad():
        packed = segmented(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False).logits[0]
        alone = torch.cat([plain(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0] for ex in examples])
        dense = plain(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False).logits[0]
        # control: continuous positions make it one sequence, whose logits differ from the examples'
        leaky = segmented(input_ids=row["input_ids"], use_cache=False).logits[0]
    assert torch.allclose(packed, alone, atol=1e-5)
    assert torch.allclose(dense, alone, atol=1e-5)  # transformers' masked path agrees
    assert (leaky - alone).abs().max() > 1e-2


def test_padded_batches_and_generation_take_the_masked_path(models):
    plain, segmented = models
    batch = collate(_examples(), 0, packing=False)
    with torch.no_grad():
        a = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        b = segmented(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        prompt = torch.tensor([_examples()[1].input_ids])
        gen_plain = plain.generate(prompt, max_new_tokens=6, do_sample=False)
        gen_segmented = segmented.generate(prompt, max_new_tokens=6, do_sample=False)
    real = batch["attention_mask"].bool()
    assert torch.allclose(a[real], b[real], atol=1e-5)
    assert torch.equal(gen_plain, gen_segmented)


def test_an_example_longer_than_the_sliding_window_falls_back_to_the_mask(models, monkeypatch):
    import transformers.integrations.sdpa_attention as hf_sdpa

    _, segmented = models
    row = collate(_examples(), 0, packing=True)
    seen = []

    original = hf_sdpa.sdpa_attention_forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("sliding_window"))
        return original(*args, **kwargs)

    monkeypatch.setattr(hf_sdpa, "sdpa_attention_forward", spy)
    with torch.no_grad():
        segmented(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False)
        assert not seen  # no window: every layer ran per example
        monkeypatch.setattr(segmented.config, "sliding_window", 8)  # the 12- and 19-token examples exceed it
        segmented(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False)
    assert seen and all(w == 8 for w in seen)


def test_peft_and_training_see_the_switch(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from phitune.models.adapters import apply_method
    from phitune.models.segment_attention import attends_per_example, use_segment_attention
    from phitune.recipe import load_recipe

    model = apply_method(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                         load_recipe({"data": {"train": "t"}}).method)
    assert not attends_per_example(model)
    assert use_segment_attention(model) and attends_per_example(model)


@pytest.mark.parametrize("overrides, chosen", [({}, True), ({"method": {"type": "prompt_tuning"}}, False)])
def test_training_chooses_the_attention_when_the_model_loads_and_the_collator_only_reads_it(overrides, chosen,
                                                                                             tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from phitune.models.segment_attention import attends_per_example
    from phitune.recipe import load_recipe
    from phitune.training.run import choose_attention, make_collator

    recipe = load_recipe({"data": {"train": "t"}, **overrides})
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not make_collator(recipe, 0, model).per_example_attention and not attends_per_example(model)
    assert choose_attention(model, recipe) is chosen and attends_per_example(model) is chosen
    assert make_collator(recipe, 0, model).per_example_attention is chosen
