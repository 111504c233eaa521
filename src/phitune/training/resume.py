"""What makes a run resumable, and what an interrupted one tells the user.

A checkpoint keeps the recipe's fingerprint: every setting that decides the weights. Resuming with a
recipe whose fingerprint differs is refused (the result would be neither run), except for the fields
in RESUME_MAY_CHANGE, which do not affect the weights.
"""

from __future__ import annotations

from pathlib import Path

from phitune.errors import Problem, TrainError, TrainingInterrupted

# Recipe fields a resumed run may change: they do not affect the weights.
RESUME_MAY_CHANGE = ("name", "description", "tracking.", "eval.", "output.", "target.", "train.eval_every",
                     "train.save_every", "train.log_every")


def fingerprint(recipe) -> dict[str, str]:
    """The recipe's settings that decide the weights (flat `section.field` keys)."""
    return {k: v for k, v in recipe.flat_params().items() if not k.startswith(RESUME_MAY_CHANGE)}


def check_same_training(saved: dict, recipe, checkpoint: Path) -> None:
    """TrainError naming every weight-deciding setting that differs from the `saved` fingerprint."""
    now = fingerprint(recipe)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        raise TrainError(f"the recipe differs from the one that wrote {checkpoint}", [
            Problem(k, f"was {saved.get(k)} when the checkpoint was written, now {now.get(k)}",
                    "resume with the same training settings (only tracking, eval, output and *_every may change)")
            for k in changed])


def saved_run(checkpoint: Path) -> dict | None:
    """What a checkpoint's trainer state records about its run (`extra`: the fingerprint, the data's
    identity, the tracked run id), read once before anything is loaded; None when unreadable (loading
    the checkpoint then reports it)."""
    import json

    from phitune.training.checkpoint import STATE_FILE

    try:
        extra = json.loads((Path(checkpoint) / STATE_FILE).read_text(encoding="utf-8")).get("extra", {})
    except (OSError, ValueError, AttributeError):
        return None
    return extra if isinstance(extra, dict) else None


def interrupted_error(final_dir: Path, checkpoint: Path | None, step: int, total_steps: int,
                      resume_hint: str) -> TrainingInterrupted:
    """The error a stopped run ends with: where its newest checkpoint is and how to resume from it
    (`resume_hint`), or that it wrote none (a DeepSpeed run stopped by one rank alone writes none)."""
    where = (f"checkpoint saved in {checkpoint}" if checkpoint is not None
             else "no checkpoint was written yet (set train.save_every)")
    fix = resume_hint if checkpoint is not None else "start again; set train.save_every to write checkpoints"
    return TrainingInterrupted(f"training interrupted at step {step} of {total_steps}; {where}",
                               [Problem(str(final_dir), "the run is incomplete", fix)])
