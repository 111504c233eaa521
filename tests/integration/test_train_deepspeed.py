"""`phitune train RECIPE --nproc 2` with DeepSpeed ZeRO-2 and ZeRO-3 on CPU (gloo), through the real CLI.

Each rank writes the sha256 of every trainable parameter (ZeRO-3 weights gathered) when
PHITUNE_DEBUG_RANK_DIGESTS names a folder; the tests compare those across ranks and with the
consolidated adapter/ or model/ that rank 0 saved.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, run_cli

pytestmark = pytest.mark.slow


def write_recipe(tmp: Path, method: dict, deepspeed: dict, batch_size: int = 4, name: str = "ds") -> Path:
    # group_by_length off: plan(batch 4) taken two at a time is exactly plan(batch 8), so a 2-process
    # run sees the same global batches as one process with batch 8.
    body = {"name": name, "model": "builtin:tiny-phi3", "tracking": "none", "method": method,
            "data": {"train": str(EXAMPLES / "data" / "reviews-train.jsonl"),
                     "validation": str(EXAMPLES / "data" / "reviews-heldout.jsonl")},
            "train": {"max_steps": 4, "batch_size": batch_size, "grad_accum": 2, "max_seq_len": 128, "lr": 5e-3,
                      "save_every": 2, "eval_every": 2, "group_by_length": False, "seed": 3, "deepspeed": deepspeed}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def train_2proc(recipe: Path, out: Path, digests: Path, *extra: str):
    proc = run_cli("train", str(recipe), "--output", str(out), "--nproc", "2", "--no-progress", *extra,
                   cwd=recipe.parent, env={"PHITUNE_DEBUG_RANK_DIGESTS": str(digests)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def rank_digests(folder: Path) -> list[dict]:
    return [json.loads((folder / f"rank-{r}.json").read_text()) for r in (0, 1)]


def sha(tensor) -> str:
    return hashlib.sha256(tensor.float().contiguous().numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def zero2_lora(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("zero2")
    recipe = write_recipe(tmp, {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0}, {"stage": 2})
    proc = train_2proc(recipe, tmp / "run", tmp / "digests")
    return tmp, recipe, proc


def test_zero2_lora_ranks_agree_and_the_adapter_reloads(zero2_lora, tiny_model_dir):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    tmp, _, proc = zero2_lora
    assert "2 processes" in proc.stdout and proc.stdout.count("done: ") == 1  # rank 0 reports, once
    r0, r1 = rank_digests(tmp / "digests")
    assert (r0["world_size"], r0["zero_stage"], r1["rank"]) == (2, 2, 1)
    assert r0["params"] == r1["params"] and len(r0["params"]) == 16  # 2 layers x 4 targets x (A, B)
    saved = load_file(str(tmp / "run" / "adapter" / "adapter_model.safetensors"))
    assert {k: sha(v) for k, v in saved.items()} == {k.replace(".default", ""): v for k, v in r0["params"].items()}
    assert sorted(p.name for p in (tmp / "run").iterdir()) == sorted(
        ["adapter", "checkpoints", "loss.png", "metrics.json", "resolved_recipe.json", "tokenizer"])

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[5, 17, 300, 42, 7, 99]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, tmp / "run" / "adapter")
        after = tuned(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-4  # the trained adapter changes the model


def test_zero2_on_2_processes_equals_one_process_with_twice_the_batch(zero2_lora, tmp_path):
    """Loss normalisation across ranks is exact: same losses, grad norms and weights as batch 8 alone."""
    import torch
    from safetensors.torch import load_file

    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    tmp, recipe, _ = zero2_lora
    single = load_recipe(recipe, overrides=["train.batch_size=8", "train.deepspeed=null"])
    result = train(single, tmp_path / "single", progress=False)
    ranks = json.loads((tmp / "run" / "metrics.json").read_text())
    for key in ("loss", "grad_norm", "lr", "tokens"):
        assert [h[key] for h in ranks["train_loss_history"]] == pytest.approx(
            [h[key] for h in result.metrics["train_loss_history"]], rel=1e-5), key
    assert ranks["final_eval_loss"] == pytest.approx(result.metrics["final_eval_loss"], rel=1e-5)
    a = load_file(str(tmp / "run" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "single" / "adapter" / "adapter_model.safetensors"))
    for name in b:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)


def test_zero2_resume_across_ranks_reaches_the_same_weights(zero2_lora):
    tmp, recipe, _ = zero2_lora
    run = tmp / "run"
    assert (run / "checkpoints" / "step-2" / "deepspeed").is_dir()
    assert sorted(p.name for p in (run / "checkpoints" / "step-2" / "rng").iterdir()) == [
        "rank-0.json", "rank-0.safetensors", "rank-1.json", "rank-1.safetensors"]
    straight = rank_digests(tmp / "digests")[0]["params"]
    (run / "metrics.json").unlink()  # as if the run had died after step 2's checkpoint
    shutil.rmtree(run / "adapter")
    proc = train_2proc(recipe, run, tmp / "digests-resumed", "--resume")
    resumed = rank_digests(tmp / "digests-resumed")
    assert resumed[0]["params"] == resumed[1]["params"] == straight
    assert json.loads((run / "metrics.json").read_text())["steps"] == 4
    assert "done: " in proc.stdout

    other = run_cli("train", str(recipe), "--output", str(run), "--nproc", "2", "--resume", cwd=tmp)
    assert other.returncode == 2 and "already finished" in other.stderr and "Traceback" not in other.stderr


def test_zero3_full_with_offload_consolidates_into_a_normal_model(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    recipe = write_recipe(tmp_path, {"type": "full"}, {"stage": 3, "offload_optimizer": True, "offload_params": True},
                          name="zero3")
    train_2proc(recipe, tmp_path / "run", tmp_path / "digests")
    r0, r1 = rank_digests(tmp_path / "digests")
    assert r0["zero_stage"] == 3 and r0["params"] == r1["params"]
    saved = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert {k: sha(v) for k, v in saved.items()} == {k: r0["params"][k] for k in saved}
    # every rank wrote its own partition of weights and optimizer state
    files = sorted(p.name for p in (tmp_path / "run" / "checkpoints" / "step-2" / "deepspeed").iterdir())
    assert [f for f in files if "optim" in f] == ["zero_pp_rank_0_mp_rank_00_optim_states.pt",
                                                   "zero_pp_rank_1_mp_rank_00_optim_states.pt"]

    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned_sd, base_sd = tuned.state_dict(), base.state_dict()
    assert tuned_sd.keys() == base_sd.keys()
    changed = [k for k in base_sd if not base_sd[k].equal(tuned_sd[k])]
    assert len(changed) > len(base_sd) // 2


def test_offload_params_below_stage_3_is_rejected_before_launching(tmp_path):
    recipe = write_recipe(tmp_path, {"type": "lora"}, {"stage": 2, "offload_params": True})
    proc = run_cli("train", str(recipe), "--output", str(tmp_path / "run"), "--nproc", "2", cwd=tmp_path)
    assert proc.returncode == 2
    assert "train.deepspeed.offload_params" in proc.stderr and "train.deepspeed.stage" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
