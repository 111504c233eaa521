"""Nothing lost: what `phitune train` does with an existing run folder (replace only with --overwrite,
only once the new run is complete), the run-folder lock, readers refusing unfinished runs, corrupt
checkpoints, unwritable or full output filesystems, and the umask. The CLI runs for real (a
subprocess, or `phitune.cli.main` in-process where no signal or kill is involved)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli
from test_train_methods import small_data


def write_recipe(tmp: Path, name: str = "recipe.yaml", train_file: str | None = None, **train) -> Path:
    data, heldout = small_data(tmp, n_train=16, n_eval=4)
    body = {"name": "safety", "model": "builtin:tiny-phi3", "tracking": "none",
            "data": {"train": train_file or data, "validation": heldout},
            "method": {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"max_steps": 3, "batch_size": 8, "lr": 1e-2, "max_seq_len": 128, "seed": 0, **train}}
    path = tmp / name
    path.write_text(yaml.safe_dump(body))
    return path


def snapshot(run: Path) -> dict[str, str]:
    """sha256 of every file of a run folder, by relative path (not the lock file, which a killed run
    leaves behind: the next run reuses it)."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".phitune.lock"}


def cli(capsys, *args: str) -> tuple[int, str]:
    """`phitune ARGS` in this process (fast: torch is already imported); (exit code, stderr)."""
    from phitune.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("finished")
    recipe = write_recipe(tmp, save_every=1)
    proc = run_cli("train", str(recipe), "--output", str(tmp / "run"), "--no-progress", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp, tmp / "run"


# --- item 1: replacing a finished run --------------------------------------------------------------


@pytest.mark.slow
def test_a_finished_run_is_replaced_only_with_overwrite_and_only_once_the_new_run_is_complete(finished_run, tmp_path):
    import shutil

    tmp, run = tmp_path, tmp_path / "run"
    shutil.copytree(finished_run[1], run)  # this test replaces it: a copy, so other tests keep the original
    before = snapshot(run)
    recipe = write_recipe(tmp)

    again = run_cli("train", str(recipe), "--output", str(run), "--no-progress", cwd=tmp)
    assert again.returncode == 2 and "holds a finished run" in again.stderr and "--overwrite" in again.stderr
    assert snapshot(run) == before

    bad = tmp / "bad.jsonl"
    lines = Path(tmp / "train.jsonl").read_text().splitlines()
    bad.write_text("\n".join(lines[:2] + ['{"messages": [{"role": "user", "content": "no answer"}]}'] + lines[2:]) + "\n")
    bad_recipe = write_recipe(tmp, "bad.yaml", train_file=str(bad))
    failed = run_cli("train", str(bad_recipe), "--output", str(run), "--overwrite", "--no-progress", cwd=tmp)
    assert failed.returncode == 2 and f"{bad}:3" in failed.stderr and "Traceback" not in failed.stderr
    assert snapshot(run) == before  # every check ran before anything in the folder was touched

    # kill -9 while the replacement trains: the finished run is still the one there
    long = write_recipe(tmp, "long.yaml", max_steps=5000, save_every=1)
    proc = subprocess.Popen([sys.executable, "-m", "phitune.cli", "train", str(long), "--output", str(run),
                             "--overwrite", "--no-progress"], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp / ".run.overwrite"
    try:
        deadline = time.monotonic() + 120
        while not (staging / "checkpoints" / "step-2").is_dir():
            assert proc.poll() is None and time.monotonic() < deadline, "the replacing run did not start training"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert snapshot(run) == before

    replaced = run_cli("train", str(write_recipe(tmp, "seed1.yaml", seed=1)), "--output", str(run), "--overwrite",
                       "--no-progress", cwd=tmp)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((run / "metrics.json").read_text())["outputs"]["adapter"] == str(run / "adapter")
    assert snapshot(run)["adapter/adapter_model.safetensors"] != before["adapter/adapter_model.safetensors"]
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []  # no staging or lock left
    assert sorted(p.name for p in run.iterdir()) == ["adapter", "loss.png", "metrics.json", "resolved_recipe.json",
                                                     "tokenizer"]  # the new run's files only (no checkpoints)


def test_a_failing_run_leaves_no_output_folder(tmp_path):
    from phitune.errors import DataError
    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    recipe = load_recipe(write_recipe(tmp_path, train_file=str(bad)))
    with pytest.raises(DataError):
        train(recipe, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# --- item 2: the lock ------------------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from pathlib import Path
from phitune.training.run_folder import open_run_folder
folder = open_run_folder(Path(sys.argv[1]), resume=False, overwrite=False)
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(tmp_path, capsys):
    from phitune.training.run_folder import open_run_folder

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = cli(capsys, "train", str(write_recipe(tmp_path)), "--output", str(run), "--no-progress")
        assert code == 2 and f"in use by another run (PID {holder.pid})" in err
        assert not (run / "resolved_recipe.json").exists()
    finally:
        holder.kill()  # kill -9: the OS releases the lock
        holder.wait()
    open_run_folder(run, resume=False, overwrite=False).release()  # free again


# --- item 3: readers refuse unfinished runs -------------------------------------------------------


@pytest.mark.slow
def test_every_reader_refuses_an_unfinished_run(finished_run, tmp_path, capsys):
    import shutil

    tmp, done = finished_run
    killed = tmp_path / "killed"  # killed after adapter/ was written but before metrics.json
    shutil.copytree(done, killed)
    (killed / "metrics.json").unlink()
    only_checkpoints = tmp_path / "ckpt-only"
    shutil.copytree(done / "checkpoints", only_checkpoints / "checkpoints")
    data = str(tmp / "heldout.jsonl")
    for run in (killed, only_checkpoints):
        for args in (["generate", str(run), "--prompt", "hi"], ["eval", str(run), "--data", data],
                     ["export", str(run), "--onnx", "--no-progress"], ["serve", str(run), "--port", "0"],
                     ["deploy", str(run), "--serverless", "x"]):
            code, err = cli(capsys, *args)
            assert code == 2, (args, err)
            assert "unfinished run: resume with phitune train" in err and f"--output {run} --resume" in err, (args, err)
            assert "huggingface" not in err.lower() and "Traceback" not in err
    code, err = cli(capsys, "generate", str(done), "--prompt", "hi", "--max-new-tokens", "2")
    assert code == 0, err


def test_an_interrupted_replacement_resumes_and_then_replaces(tmp_path):
    from phitune.errors import TrainingInterrupted
    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    run = tmp_path / "run"
    train(load_recipe(write_recipe(tmp_path, "old.yaml")), run, progress=False)
    old = snapshot(run)
    new = load_recipe(write_recipe(tmp_path, "new.yaml", seed=5, max_steps=4, save_every=1))
    with pytest.raises(TrainingInterrupted) as stopped:
        train(new, run, overwrite=True, callbacks=[InterruptAt(2)], progress=False)
    assert f"--output {run} --resume" in str(stopped.value)
    assert snapshot(run) == old  # the finished run is still there, untouched
    result = train(new, run, resume=True, progress=False)
    assert result.output_dir == run and result.metrics["steps"] == 4
    assert snapshot(run)["adapter/adapter_model.safetensors"] != old["adapter/adapter_model.safetensors"]
    assert not (tmp_path / ".run.overwrite").exists()


# --- item 5: corrupt checkpoints and leftovers -----------------------------------------------------


class InterruptAt:
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, info) -> None:
        if info.step == self.step:
            raise KeyboardInterrupt


def test_resume_skips_a_truncated_checkpoint_and_cleans_half_written_ones(tmp_path, caplog):
    from safetensors.torch import load_file

    from phitune.errors import TrainingInterrupted
    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    recipe = load_recipe(write_recipe(tmp_path, max_steps=4, save_every=1))
    straight = train(recipe, tmp_path / "straight", progress=False).output_dir
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(recipe, run, callbacks=[InterruptAt(3)], progress=False)
    weights = run / "checkpoints" / "step-3" / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated, as by a full disk
    (run / "checkpoints" / ".step-4.k2j3h4").mkdir()  # a checkpoint write killed half way
    (run / ".adapter.x8y9").mkdir()
    (run / ".metrics.json.tmp-999").write_text("{")

    with caplog.at_level("WARNING", logger="phitune.training"):
        result = train(recipe, run, resume=True, progress=False)
    assert "skipping checkpoint" in caplog.text and "step-3" in caplog.text and "truncated" in caplog.text
    assert result.metrics["steps"] == 4
    a, b = load_file(str(run / "adapter" / "adapter_model.safetensors")), \
        load_file(str(straight / "adapter" / "adapter_model.safetensors"))
    assert all((a[k] - b[k]).abs().max() <= 1e-6 for k in b)  # resumed from step 2: same weights
    leftovers = [p.name for p in [*run.iterdir(), *(run / "checkpoints").iterdir()] if p.name.startswith(".")]
    assert leftovers == []


# --- item 6: unwritable and full output filesystems ------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (the real ENOSPC / EROFS), unmounted afterwards."""
    mounts = []

    def mount(name: str, size: str, readonly: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        opts = f"size={size}" + (",ro" if readonly else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], check=True)
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_unusable_outputs_are_one_message_each(tmp_path, tmpfs, capsys):
    recipe = str(write_recipe(tmp_path))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = {
        str(a_file): "is a file",
        str(a_file / "run"): "is a file, not a folder",
        str(tmpfs("ro", "1m", readonly=True) / "run"): "read-only",
    }
    for output, message in cases.items():
        code, err = cli(capsys, "train", recipe, "--output", output, "--no-progress")
        assert code == 2 and message in err and "Traceback" not in err, (output, err)
        assert err.count("error:") == 1
    assert a_file.read_text() == "x"
    code, err = cli(capsys, "train", recipe, "--output", str(tmp_path / "run"), "--resume", "--overwrite")
    assert code == 2 and "contradict" in err and not (tmp_path / "run").exists()


def test_a_full_disk_during_a_checkpoint_is_one_message_and_leaves_valid_checkpoints(tmp_path, tmpfs, capsys):
    from phitune.training.checkpoint import checkpoint_problem

    disk = tmpfs("small", "400k")  # room for the recipe and two checkpoints (~160 KB each), not three
    recipe = str(write_recipe(tmp_path, max_steps=10, save_every=1))
    code, err = cli(capsys, "train", recipe, "--output", str(disk / "run"), "--no-progress")
    assert code == 2 and "no space left on device" in err and "checkpoint step-3" in err and "Traceback" not in err
    run = disk / "run"
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert saved == ["step-1", "step-2"]  # no half-written step-3 folder
    assert all(checkpoint_problem(run / "checkpoints" / s) is None for s in saved)
    assert not (run / "metrics.json").exists() and not [p for p in run.iterdir() if p.name.startswith(".")]


# --- item 7: the umask ------------------------------------------------------------------------------


def test_outputs_follow_the_umask(tmp_path):
    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    recipe = load_recipe(write_recipe(tmp_path, max_steps=2, save_every=1))
    old = os.umask(0o027)
    try:
        run = train(recipe, tmp_path / "run", progress=False).output_dir
    finally:
        os.umask(old)
    modes = {str(p.relative_to(run)): p.stat().st_mode & 0o777 for p in [run, *run.rglob("*")]}
    wrong = {k: oct(m) for k, m in modes.items() if m != (0o750 if (run / k).is_dir() else 0o640)}
    assert wrong == {}
    assert "adapter/adapter_model.safetensors" in modes and "checkpoints/step-1/trainable.safetensors" in modes


def test_tiny_model_folder_follows_the_umask(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        code, err = cli(capsys, "tiny-model", str(tmp_path / "tiny"))
    finally:
        os.umask(old)
    assert code == 0, err
    out = tmp_path / "tiny"
    modes = {p.name: p.stat().st_mode & 0o777 for p in [out, *out.iterdir()]}
    assert modes["tiny"] == 0o750 and modes["model.safetensors"] == 0o640
    assert set(modes.values()) == {0o750, 0o640}
