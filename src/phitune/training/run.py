"""`train(recipe, output_dir) -> RunResult`: the one entry point every local run, Azure component and
distributed rank calls. It reads as the phases of a run: run folder, data, model, backend, loop,
evaluation, consolidation, and the outputs written by the main process. One process and each rank of
a DeepSpeed run go through the same phases; what differs is the execution backend
(phitune.training.backend: `SingleProcess`, `DeepSpeedBackend`). It owns the run folder's lifecycle:
fresh, resumed, interrupted, finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence

from phitune.errors import TrainingInterrupted
from phitune.models import run_dir as layout

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe

log = logging.getLogger("phitune.training")


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


class RunPaths(NamedTuple):
    """What every rank needs to know about the run folder that rank 0 opened."""

    final: Path  # where the finished run will be
    work: Path  # where this run writes (`final`, or a staging sibling while replacing a finished run)
    resume_from: Path | None


def train(recipe, output_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
          callbacks: Sequence[Any] = (), tracker=None, progress: bool = True) -> RunResult:
    """Train `recipe` (a Recipe, or a path to a recipe file) into `output_dir`.

    resume: continue from the newest valid checkpoints/step-N/ (same final weights as never stopping).
    overwrite: replace a finished run in `output_dir`; the new run is built beside it and swapped in
    only when complete (phitune.training.run_folder). Without it a finished run there is refused.
    callbacks: objects with `on_step_end(StepInfo)`; raising KeyboardInterrupt there acts as Ctrl-C.
    tracker: a `phitune.tracking.Tracker` to use instead of the recipe's (ranks other than 0 never track).
    With `train.deepspeed`, or as one of several ranks (WORLD_SIZE > 1), this process trains as one
    rank of a DeepSpeed run; rank 0's RunResult is returned on every rank.
    Raises RecipeError / DataError / ModelError / TrainError for bad input (nothing in `output_dir` is
    touched until the recipe, data and model have all been checked), TrainingInterrupted on Ctrl-C or
    SIGTERM (exit code 130 or 143; after saving a checkpoint, except on a DeepSpeed run stopped by one
    rank alone, which keeps its last `train.save_every` checkpoint).
    """
    from phitune.data.labels import with_task_labels
    from phitune.host_memory import freed_memory_returned
    from phitune.process import configure_process
    from phitune.training.run_folder import FolderScope
    from phitune.training.signals import sigterm_as_interrupt

    configure_process()  # Python API users get the CLI's quiet, redacted logs too (PHITUNE_VERBOSE=1 shows all)
    recipe = with_task_labels(as_recipe(recipe))  # a classifier head's label set, from data.train unless listed
    # Held for the run, restored after it: SIGTERM stops like Ctrl-C; freed host memory goes back to
    # the OS from before the model loads (phitune.host_memory); the backend's scope (a DeepSpeed
    # rank joins the process group and records stop signals); the run folder's lock.
    with sigterm_as_interrupt(), freed_memory_returned(), execution_backend(recipe) as backend, \
            FolderScope() as folders:
        return _run(recipe, Path(output_dir), backend, folders, resume=resume, overwrite=overwrite,
                    callbacks=callbacks, tracker=tracker, progress=progress)


def _run(recipe: "Recipe", output_dir: Path, backend, folders, *, resume: bool, overwrite: bool, callbacks, tracker,
         progress: bool) -> RunResult:
    progress = progress and backend.is_main  # one progress bar, rank 0's

    # Run folder: rank 0 checks and locks it (nothing in it is written yet); every rank learns where to write.
    paths = backend.on_main(lambda: open_folder(folders, output_dir, resume=resume, overwrite=overwrite))
    from phitune.training.resume import saved_run

    saved = saved_run(paths.resume_from) if paths.resume_from is not None else None  # read once, before any loading
    # Tracking: calls are queued from here; MLflow opens its run on a thread of its own once the first
    # optimizer step is done (phitune.background_tracking), so training starts without waiting for it,
    # and bad data or a bad model stops the run before any tracked run exists.
    tracker = run_tracker(recipe, backend, tracker, (saved or {}).get("tracking_run_id"))
    try:
        return _phases(recipe, backend, folders, paths, saved, tracker, callbacks=callbacks, progress=progress)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except BaseException:
        with contextlib.suppress(Exception):  # a tracking failure must not hide the run's own error
            tracker.close("FAILED")
        raise


def _phases(recipe: "Recipe", backend, folders, paths: RunPaths, saved: dict | None, tracker, *, callbacks,
            progress: bool) -> RunResult:
    from phitune.data import load_eval_records, plan_batches
    from phitune.data.loader import check_same_data
    from phitune.evaluate.run import loss_batches
    from phitune.models.build import load_trainable_model
    from phitune.models.loader import load_tokenizer
    from phitune.status import status
    from phitune.training.checkpoint import STATE_FILE
    from phitune.training.device import cpu_threads
    from phitune.training.loop import TrainLoop
    from phitune.training.resume import check_same_training, interrupted_error
    from phitune.training.schedule import total_steps

    spec = recipe.train

    # Data: a resume on changed data is refused before tokenizing; tokenized once into the data cache.
    status(f"reading data: {data_names(recipe)}")
    tokenizer = load_tokenizer(recipe.model)
    if paths.resume_from is not None:
        check_same_data(recipe, paths.resume_from / STATE_FILE)
        if saved is not None:  # changed training settings are refused before anything is loaded
            check_same_training(saved.get("fingerprint", {}), recipe, paths.resume_from)
    train_examples, eval_examples, report = load_data(recipe, tokenizer, backend, progress)
    records = load_eval_records(recipe, eval_examples) if recipe.eval.before_after else []

    # Model: the base (quantized for QLoRA) with the recipe's method, seeded after loading so the
    # adapter init is reproducible (phitune.models.build), and the attention its batches need.
    status(f"loading the model: {recipe.model.name} ({recipe.method.type})")
    model = load_trainable_model(recipe)
    choose_attention(model, recipe)

    # Backend: this process's share of each epoch's batch plan; the optimizer and lr schedule, or the engine.
    lengths = train_examples.lengths()  # the mapped length column: no example is read to plan batches

    def plan_epoch(epoch: int):
        return backend.shard_plan(plan_batches(lengths, spec.batch_size, seed=spec.seed, epoch=epoch,
                                               group_by_length=spec.group_by_length, packing=spec.packing,
                                               max_seq_len=spec.max_seq_len))

    eval_batches = loss_batches(eval_examples, tokenizer.pad_token_id, spec.batch_size, spec.max_seq_len)
    steps = total_steps(spec, len(plan_epoch(0)))
    backend.setup(model, recipe, steps)
    backend.on_main(lambda: begin_run(folders.folder, recipe))  # every check passed: the run folder is written from here

    # Start, or resume (weights, optimizer, schedule, data position and RNG from the checkpoint).
    state, rng = start_state(recipe, backend, paths.resume_from, steps)
    # CPU threads: one when other processes already fill every core (training/device.py), restored after.
    with cpu_threads(backend.device) as threads:
        state.extra["device"], state.extra["cpu_threads"] = str(backend.device), threads
        if paths.resume_from is None:
            tracker.log_params({**recipe.flat_params(), **backend.tracking_params()})
            if recipe.eval.before_after and backend.runs_generation_eval:
                state.extra["eval_before"] = evaluate(backend.model, tokenizer, recipe, records, eval_batches,
                                                      "before", progress)
        elif backend.is_main:
            log.info("resuming %s from %s (step %d of %d) on %d process(es)", paths.work, paths.resume_from.name,
                     state.global_step, steps, backend.world_size)

        # Loop: optimizer steps to the end, checkpoints on the way and when stopped.
        loop = TrainLoop(backend=backend, spec=spec, examples=train_examples, eval_batches=eval_batches,
                         plan_epoch=plan_epoch, collate=make_collator(recipe, tokenizer.pad_token_id, backend.model),
                         state=state, run_dir=paths.work, tracker=tracker, callbacks=[TrackingBegins(tracker), *callbacks],
                         progress=progress)
        state = run_loop(loop, rng, tracker, lambda: interrupted_error(
            paths.final, loop.last_checkpoint or paths.resume_from, state.global_step, state.total_steps,
            backend.resume_hint(paths.final)))

        # Evaluate, consolidate the trained weights, and write the outputs (rank 0).
        eval_after = None
        if recipe.eval.before_after and backend.runs_generation_eval:
            eval_after = evaluate(backend.model, tokenizer, recipe, records, eval_batches, "after", progress)
        status("saving the model")
        trained = backend.consolidated_model(recipe)
        return backend.on_main(lambda: finish(trained, tokenizer, recipe, paths.work, state, report, eval_after,
                                              tracker, folders.folder))


# --- the phases ------------------------------------------------------------------------------------


@contextlib.contextmanager
def execution_backend(recipe) -> Iterator[Any]:
    """The backend `recipe` trains with, for the length of one run: DeepSpeed when it sets
    `train.deepspeed` or this process is one of several ranks (WORLD_SIZE > 1), else this process."""
    from phitune.distributed.world import wants_distributed

    if not wants_distributed(recipe):
        from phitune.training.backend import SingleProcess

        yield SingleProcess()
        return
    from phitune.training.deepspeed_backend import deepspeed_run

    with deepspeed_run() as backend:
        yield backend


def open_folder(folders, output_dir: Path, *, resume: bool, overwrite: bool) -> RunPaths:
    """Check and lock the run folder (phitune.training.run_folder); nothing in it changes yet."""
    folder = folders.open(output_dir, resume=resume, overwrite=overwrite)
    return RunPaths(folder.final, folder.work, folder.resume_from)


def begin_run(folder, recipe) -> None:
    from phitune.recipe.load import write_resolved

    folder.begin()
    write_resolved(recipe, folder.work / layout.RESOLVED)


def load_data(recipe, tokenizer, backend, progress: bool):
    """(train examples, eval examples, data report), memory-mapped from the data cache. Rank 0
    tokenizes into the cache while the others wait; then every rank maps the same files."""
    from phitune.data import load_examples, prepare_data
    from phitune.data.loader import cache_sharing

    prepared: list = []  # rank 0's TokenizedFiles, used again below (only whether it built crosses ranks)

    def prepare() -> bool:
        prepared.extend(prepare_data(recipe, tokenizer, progress=progress))
        return any(f.built for f in prepared)

    built = backend.on_main(prepare)
    train_examples, eval_examples, report = load_examples(recipe, tokenizer, files=prepared or None)
    statuses = backend.all_reduce_sum([(1.0 if built else 2.0) if r == backend.rank and backend.is_main else
                                       (2.0 if r == backend.rank else 0.0) for r in range(backend.world_size)])
    if backend.is_main:
        log.info("data cache %s: %s", train_examples.file.key, cache_sharing(statuses))
    return train_examples, eval_examples, report


def own_rows(recipe) -> bool:
    """Each example needs its own batch row: a classifier head, or prompt learning's virtual tokens."""
    from phitune.recipe.task import uses_head

    return uses_head(recipe.task) or recipe.method.own_rows


def choose_attention(model, recipe) -> bool:
    """Per-example attention for padding-free rows (models/segment_attention.py) when rows may hold
    several examples; True if `model` now uses it. Chosen once, when the model is loaded: the
    collator only reads the choice."""
    from phitune.models.segment_attention import use_segment_attention

    return not own_rows(recipe) and use_segment_attention(model)


def make_collator(recipe: "Recipe", pad_id: int, model):
    """The training batches' collator: padding-free rows when packing or cheaper, unless each example
    needs its own row (`own_rows`). It is cheaper more often when `model` attends per example
    (`choose_attention`)."""
    from phitune.data import Collator
    from phitune.models.segment_attention import attends_per_example

    own = own_rows(recipe)
    width = getattr(getattr(model, "config", None), "hidden_size", None)
    return Collator(pad_id, packing=recipe.train.packing, padding_free_width=None if own else width,
                    per_example_attention=not own and attends_per_example(model))


def start_state(recipe, backend, resume_from: Path | None, steps: int):
    """(TrainState, RNG states to continue from or None): fresh, or read back from `resume_from`
    (refused when the recipe's weight-deciding settings changed since)."""
    from phitune.data.loader import data_identity
    from phitune.training.loop import TrainState
    from phitune.training.resume import fingerprint

    if resume_from is None:
        extra = {"fingerprint": fingerprint(recipe), **backend.state_extra(), "data": data_identity(recipe)}
        return TrainState(total_steps=steps, extra=extra), None
    saved, rng = backend.restore_checkpoint(resume_from)
    state = TrainState.from_dict(saved)
    return state, rng


def run_tracker(recipe, backend, tracker, resume_run_id: str | None):
    """The caller's tracker or the recipe's on rank 0 (continuing `resume_run_id`, the tracked run of
    the checkpoint resumed from); nothing elsewhere."""
    from phitune.tracking import NullTracker, make_tracker

    if not backend.is_main:
        return NullTracker()  # only rank 0 tracks, whatever the caller passed
    if tracker is not None:
        return tracker
    return make_tracker(recipe, resume_run_id=resume_run_id, held=True)


class TrackingBegins:
    """After the first optimizer step, let a held tracker open its run (phitune.background_tracking):
    opening an MLflow store costs seconds the first step does not need."""

    def __init__(self, tracker):
        self.tracker = tracker

    def on_step_end(self, info) -> None:
        begin = getattr(self.tracker, "begin", None)
        if begin is not None:
            begin()


def run_loop(loop, rng, tracker, interrupted):
    """Run `loop` to its last step, from `rng` when resuming; on Ctrl-C or SIGTERM mark the tracked run
    KILLED and raise `interrupted()` (a TrainingInterrupted saying where the checkpoint is) with the
    signal's exit code (130 or 143)."""
    from phitune.training.signals import exit_code, signal_name

    if rng is not None:
        loop.restore_rng(rng)
    try:
        return loop.run()
    except KeyboardInterrupt as stop:
        with contextlib.suppress(Exception):  # a tracking failure must not hide the stop and its exit code
            tracker.close("KILLED")
        error = interrupted()
        stopped = TrainingInterrupted(f"{error.summary} (stopped by {signal_name(stop)})", error.problems)
        stopped.exit_code = exit_code(stop)
        raise stopped from None


def evaluate(model, tokenizer, recipe, records, eval_batches, when: str, progress: bool = False) -> dict:
    """Before/after evaluation on the held-out records (generation and task metrics, phitune.evaluate)."""
    from phitune.evaluate.run import evaluate_model
    from phitune.status import status

    status(f"evaluating {when} training ({len(records)} held-out records)")
    result = evaluate_model(model, tokenizer, recipe.task.type, records, eval_batches, recipe.eval.max_new_tokens,
                            progress=progress, desc=f"eval {when}")
    result.metrics["samples"] = [{k: row[k] for k in ("source", "reference", "prediction", "correct")}
                                 for row in result.predictions[:5]]
    return result.metrics


def finish(model, tokenizer, recipe, run_dir: Path, state, report, eval_after, tracker, folder=None) -> RunResult:
    """Write the outputs into `run_dir` (metrics.json last), then make it the run in `folder.final`
    (the swap that replaces a finished run happens only here)."""
    from phitune.model_card import write_run_cards
    from phitune.training.outputs import build_metrics, count_params, plot_loss, save_model_outputs, write_metrics

    final_dir = folder.final if folder is not None else run_dir
    trainable, total = count_params(model)
    outputs = {name: final_dir / path.relative_to(run_dir)
               for name, path in save_model_outputs(model, tokenizer, recipe, run_dir).items()}
    metrics = build_metrics(state, trainable=trainable, total=total, data_report=report.to_dict(), outputs=outputs,
                            eval_before=state.extra.get("eval_before"), eval_after=eval_after)
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


def data_names(recipe) -> str:
    names = [Path(p).name for p in (recipe.data.train, recipe.data.validation) if p]
    return ", ".join(names) or "(none)"


def as_recipe(recipe):
    """A Recipe as it is, or the recipe file at that path loaded."""
    from phitune.recipe.schema import Recipe

    if isinstance(recipe, Recipe):
        return recipe
    from phitune.recipe.load import load_recipe

    return load_recipe(recipe)
