"""Peak resident memory of real training steps, measured in a fresh process.

`measure_training_peak(recipe, batch, seq)` writes the resolved recipe to a temp file and runs
`python -m phitune.estimate.measure` on it: load the model through `load_trainable_model` (exactly
what `phitune train` does), then run `steps` optimizer steps on a fixed random batch of `batch` rows
of `seq` tokens, every token a label, with the training loop's loss, optimizer and allocator policy
(phitune.host_memory.training_allocator). The child reports its RSS after imports (the runtime
baseline), after loading the model, and its peak (VmHWM, which counts file-backed pages too), in bytes.
Used by benchmarks/qlora_memory.py, benchmarks/estimate_accuracy.py and the tests; a fresh process
per measurement because a peak can only go up.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def measure_training_peak(recipe, batch: int, seq: int, steps: int = 2, timeout: int = 1800,
                          loop_allocator: bool = True) -> dict:
    """{"baseline_rss", "loaded_rss", "peak_rss", "trainable_params", "losses"} of a fresh training process.

    loop_allocator=False trains without the loop's keep_freed_memory (freed blocks of 1 MB and more
    go back to the OS, phitune.host_memory) whatever the model, to measure what keeping costs."""
    from phitune.errors import Problem, TrainError
    from phitune.recipe.load import write_resolved

    with tempfile.TemporaryDirectory(prefix="phitune-measure-") as tmp:
        path = write_resolved(recipe, Path(tmp) / "resolved_recipe.json")
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run([sys.executable, "-m", "phitune.estimate.measure", str(path), str(batch), str(seq),
                               str(steps), "loop" if loop_allocator else "returned"],
                              capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainError("the measuring process failed", [Problem("measure", tail)])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _child(recipe_path: str, batch: int, seq: int, steps: int, loop_allocator: bool = True) -> dict:
    import torch
    import transformers  # noqa: F401  (the runtime a training process has loaded)
    import peft  # noqa: F401

    from phitune.models.build import load_trainable_model
    from phitune.recipe.load import load_recipe
    from phitune.host_memory import peak_rss_bytes, return_freed_memory_to_os, training_allocator
    from phitune.models.loss import token_loss_sum
    from phitune.training.optim import make_optimizer

    recipe = load_recipe(recipe_path)
    baseline = _rss()
    torch.manual_seed(recipe.train.seed)
    return_freed_memory_to_os()  # what `phitune train` holds from before its model loads (this process ends after)
    model = load_trainable_model(recipe)
    loaded = _rss()
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    rows = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    optimizer = make_optimizer(model, recipe.train)
    losses = []
    with training_allocator(model) if loop_allocator else contextlib.nullcontext():  # what TrainLoop.run trains under
        for _ in range(steps):
            loss, count = token_loss_sum(model, rows)
            (loss / count).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss) / count)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"baseline_rss": baseline, "loaded_rss": loaded, "peak_rss": peak_rss_bytes(), "trainable_params": trainable,
            "losses": losses}


if __name__ == "__main__":
    path, b, s, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(_child(path, b, s, n, loop_allocator=sys.argv[5:6] != ["returned"])))
