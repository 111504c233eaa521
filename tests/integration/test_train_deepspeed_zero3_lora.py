"""The README's distributed example: `phitune train examples/recipes/tiny-lora.yaml --nproc 2
--set train.deepspeed.stage=3`. That recipe puts LoRA on embed_tokens, whose A/B matrices PEFT keeps in
a ParameterDict; under ZeRO-3 they used to stay partitioned in the forward ("Padding_idx must be within
num_embeddings" on every rank)."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import EXAMPLES, run_cli

pytestmark = pytest.mark.slow


def sha(tensor) -> str:
    return hashlib.sha256(tensor.float().contiguous().numpy().tobytes()).hexdigest()


def test_readme_zero3_example_trains_lora_on_embed_tokens(tmp_path, tiny_model_dir):  # built once, before the ranks
    from safetensors.torch import load_file

    out, digests = tmp_path / "run", tmp_path / "digests"
    proc = run_cli("train", str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--output", str(out), "--nproc", "2",
                   "--set", "train.deepspeed.stage=3", "--set", "train.max_steps=4", "--set", "tracking=none",
                   "--set", "eval.before_after=false", "--no-progress", cwd=tmp_path,
                   env={"PHITUNE_DEBUG_RANK_DIGESTS": str(digests)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Padding_idx" not in proc.stderr and "Traceback" not in proc.stderr
    r0, r1 = (json.loads((digests / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert r0["zero_stage"] == 3 and r0["params"] == r1["params"]  # both ranks hold the same trained weights
    embed = {k: v for k, v in r0["params"].items() if "embed_tokens.lora_embedding" in k}
    assert len(embed) == 2  # lora_embedding_A and _B trained (and gathered) under ZeRO-3

    saved = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    for name, digest in embed.items():
        assert sha(saved[name.replace(".default", "")]) == digest, name
    assert saved["base_model.model.model.embed_tokens.lora_embedding_B"].abs().sum() > 0  # B starts at zero
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
