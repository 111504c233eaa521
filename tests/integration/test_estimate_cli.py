"""`phitune estimate` as a user runs it: a model known only by its config.json (no weights), the
hardware flags, `--params` for a hub id that cannot be read offline, and bad input."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

# Phi-3-mini-4k-instruct's architecture: 3,821,079,552 parameters.
PHI3_MINI = {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072,
             "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32064, "max_position_embeddings": 4096,
             "original_max_position_embeddings": 4096, "rope_scaling": None, "tie_word_embeddings": False,
             "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000}


def write_recipe(tmp_path, method: str, model: str, **train) -> str:
    folder = tmp_path / "phi3-mini"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(PHI3_MINI))
    path = tmp_path / "recipe.yaml"
    train_yaml = ", ".join(f"{k}: {v}" for k, v in {"batch_size": 4, "max_seq_len": 2048, **train}.items())
    path.write_text(f"data: {{train: t.jsonl}}\nmodel: {{name: {model or folder}, dtype: bfloat16}}\n"
                    f"method: {{type: {method}}}\ntrain: {{{train_yaml}}}\n")
    return str(path)


@pytest.mark.slow
def test_full_fine_tuning_of_phi3_mini_on_24gb_gpus_does_not_fit_and_every_suggestion_does(tmp_path):
    proc = run_cli("estimate", write_recipe(tmp_path, "full", ""), "--gpu-memory", "24", "--gpus", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["total_params"] == 3_821_079_552 and out["trainable_params"] == out["total_params"]
    parts = out["per_device_gb"]
    assert parts["weights"] == pytest.approx(2 * 3.821079552) and parts["optimizer"] == pytest.approx(4 * 3.821079552)
    assert out["fits"] is False and out["max_micro_batch"] == 0
    assert out["suggestions"] and all(s["total_gb"] <= 24 for s in out["suggestions"])
    assert any("method.type=lora" in s["set"] for s in out["suggestions"])

    text = run_cli("estimate", write_recipe(tmp_path, "qlora", ""), "--gpu-memory", "24", "--gpus", "4",
                   "--set", "train.batch_size=1")
    assert text.returncode == 0, text.stderr
    assert "fits: " in text.stdout and "qlora nf4 double-quant + lora r=8" in text.stdout
    assert "largest micro-batch that fits:" in text.stdout


@pytest.mark.slow
def test_params_stands_in_for_an_unreadable_hub_model_and_bad_values_are_errors(tmp_path):
    recipe = write_recipe(tmp_path, "full", "some-org/not-cached-model", batch_size=1)
    proc = run_cli("estimate", recipe, "--params", "7.5B", "--gpu-memory", "32", "--gpus", "8", "--nodes", "8",
                   "--set", "train.deepspeed.stage=3", "--json", env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    parts = out["per_device_gb"]
    assert round(parts["weights"] + parts["gradients"] + parts["optimizer"], 1) == 1.9  # the ZeRO paper's stage 3
    assert parts["activations"] is None and any("activations unknown" in n for n in out["notes"])

    missing = run_cli("estimate", recipe, env={"HF_HUB_OFFLINE": "1"})
    assert missing.returncode == 2 and "pass --params N" in missing.stderr
    bad = run_cli("estimate", recipe, "--params", "lots")
    assert bad.returncode == 2 and "--params: cannot read 'lots'" in bad.stderr
    assert "Traceback" not in bad.stderr + missing.stderr
