"""End-to-end `train()` per method on the tiny Phi-3: the loss falls, only the right weights move,
and every output folder reloads to the very model that finished training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import EXAMPLES

PROBE = "<|user|>\nReview: The battery is excellent.<|end|>\n<|assistant|>\n"


def small_data(tmp_path: Path, n_train: int = 32, n_eval: int = 8) -> tuple[str, str]:
    lines = (EXAMPLES / "data" / "reviews-train.jsonl").read_text().splitlines()
    held = (EXAMPLES / "data" / "reviews-heldout.jsonl").read_text().splitlines()
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    train.write_text("\n".join(lines[:n_train]) + "\n")
    heldout.write_text("\n".join(held[:n_eval]) + "\n")
    return str(train), str(heldout)


def recipe_for(tmp_path: Path, method: dict, **train) -> "object":
    from phitune.recipe.load import load_recipe

    train_file, heldout = small_data(tmp_path)
    return load_recipe({
        "name": "t", "model": "builtin:tiny-phi3", "data": {"train": train_file, "validation": heldout},
        "method": method, "tracking": "none", "output": {"merge": method["type"] != "full"},
        "train": {"max_steps": 8, "batch_size": 8, "lr": 1e-2 if method["type"] != "full" else 2e-3,
                  "max_seq_len": 128, "seed": 1, "eval_every": 4, **train},
    })


class LogitsAtEnd:
    """Callback: the trained model's logits on a probe at the last step (what reloads must match)."""

    def __init__(self, tokenizer):
        self.ids = torch.tensor([tokenizer(PROBE, add_special_tokens=False)["input_ids"]])
        self.logits = None

    def on_step_end(self, info) -> None:
        if info.step == info.total_steps:
            info.model.eval()
            with torch.no_grad():
                self.logits = info.model(input_ids=self.ids).logits.clone()
            info.model.train()


def _logits(model, ids):
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.slow
@pytest.mark.parametrize("method", [{"type": "lora", "r": 8, "alpha": 16}, {"type": "dora", "r": 8, "alpha": 16}])
def test_adapter_methods_train_only_the_adapter_and_reload_exactly(method, tmp_path, tiny_model_dir, tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from phitune.training.run import train

    probe = LogitsAtEnd(tokenizer)
    result = train(recipe_for(tmp_path, method), tmp_path / "run", callbacks=[probe], progress=False)
    run = tmp_path / "run"
    losses = [h["loss"] for h in result.metrics["train_loss_history"]]
    assert len(losses) == 8 and losses[-1] < losses[0] - 1.0, losses
    assert result.metrics["eval_loss_history"][-1]["eval_loss"] < result.metrics["eval_loss_history"][0]["eval_loss"]

    adapter = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().max() > 0 for v in lora_b)  # B starts at zero: it trained
    if method["type"] == "dora":
        assert any("magnitude" in k for k in adapter)
    assert not any("embed_tokens" in k or "layernorm" in k or k.endswith("base_layer.weight") for k in adapter)

    base_sd = load_file(str(tiny_model_dir / "model.safetensors"))
    merged = AutoModelForCausalLM.from_pretrained(run / "merged")
    for name, tensor in merged.state_dict().items():
        if not name.endswith(("qkv_proj.weight", "o_proj.weight", "gate_up_proj.weight", "down_proj.weight")):
            assert torch.equal(tensor, base_sd[name]), f"{name} changed but is not adapted"

    fresh = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run / "adapter")
    torch.testing.assert_close(_logits(fresh, probe.ids), probe.logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(_logits(merged, probe.ids), probe.logits, atol=1e-5, rtol=0)
    assert (run / "merged" / "tokenizer.json").is_file() and (run / "tokenizer" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_full_fine_tuning_writes_a_model_that_reloads(tmp_path, tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from phitune.training.run import train

    probe = LogitsAtEnd(tokenizer)
    result = train(recipe_for(tmp_path, {"type": "full"}), tmp_path / "run", callbacks=[probe], progress=False)
    run = tmp_path / "run"
    losses = [h["loss"] for h in result.metrics["train_loss_history"]]
    assert losses[-1] < losses[0] - 1.0, losses
    assert result.metrics["trainable_params"] == result.metrics["total_params"]
    assert not (run / "adapter").exists() and not (run / "merged").exists()
    model = AutoModelForCausalLM.from_pretrained(run / "model")
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    assert not torch.equal(model.state_dict()["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    torch.testing.assert_close(_logits(model, probe.ids), probe.logits, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_metrics_json_loss_png_and_no_mlruns_with_tracking_none(tmp_path, monkeypatch):
    from phitune.training.run import train

    monkeypatch.chdir(tmp_path)
    recipe = recipe_for(tmp_path, {"type": "lora"}, max_steps=4, packing=True, grad_accum=2)
    result = train(recipe, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("train_loss_history", "eval_loss_history", "train_tokens", "train_runtime_s", "tokens_per_s",
                "trainable_params", "total_params", "peak_rss_mb", "final_train_loss", "final_eval_loss"):
        assert metrics.get(key) is not None, key
    assert metrics["train_tokens"] > 4 * 2 * 38  # non-padding input tokens of 4 steps x 2 micro-batches
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics == result.metrics
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "run" / "resolved_recipe.json").read_text())["recipe"]["train"]["packing"] is True
    assert not list(tmp_path.glob("mlruns*")) and "tracking off" in result.tracking
    assert not list((tmp_path / "run").glob(".*"))  # no temporary folders left behind
