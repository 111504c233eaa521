"""`train()` for one rank of a distributed or DeepSpeed run. `phitune.training.run.train` hands over to
`train_distributed` when the recipe sets `train.deepspeed` or WORLD_SIZE > 1; the single-process
path is untouched.

Every rank: joins the process group, loads the same data and model, trains its share of each global
batch through the DeepSpeed engine (phitune.training.ds_loop) and takes part in checkpoints and the
ZeRO-3 weight gather. Rank 0 only: decides about the run folder (fresh / resume / refuse) for all,
writes resolved_recipe.json, tracks to MLflow, shows the progress bar and writes the outputs, which
are the same files a single-process run writes (adapter/ or model/, merged/, metrics.json...).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from phitune.errors import Problem, TrainError, TrainingInterrupted
from phitune.models import run_dir as layout
from phitune.distributed import deepspeed_engine as dse
from phitune.distributed import world as dist

log = logging.getLogger("phitune.training")


def train_distributed(recipe, output_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
                      callbacks: Sequence[Any] = (), tracker=None, progress: bool = True):
    """Same contract as `phitune.training.run.train`; rank 0's RunResult is returned on every rank.
    Rank 0 holds the run folder's lock; SIGINT / SIGTERM make every rank stop after the same step and
    write a checkpoint together (phitune.training.signals.StopRequests)."""
    from phitune.training.run_folder import FolderScope
    from phitune.training.signals import StopRequests

    world = dist.init_process_group()
    if not world.is_main:  # rank 0 reports progress and data summaries; the others only warnings
        logging.getLogger("phitune").setLevel(max(logging.WARNING, logging.getLogger("phitune").getEffectiveLevel()))
    try:
        with StopRequests() as stop, FolderScope() as folders:
            return _train_rank(world, recipe, Path(output_dir), resume, overwrite, folders, stop, callbacks, tracker,
                               progress)
    finally:
        dist.destroy_process_group()


def _open_folder(folders, run_dir: Path, resume: bool, overwrite: bool) -> tuple[Path, Path | None]:
    """On rank 0: lock and check the run folder; every rank gets (where to write, what to resume)."""
    folder = folders.open(run_dir, resume=resume, overwrite=overwrite)
    return folder.work, folder.resume_from


def _train_rank(world: dist.World, recipe, final_dir: Path, resume: bool, overwrite: bool, folders, stop, callbacks,
                tracker, progress: bool):
    from phitune.data import load_eval_records, load_examples, plan_batches, prepare_data
    from phitune.data.loader import cache_sharing, check_same_data, data_identity
    from phitune.evaluate.run import loss_batches
    from phitune.training.checkpoint import STATE_FILE
    from phitune.models.build import load_trainable_model
    from phitune.models.loader import load_tokenizer
    from phitune.recipe.load import write_resolved
    from phitune.tracking import NullTracker, make_tracker
    from phitune.training import run as single
    from phitune.training.ds_loop import DeepSpeedLoop
    from phitune.training.loop import TrainState
    from phitune.training.schedule import total_steps

    spec = recipe.train
    run_dir, resume_from = dist.on_main(world, lambda: _open_folder(folders, final_dir, resume, overwrite))

    tokenizer = load_tokenizer(recipe.model)
    if resume_from is not None:  # refuse changed data before spending time tokenizing it
        check_same_data(recipe, resume_from / STATE_FILE)
    # Rank 0 tokenizes into the data cache while the others wait; then every rank maps the same files.
    built = dist.on_main(world, lambda: any(f.built for f in prepare_data(recipe, tokenizer, progress=progress)))
    train_examples, eval_examples, report = load_examples(recipe, tokenizer)
    statuses = dist.all_reduce_sum([(1.0 if built else 2.0) if r == world.rank and world.is_main else
                                    (2.0 if r == world.rank else 0.0) for r in range(world.size)])
    if world.is_main:
        log.info("data cache %s: %s", train_examples.file.key, cache_sharing(statuses))
    records = load_eval_records(recipe, eval_examples) if recipe.eval.before_after else []
    model = load_trainable_model(recipe)
    if world.is_main:
        folders.folder.begin()  # every check passed: from here on the run folder is written
        write_resolved(recipe, run_dir / layout.RESOLVED)

    pad_id = tokenizer.pad_token_id
    lengths = train_examples.lengths()  # the mapped length column

    def plan_epoch(epoch: int) -> list[dist.RankBatch]:
        plan = plan_batches(lengths, spec.batch_size, seed=spec.seed, epoch=epoch, group_by_length=spec.group_by_length,
                            packing=spec.packing, max_seq_len=spec.max_seq_len)
        return dist.shard_plan(plan, world.rank, world.size)

    eval_batches = loss_batches(eval_examples, pad_id, spec.batch_size, spec.max_seq_len)
    steps = total_steps(spec, len(plan_epoch(0)))
    engine = dse.make_engine(model, recipe, world.size, steps)
    # Ranks that hold the whole model may leave generation-based evaluation to rank 0; ZeRO-3 ranks
    # must all run the same forwards (each one gathers parameters from every rank).
    evaluating = world.is_main or dse.zero_stage(engine) == 3
    state = TrainState(total_steps=steps, extra={"fingerprint": single._fingerprint(recipe), "world_size": world.size,
                                                 "data": data_identity(recipe)})
    rng = None
    if resume_from is not None:
        state = TrainState.from_dict(dse.read_checkpoint_state(resume_from, world))
        single._check_same_training(state.extra.get("fingerprint", {}), recipe, resume_from)
        rng = dse.restore_checkpoint(engine, resume_from, world)

    if world.is_main:
        tracker = tracker or make_tracker(recipe, resume_run_id=state.extra.get("tracking_run_id"))
    else:
        tracker = NullTracker()  # only rank 0 tracks, whatever the caller passed
    state.extra["tracking_run_id"] = getattr(tracker, "run_id", None)
    try:
        if resume_from is None:
            tracker.log_params({**recipe.flat_params(), "distributed.world_size": world.size,
                                "distributed.zero_stage": dse.zero_stage(engine)})
            if recipe.eval.before_after and evaluating:
                state.extra["eval_before"] = single._evaluate(engine.module, tokenizer, recipe, records, eval_batches, "before")
        elif world.is_main:
            log.info("resuming %s from %s (step %d of %d) on %d processes", run_dir, resume_from.name,
                     state.global_step, steps, world.size)
        loop = DeepSpeedLoop(engine=engine, world=world, spec=spec, examples=train_examples, eval_batches=eval_batches,
                             plan_epoch=plan_epoch, collate=single.make_collator(recipe, pad_id, engine.module),
                             state=state, run_dir=run_dir, tracker=tracker, callbacks=callbacks,
                             progress=progress and world.is_main, stop=stop)
        state = single.run_loop(loop, rng, tracker, lambda: _interrupted(final_dir, run_dir, state, world))
        eval_after = None
        if recipe.eval.before_after and evaluating:
            eval_after = single._evaluate(engine.module, tokenizer, recipe, records, eval_batches, "after")
        dse.write_rank_digest(engine, world)
        model = dse.consolidated_model(engine, recipe, world)
        result = dist.on_main(world, lambda: single._finish(model, tokenizer, recipe, run_dir, state, report,
                                                            eval_after, tracker, folders.folder))
        return result
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except BaseException:
        tracker.close("FAILED")
        raise


def _interrupted(final_dir: Path, run_dir: Path, state, world: dist.World) -> TrainingInterrupted:
    from phitune.training.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir)
    where = (f"checkpoint saved in {latest}" if latest is not None
             else "no checkpoint was written yet (set train.save_every)")
    fix = (f"resume with: phitune train RECIPE --output {final_dir} --nproc {world.size} --resume" if latest is not None
           else "start again; set train.save_every to write checkpoints")
    return TrainingInterrupted(f"training interrupted at step {state.global_step} of {state.total_steps}; {where}",
                               [Problem(str(final_dir), "the run is incomplete", fix)])


def check_launchable(recipe, output_dir: str | os.PathLike, resume: bool, overwrite: bool = False) -> None:
    """What can be checked before starting processes, so a problem is reported once, cleanly: the run
    folder can take this run and nobody holds its lock (rank 0 checks again and keeps the lock), the
    DeepSpeed config builds from the recipe, and deepspeed is installed."""
    from phitune.training.run_folder import open_run_folder

    open_run_folder(Path(output_dir), resume=resume, overwrite=overwrite).release()
    if recipe.train.deepspeed is not None:
        from phitune.distributed.ds_config import deepspeed_config

        deepspeed_config(recipe, device="gpu" if dist.use_gpu() else "cpu")
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise TrainError("multi-process training needs the deepspeed package", [Problem(
            "train.deepspeed", "deepspeed is not installed", "pip install 'phitune[deepspeed]'")])
