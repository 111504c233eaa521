"""Interrupt (the real Ctrl-C path: KeyboardInterrupt raised inside the loop by a callback), resume,
and reproducibility: a resumed run ends with the same weights as one that never stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from phitune.errors import TrainError, TrainingInterrupted
from test_train_methods import small_data


def resume_recipe(tmp_path: Path, **train):
    from phitune.recipe.load import load_recipe

    train_file, heldout = small_data(tmp_path, n_train=20, n_eval=4)
    # 20 examples / batch 4 = 5 micro-batches per epoch; grad_accum 2 -> 3 steps per epoch (the last
    # window is short), so 6 steps cross an epoch boundary. Dropout makes the RNG state matter.
    return load_recipe({
        "name": "resume", "model": "builtin:tiny-phi3", "data": {"train": train_file, "validation": heldout},
        "method": {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.1}, "tracking": "none",
        "train": {"max_steps": 6, "save_every": 3, "eval_every": 2, "batch_size": 4, "grad_accum": 2, "lr": 5e-3,
                  "warmup_steps": 2, "scheduler": "cosine", "max_seq_len": 128, "seed": 7, **train},
    })


class InterruptAt:
    """Raises KeyboardInterrupt after optimizer step `step`, exactly like Ctrl-C there."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, info) -> None:
        if info.step == self.step:
            raise KeyboardInterrupt


def adapter(run: Path) -> dict:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    from phitune.training.run import train

    tmp = tmp_path_factory.mktemp("straight")
    train(resume_recipe(tmp), tmp / "run", progress=False)
    return tmp / "run"


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_reaches_the_same_weights(uninterrupted, tmp_path):
    from phitune.training.run import train

    recipe = resume_recipe(tmp_path)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        train(recipe, run, callbacks=[InterruptAt(4)], progress=False)
    assert info.value.exit_code == 130
    assert "--resume" in str(info.value) and "step 4 of 6" in str(info.value)
    assert (run / "checkpoints" / "step-3" / "trainer_state.json").is_file()  # save_every
    assert (run / "checkpoints" / "step-4" / "trainer_state.json").is_file()  # written by the interrupt
    assert not (run / "metrics.json").exists()

    with pytest.raises(TrainError, match="unfinished run"):
        train(recipe, run, progress=False)  # starting over would destroy the checkpoints

    result = train(recipe, run, resume=True, progress=False)
    assert result.metrics["steps"] == 6
    history = json.loads((uninterrupted / "metrics.json").read_text())["train_loss_history"]
    assert [h["loss"] for h in result.metrics["train_loss_history"]] == pytest.approx([h["loss"] for h in history])
    straight, resumed = adapter(uninterrupted), adapter(run)
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_resume_from_an_earlier_checkpoint_and_same_seed_give_identical_weights(uninterrupted, tmp_path):
    """Resuming from the save_every checkpoint (step 3, mid-epoch data position) also matches, and two
    runs with one seed are identical."""
    import shutil

    from phitune.training.run import train

    recipe = resume_recipe(tmp_path)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(recipe, run, callbacks=[InterruptAt(5)], progress=False)
    shutil.rmtree(run / "checkpoints" / "step-5")  # as if Ctrl-C had come before the interrupt checkpoint
    train(recipe, run, resume=True, progress=False)
    for name, tensor in adapter(uninterrupted).items():
        torch.testing.assert_close(adapter(run)[name], tensor, atol=1e-6, rtol=0)

    again = tmp_path / "again"
    train(recipe, again, progress=False)
    for name, tensor in adapter(uninterrupted).items():
        assert torch.equal(adapter(again)[name], tensor), name


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    from phitune.training.run import train

    with pytest.raises(TrainError, match="nothing to resume"):
        train(resume_recipe(tmp_path), tmp_path / "empty", resume=True, progress=False)


@pytest.mark.slow
def test_resume_with_different_training_settings_is_refused(tmp_path):
    from phitune.training.run import train

    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(resume_recipe(tmp_path), run, callbacks=[InterruptAt(1)], progress=False)
    with pytest.raises(TrainError) as info:
        train(resume_recipe(tmp_path, lr=1e-3), run, resume=True, progress=False)
    assert "train.lr" in str(info.value)
    train(resume_recipe(tmp_path, eval_every=3), run, resume=True, progress=False)  # eval cadence may change
    assert (run / "metrics.json").is_file()


@pytest.mark.slow
def test_a_resumed_run_continues_its_mlflow_run(tmp_path, mlflow_uri):
    """The interrupted run's checkpoint names its tracked run; resuming logs the remaining steps there."""
    from mlflow.tracking import MlflowClient

    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    body = resume_recipe(tmp_path).model_dump(mode="json", exclude_none=True)
    recipe = load_recipe({**body, "tracking": {"backend": "mlflow", "experiment": "resume-continues"},
                          "train": {**body["train"], "log_every": 1}})
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(recipe, run, callbacks=[InterruptAt(4)], progress=False)
    saved = json.loads((run / "checkpoints" / "step-4" / "trainer_state.json").read_text())["extra"]["tracking_run_id"]
    assert saved

    result = train(recipe, run, resume=True, progress=False)
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("resume-continues").experiment_id])
    assert [r.info.run_id for r in runs] == [saved] == [result.tracking_run_id]
    assert runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(saved, "train_loss")] == [1, 2, 3, 4, 5, 6]
