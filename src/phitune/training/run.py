"""`train(recipe, output_dir) -> RunResult`: the one entry point every local run, Azure component and
distributed rank calls. It wires the pieces (data, model + method, loop, tracking, outputs) and owns
the run folder's lifecycle: fresh, resumed, interrupted, finished.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from phitune.errors import Problem, TrainError, TrainingInterrupted
from phitune.models import run_dir as layout

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe

log = logging.getLogger("phitune.training")

# Recipe fields a resumed run may change: they do not affect the weights.
RESUME_MAY_CHANGE = ("name", "description", "tracking.", "eval.", "output.", "target.", "train.eval_every",
                     "train.save_every", "train.log_every")


@dataclass(frozen=True)
class RunResult:
    """Where a finished run put things, and its headline numbers (the rest is in `metrics`)."""

    output_dir: Path
    metrics: dict
    outputs: dict[str, Path] = field(default_factory=dict)
    tracking: str = ""
    tracking_run_id: str | None = None

    @property
    def final_train_loss(self) -> float | None:
        return self.metrics.get("final_train_loss")

    @property
    def final_eval_loss(self) -> float | None:
        return self.metrics.get("final_eval_loss")

    @property
    def eval_before(self) -> dict | None:
        return self.metrics.get("eval_before")

    @property
    def eval_after(self) -> dict | None:
        return self.metrics.get("eval_after")


def train(recipe, output_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
          callbacks: Sequence[Any] = (), tracker=None, progress: bool = True) -> RunResult:
    """Train `recipe` (a Recipe, or a path to a recipe file) into `output_dir`.

    resume: continue from the newest valid checkpoints/step-N/ (same final weights as never stopping).
    overwrite: replace a finished run in `output_dir`; the new run is built beside it and swapped in
    only when complete (phitune.training.run_folder). Without it a finished run there is refused.
    callbacks: objects with `on_step_end(StepInfo)`; raising KeyboardInterrupt there acts as Ctrl-C.
    tracker: a `phitune.tracking.Tracker` to use instead of the recipe's (e.g. NullTracker on rank != 0).
    Raises RecipeError / DataError / ModelError / TrainError for bad input (nothing in `output_dir` is
    touched until the recipe, data and model have all been checked), TrainingInterrupted on Ctrl-C or
    SIGTERM (after saving a checkpoint; exit code 130 or 143).
    """
    from phitune.commands.quiet import quiet_libraries
    from phitune.training.run_folder import FolderScope
    from phitune.training.signals import sigterm_as_interrupt

    quiet_libraries()  # Python API users get the CLI's quiet output too (PHITUNE_VERBOSE=1 shows all)

    with sigterm_as_interrupt(), FolderScope() as folders:
        return _train(recipe, output_dir, folders, resume=resume, overwrite=overwrite, callbacks=callbacks,
                      tracker=tracker, progress=progress)


def _train(recipe, output_dir, folders, *, resume: bool, overwrite: bool, callbacks, tracker, progress: bool) -> RunResult:
    from phitune.data import load_eval_records, load_examples, plan_batches
    from phitune.data.loader import check_same_data, data_identity
    from phitune.evaluate.run import loss_batches
    from phitune.models.build import load_trainable_model
    from phitune.models.loader import load_tokenizer
    from phitune.recipe.load import write_resolved
    from phitune.training import checkpoint as ckpt
    from phitune.training.device import cpu_threads, place_model
    from phitune.training.loop import TrainLoop, TrainState
    from phitune.training.optim import make_optimizer
    from phitune.training.schedule import make_scheduler, total_steps

    recipe = _as_recipe(recipe)
    from phitune.data.labels import with_task_labels

    recipe = with_task_labels(recipe)  # a classifier head's label set, from data.train unless listed
    from phitune.distributed.world import wants_distributed

    if wants_distributed(recipe):  # train.deepspeed or WORLD_SIZE > 1: one rank of a DeepSpeed run
        from phitune.training.ds_run import train_distributed

        return train_distributed(recipe, output_dir, resume=resume, overwrite=overwrite, callbacks=callbacks,
                                 tracker=tracker, progress=progress)
    folder = folders.open(output_dir, resume=resume, overwrite=overwrite)  # checks and locks; writes nothing
    spec, run_dir = recipe.train, folder.work
    resume_from = folder.resume_from

    from phitune.status import status

    status(f"reading data: {_data_names(recipe)}")
    tokenizer = load_tokenizer(recipe.model)
    if resume_from is not None:  # refuse changed data before spending time tokenizing it
        check_same_data(recipe, resume_from / ckpt.STATE_FILE)
    # Tokenized once into the data cache, then memory-mapped (phitune.data.cache); eval records re-read by offset.
    train_examples, eval_examples, report = load_examples(recipe, tokenizer, progress=progress)
    records = load_eval_records(recipe, eval_examples) if recipe.eval.before_after else []
    # Base (quantized for QLoRA), gradient checkpointing, then the method; seeded after loading so the
    # adapter init is reproducible (phitune.models.build is the one place that knows every method).
    status(f"loading the model: {recipe.model.name} ({recipe.method.type})")
    model = load_trainable_model(recipe)
    device = place_model(model)
    folder.begin()  # every check passed: from here on the run folder is written
    write_resolved(recipe, run_dir / layout.RESOLVED)

    pad_id = tokenizer.pad_token_id
    lengths = train_examples.lengths()  # the mapped length column: no example is read to plan batches
    plan_epoch = partial(plan_batches, lengths, spec.batch_size, seed=spec.seed, group_by_length=spec.group_by_length,
                         packing=spec.packing, max_seq_len=spec.max_seq_len)
    eval_batches = loss_batches(eval_examples, pad_id, spec.batch_size, spec.max_seq_len)
    optimizer = make_optimizer(model, spec)
    steps = total_steps(spec, len(plan_epoch(epoch=0)))
    scheduler = make_scheduler(optimizer, spec, steps)
    state = TrainState(total_steps=steps, extra={"fingerprint": _fingerprint(recipe), "data": data_identity(recipe)})
    rng = None
    if resume_from is not None:
        try:
            saved, rng = ckpt.load_checkpoint(resume_from, model, optimizer, scheduler)
        except (ValueError, KeyError, OSError) as exc:
            raise TrainError(f"cannot resume from {resume_from}", [Problem(str(resume_from), str(exc),
                             "start a new run in another --output folder")]) from None
        state = TrainState.from_dict(saved)
        _check_same_training(state.extra.get("fingerprint", {}), recipe, resume_from)

    from phitune.tracking import make_tracker

    tracker = tracker or make_tracker(recipe, resume_run_id=state.extra.get("tracking_run_id"))
    state.extra["tracking_run_id"] = getattr(tracker, "run_id", None)
    try:
        with cpu_threads(device) as threads:  # one thread when the CPU is oversubscribed (training/device.py)
            state.extra["device"], state.extra["cpu_threads"] = str(device), threads
            if resume_from is None:
                tracker.log_params(recipe.flat_params())
                if recipe.eval.before_after:
                    state.extra["eval_before"] = _evaluate(model, tokenizer, recipe, records, eval_batches, "before",
                                                           progress)
            else:
                log.info("resuming %s from %s (step %d of %d)", run_dir, resume_from.name, state.global_step, steps)
            loop = TrainLoop(model=model, optimizer=optimizer, scheduler=scheduler, spec=spec, examples=train_examples,
                             eval_batches=eval_batches, plan_epoch=lambda epoch: plan_epoch(epoch=epoch),
                             collate=make_collator(recipe, pad_id, model), state=state,
                             run_dir=run_dir, tracker=tracker, callbacks=callbacks, progress=progress)
            state = run_loop(loop, rng, tracker, lambda: _interrupted(folder, state))
            eval_after = (_evaluate(model, tokenizer, recipe, records, eval_batches, "after", progress)
                          if recipe.eval.before_after else None)
            status("saving the model")
            return _finish(model, tokenizer, recipe, run_dir, state, report, eval_after, tracker, folder)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except BaseException:
        tracker.close("FAILED")
        raise


def _finish(model, tokenizer, recipe, run_dir: Path, state, report, eval_after, tracker, folder=None) -> RunResult:
    """Write the outputs into `run_dir` (metrics.json last), then make it the run in `folder.final`
    (the swap that replaces a finished run happens only here)."""
    from phitune.training.outputs import build_metrics, count_params, plot_loss, save_model_outputs, write_metrics

    final_dir = folder.final if folder is not None else run_dir
    trainable, total = count_params(model)
    outputs = {name: final_dir / path.relative_to(run_dir)
               for name, path in save_model_outputs(model, tokenizer, recipe, run_dir).items()}
    metrics = build_metrics(state, trainable=trainable, total=total, data_report=report.to_dict(), outputs=outputs,
                            eval_before=state.extra.get("eval_before"), eval_after=eval_after)
    from phitune.model_card import write_run_cards

    write_run_cards(outputs, recipe, metrics, run_dir)  # README.md in adapter/, model/, merged/
    plot_loss(state.history, state.eval_history, run_dir / "loss.png",
              before_eval_loss=(state.extra.get("eval_before") or {}).get("eval_loss"))
    final = {k: metrics[k] for k in ("final_train_loss", "final_eval_loss", "tokens_per_s", "train_runtime_s",
                                     "peak_rss_mb", "trainable_params", "total_params", "train_tokens")}
    for when in ("before", "after"):
        for key, value in (metrics.get(f"eval_{when}") or {}).items():
            final[f"{when}_{key}"] = value
    tracker.log_metrics({k: v for k, v in final.items() if isinstance(v, (int, float))}, step=state.global_step)
    write_metrics(run_dir, metrics)  # last: its presence means the run is complete
    for name in (layout.METRICS, "loss.png", layout.RESOLVED):
        tracker.log_artifact(run_dir / name)
    if folder is not None:
        folder.commit()
    describe = tracker.describe() if hasattr(tracker, "describe") else type(tracker).__name__
    run_id = getattr(tracker, "run_id", None)
    tracker.close("FINISHED")
    return RunResult(final_dir, metrics, outputs, describe, run_id)


def _evaluate(model, tokenizer, recipe, records, eval_batches, when: str, progress: bool = False) -> dict:
    from phitune.evaluate.run import evaluate_model
    from phitune.status import status

    status(f"evaluating {when} training ({len(records)} held-out records)")
    result = evaluate_model(model, tokenizer, recipe.task.type, records, eval_batches, recipe.eval.max_new_tokens,
                            progress=progress, desc=f"eval {when}")
    result.metrics["samples"] = [{k: row[k] for k in ("source", "reference", "prediction", "correct")}
                                 for row in result.predictions[:5]]
    return result.metrics


def _data_names(recipe) -> str:
    names = [Path(p).name for p in (recipe.data.train, recipe.data.validation) if p]
    return ", ".join(names) or "(none)"


def seed_everything(seed: int) -> None:
    """python, numpy and torch: model init (LoRA A matrices), dropout and anything else random."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _as_recipe(recipe):
    from phitune.recipe.schema import Recipe

    if isinstance(recipe, Recipe):
        return recipe
    from phitune.recipe.load import load_recipe

    return load_recipe(recipe)


def _fingerprint(recipe) -> dict[str, str]:
    return {k: v for k, v in recipe.flat_params().items() if not k.startswith(RESUME_MAY_CHANGE)}


def _check_same_training(saved: dict, recipe, checkpoint: Path) -> None:
    now = _fingerprint(recipe)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        raise TrainError(f"the recipe differs from the one that wrote {checkpoint}", [
            Problem(k, f"was {saved.get(k)} when the checkpoint was written, now {now.get(k)}",
                    "resume with the same training settings (only tracking, eval, output and *_every may change)")
            for k in changed])


def make_collator(recipe: "Recipe", pad_id: int, model):
    """The training batches' collator: padding-free rows when packing or cheaper, unless each example
    needs its own row (a classifier head; prompt learning's virtual tokens). When rows may be
    padding-free, `model` is switched to per-example attention for them (models/segment_attention.py)."""
    from phitune.data import Collator
    from phitune.models.segment_attention import use_segment_attention
    from phitune.recipe.method import PROMPT_LEARNING
    from phitune.recipe.task import uses_head

    own_rows = uses_head(recipe.task) or recipe.method.type in PROMPT_LEARNING
    width = getattr(getattr(model, "config", None), "hidden_size", None)
    per_example = not own_rows and use_segment_attention(model)
    return Collator(pad_id, packing=recipe.train.packing, padding_free_width=None if own_rows else width,
                    per_example_attention=per_example)


def run_loop(loop, rng, tracker, interrupted):
    """Run `loop` to its last step, from `rng` when resuming; on Ctrl-C or SIGTERM mark the tracked run
    KILLED and raise `interrupted()` (the loop has saved a checkpoint by then) with the signal's exit
    code (130 or 143)."""
    from phitune.training.signals import exit_code, signal_name

    if rng is not None:
        loop.restore_rng(rng)
    try:
        return loop.run()
    except KeyboardInterrupt as stop:
        tracker.close("KILLED")
        error = interrupted()
        stopped = TrainingInterrupted(f"{error.summary} (stopped by {signal_name(stop)})", error.problems)
        stopped.exit_code = exit_code(stop)
        raise stopped from None


def _interrupted(folder, state) -> TrainingInterrupted:
    path = folder.work / layout.CHECKPOINTS / f"step-{state.global_step}"
    return TrainingInterrupted(
        f"training interrupted at step {state.global_step} of {state.total_steps}; checkpoint saved in {path}",
        [Problem(str(folder.final), "the run is incomplete",
                 f"resume with: phitune train RECIPE --output {folder.final} --resume  (Python: train(recipe, out, resume=True))")])
