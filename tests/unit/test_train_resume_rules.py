"""What a resume may change, and what an interrupted run tells the user (phitune.training.resume)."""

from __future__ import annotations

from pathlib import Path

import pytest

from phitune.errors import TrainError
from phitune.recipe import load_recipe
from phitune.training.backend import SingleProcess
from phitune.training.resume import check_same_training, fingerprint, interrupted_error


def test_only_settings_that_do_not_change_the_weights_may_change_on_resume():
    recipe = load_recipe({"data": {"train": "t"}})
    saved = fingerprint(recipe)
    check_same_training(saved, load_recipe({"data": {"train": "t"}, "train": {"save_every": 7}, "name": "other"}),
                        Path("ckpt"))
    with pytest.raises(TrainError) as err:
        check_same_training(saved, load_recipe({"data": {"train": "t"}, "train": {"lr": 0.5}}), Path("ckpt"))
    assert [p.location for p in err.value.problems] == ["train.lr"]


def test_an_interrupted_run_names_its_checkpoint_or_says_it_has_none():
    hint = SingleProcess().resume_hint(Path("runs/x"))
    saved = interrupted_error(Path("runs/x"), Path("runs/x/checkpoints/step-3"), 3, 10, hint)
    assert "step 3 of 10; checkpoint saved in runs/x/checkpoints/step-3" in saved.summary
    assert saved.problems[0].fix == hint and "--resume" in hint
    none = interrupted_error(Path("runs/x"), None, 3, 10, hint)
    assert "no checkpoint was written yet" in none.summary and "--resume" not in none.problems[0].fix
