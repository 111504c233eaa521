"""The README's distributed example: `phitune train examples/recipes/tiny-lora.yaml --nproc 2
--set train.deepspeed.stage=3`. That recipe puts LoRA on embed_tokens, whose A/B matrices PEFT keeps in
a ParameterDict; under ZeRO-3 they used to stay partitioned in the forward ("Padding_idx must be within
num_embeddings" on every rank)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import EXAMPLES, REPO, run_cli

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


BUILD_AND_LOAD = """
import os
from phitune.models.tiny import builtin_model_path
from transformers import AutoConfig, AutoModelForCausalLM
path = builtin_model_path("builtin:tiny-phi3")
print(os.stat(path).st_ino, flush=True)  # the folder this rank goes on to read
AutoModelForCausalLM.from_pretrained(path, config=AutoConfig.from_pretrained(path))
"""


def test_ranks_building_the_builtin_model_at_once_all_get_a_whole_model(tmp_path):
    """On a fresh cache every rank of the README's command builds builtin:tiny-phi3 at the same moment: one
    builds, the others wait for it, and no rank's model folder is replaced while it reads it (each rebuild
    used to swap in a new folder under the ranks already loading the previous one)."""
    env = {**os.environ, "PHITUNE_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_AND_LOAD], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [code for code, _, _ in results] == [0, 0, 0], [err[-1500:] for _, _, err in results]
    final = os.stat(tmp_path / "cache" / "models" / "tiny-phi3").st_ino
    assert [int(out) for _, out, _ in results] == [final] * 3
