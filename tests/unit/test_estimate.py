"""Estimator arithmetic: the ZeRO paper's closed-form numbers, the LoRA/QLoRA terms, activations,
the largest micro-batch, and suggestions that really fit."""

from __future__ import annotations

import pytest

from phitune.estimate import zero as z
from phitune.estimate.memory import Hardware, estimate, fits, max_micro_batch
from phitune.estimate.shapes import Linear, ModelShape
from phitune.recipe import load_recipe

GB = 1e9
PAPER = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}  # ZeRO paper, Figure 1: 7.5 B params on 64 devices


def recipe(*overrides: str):
    return load_recipe({"data": {"train": "t.jsonl"}, "model": {"name": "builtin:tiny-phi3", "dtype": "bfloat16"},
                        "train": {"batch_size": 1, "max_seq_len": 2048}}, list(overrides))


# An architecture like Phi-3-mini (3.82 B params), written out so the test needs no config file.
def phi3_mini(trainable: int | None = None, params: int = 3_821_079_552) -> ModelShape:
    h, inter, layers, vocab = 3072, 8192, 32, 32064
    per_layer = [Linear("qkv_proj", h, 3 * h), Linear("o_proj", h, h), Linear("gate_up_proj", h, 2 * inter),
                 Linear("down_proj", inter, h)]
    quantizable = layers * sum(lin.in_features * lin.out_features for lin in per_layer)
    return ModelShape(name="phi-3-mini", total_params=params, trainable_params=trainable, hidden=h, layers=layers,
                      heads=32, intermediate=inter, vocab=vocab, quantizable_params=quantizable,
                      quantized_rows=layers * sum(lin.out_features for lin in per_layer),
                      largest_layer_params=113_252_352, adapted=tuple(per_layer * layers))


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_zero_paper_closed_form_numbers(stage):
    assert round(z.zero_paper_bytes(7.5e9, 64, stage) / GB, 1) == PAPER[stage]


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_full_fine_tuning_model_states_match_the_paper_through_the_recipe(stage):
    r = recipe("method.type=full", f"train.deepspeed.stage={stage}")
    est = estimate(r, ModelShape.from_params("7.5B", int(7.5e9), r), Hardware("gpu", 80 * GB, gpus=8, nodes=8))
    assert est.devices == 64 and est.precision == "bf16"
    assert round((est.weights + est.gradients + est.optimizer) / GB, 1) == PAPER[stage]
    assert est.activations is None and any("activations unknown" in n for n in est.notes)


def test_offload_moves_optimizer_and_parameters_to_cpu_ram():
    r = recipe("method.type=full", "train.deepspeed.stage=3", "train.deepspeed.offload_optimizer=true",
               "train.deepspeed.offload_params=true")
    est = estimate(r, ModelShape.from_params("7.5B", int(7.5e9), r), Hardware("gpu", 80 * GB, gpus=8, nodes=8))
    assert est.optimizer == 0 and est.weights == 0
    assert est.offloaded == pytest.approx((12 + 2) * 7.5e9 / 64)
    assert est.gradients == pytest.approx(2 * 7.5e9 / 64)


def test_without_deepspeed_torch_adamw_keeps_moments_in_the_weight_dtype():
    r = recipe("method.type=full", "model.dtype=float32")
    est = estimate(r, ModelShape.from_params("1B", 10**9, r), Hardware("cpu", 64 * GB))
    assert (est.weights, est.gradients, est.optimizer) == (4e9, 4e9, 8e9)  # 4 + 4 + 2 x 4 bytes


def test_lora_states_are_the_frozen_base_plus_16_bytes_per_adapter_parameter():
    shape = phi3_mini(trainable=4_456_448)
    est = estimate(recipe(), shape, Hardware("gpu", 80 * GB))
    assert est.weights == pytest.approx(shape.total_params * 2 + 4_456_448 * 4)  # bf16 base + fp32 adapter
    assert est.gradients == pytest.approx(4_456_448 * 4) and est.optimizer == pytest.approx(4_456_448 * 8)


def test_qlora_base_is_nf4_with_quantization_constants_and_fp32_rest():
    shape = phi3_mini(trainable=4_456_448)
    lora = estimate(recipe(), shape, Hardware("gpu", 80 * GB))
    qlora = estimate(recipe("method.type=qlora"), shape, Hardware("gpu", 80 * GB))
    rest = shape.total_params - shape.quantizable_params
    per_param = 0.5 + 1 / 64 + 4 / (64 * 256)  # nf4 + 8-bit absmax per 64 + fp32 per 256 blocks
    assert qlora.weights == pytest.approx(shape.quantizable_params * per_param + rest * 4 + 4_456_448 * 4)
    assert qlora.weights < 0.35 * lora.weights
    single = estimate(recipe("method.type=qlora", "method.double_quant=false"), shape, Hardware("gpu", 80 * GB))
    assert single.weights - qlora.weights == pytest.approx(shape.quantizable_params * (4 / 64 - 1 / 64 - 4 / 16384))
    int8 = estimate(recipe("method.type=qlora", "method.bits=8"), shape, Hardware("gpu", 80 * GB))
    assert int8.weights == pytest.approx(shape.quantizable_params + shape.quantized_rows * 4 + rest * 4 + 4_456_448 * 4)


def test_activations_scale_with_batch_and_checkpointing_keeps_only_layer_inputs():
    shape = phi3_mini(trainable=4_456_448)
    hw = Hardware("gpu", 80 * GB)
    one = estimate(recipe("train.batch_size=1"), shape, hw)
    four = estimate(recipe("train.batch_size=4"), shape, hw)
    assert four.activations == pytest.approx(4 * one.activations)
    ckpt = estimate(recipe("train.batch_size=4", "train.gradient_checkpointing=true"), shape, hw)
    assert ckpt.activations < four.activations / 5
    # LoRA on Phi-3-mini, 2048 tokens, bf16: 32 layers x (14 h + 5 I) x 2 bytes per token dominates
    per_token_layers = 32 * (14 * 3072 + 5 * 8192) * 2
    assert per_token_layers * 2048 < one.activations < 1.5 * per_token_layers * 2048


def test_largest_micro_batch_fits_and_one_more_does_not():
    shape = phi3_mini(trainable=4_456_448)
    hw = Hardware("gpu", 24 * GB)
    best = max_micro_batch(recipe(), shape, hw, estimate(recipe(), shape, hw))
    assert best >= 1
    assert fits(estimate(recipe(f"train.batch_size={best}"), shape, hw), hw)
    assert not fits(estimate(recipe(f"train.batch_size={best + 1}"), shape, hw), hw)


def test_suggestions_for_a_recipe_that_does_not_fit_all_fit_when_applied():
    from phitune.estimate.advice import suggestions

    hw = Hardware("gpu", 24 * GB, gpus=4)
    r = recipe("method.type=full", "train.batch_size=8")

    def shape_for(rec):
        return phi3_mini(trainable=3_821_079_552 if rec.method.type == "full" else 4_456_448)

    est = estimate(r, shape_for(r), hw)
    assert not fits(est, hw)
    found = suggestions(r, hw, est, shape_for)
    assert found, "a 3.8 B model on 4 x 24 GB can be made to fit"
    for s in found:
        changed = load_recipe(r.to_dict(), list(s.overrides))
        again = estimate(changed, shape_for(changed), hw)
        assert fits(again, hw) and again.total == pytest.approx(s.total)
    assert any("train.deepspeed.stage=3" in s.overrides for s in found) or \
        any("method.type=lora" in s.overrides for s in found)


def test_cpu_budget_is_shared_by_the_processes_of_a_node():
    r = recipe("method.type=full", "model.dtype=float32")
    shape = ModelShape.from_params("1B", 10**9, r)
    assert fits(estimate(r, shape, Hardware("cpu", 20 * GB, gpus=1)), Hardware("cpu", 20 * GB, gpus=1))
    assert not fits(estimate(r, shape, Hardware("cpu", 20 * GB, gpus=2)), Hardware("cpu", 20 * GB, gpus=2))
