"""SIGTERM (Azure ML preemption, Kubernetes, docker stop) stops `phitune train` like Ctrl-C: the step
finishes, a checkpoint is written, the message says how to resume, and the exit code is 143 (130 for
SIGINT). One process and a 2-process DeepSpeed run, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, run_cli



def write_recipe(tmp: Path, max_steps: int, **train) -> Path:
    body = {"name": "signals", "model": "builtin:tiny-phi3", "tracking": "none",
            "data": {"train": str(EXAMPLES / "data" / "reviews-train.jsonl")},
            "method": {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"max_steps": max_steps, "batch_size": 4, "lr": 1e-2, "max_seq_len": 128, "seed": 0,
                      "group_by_length": False, **train}}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def start_and_signal(argv: list[str], cwd: Path, log: Path, sig: int, after_step: int = 2) -> tuple[int, str]:
    """Start `phitune ARGV` (progress bar on, stderr to `log`), send `sig` once the bar shows
    `after_step` steps done, and return (exit code, stderr)."""
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "phitune.cli", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=err)
        deadline = time.monotonic() + 300
        try:
            while True:
                steps = [int(m) for m in re.findall(r"\| *(\d+)/\d+ \[", log.read_text(errors="replace"))]
                if steps and max(steps) >= after_step:
                    break
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "training did not start"
                time.sleep(0.05)
            proc.send_signal(sig)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, log.read_text()


def stopped_step(stderr: str) -> int:
    match = re.search(r"training interrupted at step (\d+) of", stderr)
    assert match, stderr[-3000:]
    return int(match.group(1))


@pytest.mark.slow
def test_sigterm_checkpoints_exits_143_and_the_run_resumes(tmp_path):
    recipe = write_recipe(tmp_path, max_steps=30)
    run = tmp_path / "run"
    code, err = start_and_signal(["train", str(recipe), "--output", str(run)], tmp_path, tmp_path / "err.log",
                                 signal.SIGTERM)
    assert code == 143, err[-3000:]
    step = stopped_step(err)
    assert "stopped by SIGTERM" in err and f"--output {run}" in err and "--resume" in err and "Traceback" not in err
    state = json.loads((run / "checkpoints" / f"step-{step}" / "trainer_state.json").read_text())
    assert state["global_step"] == step and 2 <= step < 30

    resumed = run_cli("train", str(recipe), "--output", str(run), "--resume", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 30 and len(metrics["train_loss_history"]) == 30


@pytest.mark.slow
def test_sigint_still_exits_130(tmp_path):
    recipe = write_recipe(tmp_path, max_steps=30)
    code, err = start_and_signal(["train", str(recipe), "--output", str(tmp_path / "run")], tmp_path,
                                 tmp_path / "err.log", signal.SIGINT)
    assert code == 130 and "stopped by SIGINT" in err, err[-3000:]
    assert (tmp_path / "run" / "checkpoints" / f"step-{stopped_step(err)}" / "trainer_state.json").is_file()


@pytest.mark.slow
def test_sigterm_stops_every_deepspeed_rank_after_the_same_step_with_a_checkpoint(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, max_steps=20, deepspeed={"stage": 2})
    run = tmp_path / "run"
    code, err = start_and_signal(["train", str(recipe), "--output", str(run), "--nproc", "2"], tmp_path,
                                 tmp_path / "err.log", signal.SIGTERM)
    assert code == 143, err[-3000:]
    step = stopped_step(err)
    saved = run / "checkpoints" / f"step-{step}"
    assert json.loads((saved / "trainer_state.json").read_text())["global_step"] == step
    assert sorted(p.name for p in (saved / "rng").iterdir()) == [
        "rank-0.json", "rank-0.safetensors", "rank-1.json", "rank-1.safetensors"]
    assert "--nproc 2" in err and "--resume" in err

    resumed = run_cli("train", str(recipe), "--output", str(run), "--nproc", "2", "--resume", "--no-progress",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["steps"] == 20


class SigtermDuringStep:
    """Callback: arms a forward hook so that SIGTERM reaches this process in the middle of step `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, info) -> None:
        if info.step == self.step - 1:
            import os

            def send(module, args):
                handle.remove()
                os.kill(os.getpid(), signal.SIGTERM)

            handle = info.model.register_forward_pre_hook(send)


def test_sigterm_mid_step_finishes_that_step_then_checkpoints(tmp_path):
    from phitune.errors import TrainingInterrupted
    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    recipe = load_recipe(write_recipe(tmp_path, max_steps=6))
    with pytest.raises(TrainingInterrupted) as stopped:
        train(recipe, tmp_path / "run", callbacks=[SigtermDuringStep(3)], progress=False)
    assert stopped.value.exit_code == 143 and "stopped by SIGTERM" in str(stopped.value)
    assert stopped_step(str(stopped.value)) == 3  # the step the signal arrived in was completed
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and len(state["history"]) == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after the run
