"""The genai builder's LM-head collision: detection and the exact MLP widening (fast, no builder run)."""

from __future__ import annotations

import pytest
import torch
from transformers import Phi3Config, Phi3ForCausalLM

from phitune.errors import ExportError
from phitune.export.builder_defect import check_collisions, find_collisions, pad_mlp_state_dict, padded_model


def _phi3(vocab: int, hidden: int = 64, intermediate: int = 128) -> Phi3ForCausalLM:
    torch.manual_seed(0)
    config = Phi3Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                        tie_word_embeddings=False, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    return Phi3ForCausalLM(config).eval()


def test_no_collision_when_widths_differ_from_vocab():
    collisions, padded = check_collisions(_phi3(vocab=320))
    assert collisions == [] and padded is None


def test_mlp_width_equal_to_vocab_is_found_and_widened_exactly():
    model = _phi3(vocab=128, intermediate=128)  # gate_up_proj is split into two Linears of width 128
    collisions, padded = check_collisions(model)
    assert [c.module for c in collisions] == [f"model.layers.{i}.mlp.gate_up_proj (split into gate_proj/up_proj)"
                                              for i in range(2)]
    assert padded == 192 and padded != model.config.vocab_size and 2 * padded != model.config.vocab_size
    wide = padded_model(model, padded)
    assert wide.config.intermediate_size == 192 and find_collisions(wide) == []
    ids = torch.randint(0, 128, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, wide(ids).logits)  # zero units add exactly nothing


def test_fused_gate_up_width_equal_to_vocab_is_widened():
    collisions, padded = check_collisions(_phi3(vocab=256, intermediate=128))  # gate_up_proj.out_features == 256
    assert [c.module for c in collisions] == ["model.layers.0.mlp.gate_up_proj", "model.layers.1.mlp.gate_up_proj"]
    assert padded == 192


def test_attention_width_equal_to_vocab_is_refused_with_a_fix():
    with pytest.raises(ExportError) as err:
        check_collisions(_phi3(vocab=64, hidden=64))  # o_proj and the split q/k/v are 64 wide
    text = str(err.value)
    assert "model.layers.0.self_attn.o_proj" in text and "resize_token_embeddings" in text


def test_lora_weights_are_widened_like_the_model():
    state = {
        "base_model.model.model.layers.0.mlp.gate_up_proj.lora_B.weight": torch.arange(8.0).reshape(4, 2),
        "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight": torch.ones(2, 2),
        "base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight": torch.ones(2, 64),
    }
    out = pad_mlp_state_dict(state, width=2, padded=3)
    gate_up = out["base_model.model.model.layers.0.mlp.gate_up_proj.lora_B.weight"]
    assert gate_up.tolist() == [[0, 1], [2, 3], [0, 0], [4, 5], [6, 7], [0, 0]]
    assert out["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"].tolist() == [[1, 1, 0], [1, 1, 0]]
    assert out["base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight"].shape == (2, 64)
