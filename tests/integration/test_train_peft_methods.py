"""Every method beyond LoRA/DoRA/full trains end to end through `train()` on the tiny Phi-3: the
held-out loss falls, only adapter weights are saved, and base + adapter/ reloads to the very model
that finished training (QLoRA: onto a freshly quantized base)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from test_train_methods import LogitsAtEnd, small_data

# method, its lr, the peft_type written in adapter_config.json, a key every adapter file must hold
CASES = [
    ({"type": "qlora"}, 1e-2, "LORA", "lora_B"),
    ({"type": "qlora", "quant_type": "fp4", "double_quant": False, "adapter": "dora"}, 1e-2, "LORA", "magnitude"),
    ({"type": "qlora", "bits": 8}, 1e-2, "LORA", "lora_B"),
    ({"type": "ia3"}, 5e-2, "IA3", "ia3_l"),
    ({"type": "prompt_tuning", "num_virtual_tokens": 8}, 1e-1, "PROMPT_TUNING", "prompt_embeddings"),
    ({"type": "prompt_tuning", "num_virtual_tokens": 8, "init": "text", "init_text": "Classify the review."},
     1e-1, "PROMPT_TUNING", "prompt_embeddings"),
    ({"type": "prefix_tuning", "num_virtual_tokens": 8}, 1e-2, "PREFIX_TUNING", "prompt_embeddings"),
    ({"type": "loha", "r": 4}, 1e-2, "LOHA", "hada_w1_a"),
    ({"type": "lokr", "r": 4}, 1e-2, "LOKR", "lokr_w1"),
]


def recipe_for(tmp_path, method: dict, lr: float, merge: bool = False):
    from phitune.recipe.load import load_recipe

    train_file, heldout = small_data(tmp_path, n_train=16, n_eval=4)
    return load_recipe({
        "name": "t", "model": "builtin:tiny-phi3", "data": {"train": train_file, "validation": heldout},
        "method": method, "tracking": "none", "output": {"merge": merge},
        "train": {"max_steps": 4, "batch_size": 4, "lr": lr, "max_seq_len": 128, "seed": 1, "eval_every": 1},
    })


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.slow
@pytest.mark.parametrize("method,lr,peft_type,adapter_key", CASES,
                         ids=["qlora-nf4", "qlora-fp4-dora", "qlora-int8", "ia3", "prompt-tuning", "prompt-tuning-text",
                              "prefix-tuning", "loha", "lokr"])
def test_method_trains_end_to_end_and_its_adapter_reloads(method, lr, peft_type, adapter_key, tmp_path, tokenizer):
    from peft import PeftModel

    from phitune.models.build import load_base_for_method
    from phitune.training.run import train

    recipe = recipe_for(tmp_path, method, lr)
    probe = LogitsAtEnd(tokenizer)
    result = train(recipe, tmp_path / "run", callbacks=[probe], progress=False)
    evals = [e["eval_loss"] for e in result.metrics["eval_loss_history"]]
    assert len(evals) == 4 and evals[-1] < evals[0], evals
    assert 0 < result.metrics["trainable_params"] < result.metrics["total_params"] / 5

    adapter_dir = tmp_path / "run" / "adapter"
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["peft_type"] == peft_type
    saved = load_file(str(adapter_dir / "adapter_model.safetensors"))
    assert any(adapter_key in k for k in saved), list(saved)[:5]
    assert not any("embed_tokens" in k or "layernorm" in k or k.endswith("base_layer.weight") for k in saved)
    assert sum(t.numel() for t in saved.values()) == result.metrics["trainable_params"]

    base = load_base_for_method(recipe)  # QLoRA: quantized again, exactly as for training
    if recipe.method.type == "qlora":
        from phitune.models.quantize import keep_trainable_layout

        keep_trainable_layout(base)  # the kernels training used (the CPU inference kernel rounds differently)
    reloaded = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        logits = reloaded(input_ids=probe.ids).logits
    tokens = probe.ids.shape[1]  # prompt tuning's reloaded model also returns its virtual positions
    torch.testing.assert_close(logits[:, -tokens:], probe.logits, atol=1e-5, rtol=0)


def test_prompt_tuning_logits_line_up_with_the_input_tokens(tiny_model_dir):
    """The phitune loss asks for label positions with a boolean mask shaped like input_ids."""
    from phitune.models.adapters import apply_method
    from phitune.models.loader import load_base_model
    from phitune.recipe.load import load_recipe

    recipe = load_recipe({"data": {"train": "t"}, "method": {"type": "prompt_tuning", "num_virtual_tokens": 5}})
    model = apply_method(load_base_model(recipe.model), recipe.method).eval()
    ids = torch.randint(10, 500, (2, 9))
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, 4:8] = True
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        kept = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=mask).logits
    assert full.shape[:2] == (2, 9)
    torch.testing.assert_close(kept, full[mask])


def test_qlora_on_a_full_precision_base_is_refused(tiny_model_dir):
    from phitune.errors import ModelError
    from phitune.models.adapters import apply_method
    from phitune.models.loader import load_base_model
    from phitune.recipe.load import load_recipe

    recipe = load_recipe({"data": {"train": "t"}, "method": {"type": "qlora"}})
    with pytest.raises(ModelError, match="method qlora needs a quantized base model"):
        apply_method(load_base_model(recipe.model), recipe.method)


@pytest.mark.slow
def test_qlora_gradients_do_not_change_after_an_evaluation_pass():
    """bitsandbytes repacks 4-bit weights for inference on AVX512-BF16 CPUs; training after an
    evaluation must still backpropagate through the same weights (phitune turns the repacking off)."""
    from phitune.models.build import load_trainable_model
    from phitune.recipe.load import load_recipe

    model = load_trainable_model(load_recipe({"data": {"train": "t"}, "method": {"type": "qlora"}}))
    ids = torch.randint(10, 2000, (2, 12), generator=torch.Generator().manual_seed(0))

    def gradients():
        model.train()
        model.zero_grad()
        torch.manual_seed(0)  # same LoRA dropout masks
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    before = gradients()
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    after = gradients()
    for name, grad in before.items():
        torch.testing.assert_close(after[name], grad, atol=0, rtol=0, msg=name)


@pytest.mark.slow
def test_qlora_merge_folds_the_adapter_into_the_full_precision_base(tmp_path, tiny_model_dir, tokenizer):
    """merged/ of a QLoRA run is a plain model (no bitsandbytes) equal to full-precision base + adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from phitune.training.run import train

    train(recipe_for(tmp_path, {"type": "qlora"}, 1e-2, merge=True), tmp_path / "run", progress=False)
    merged_dir = tmp_path / "run" / "merged"
    assert "quantization_config" not in json.loads((merged_dir / "config.json").read_text())
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                         tmp_path / "run" / "adapter").eval()
    ids = torch.tensor([tokenizer("<|user|>\nReview: Great.<|end|>\n<|assistant|>\n")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, unmerged(input_ids=ids).logits, atol=1e-5, rtol=0)
    assert type(merged.model.layers[0].mlp.down_proj).__name__ == "Linear"
