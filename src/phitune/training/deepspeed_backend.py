"""The DeepSpeed backend: one process per rank, the model inside a DeepSpeed engine
(phitune.distributed.deepspeed_engine). `phitune.training.run.train` runs the same phases with it as
with one process; what differs is here.

Every rank joins the process group, loads the same data and model, trains its share of each global
batch and takes part in checkpoints and the ZeRO-3 weight gather. Rank 0 only: decides about the run
folder (fresh / resume / refuse) for all, builds the data cache while the others wait, writes
resolved_recipe.json, tracks to MLflow, shows the progress bar and writes the outputs, which are the
same files a single-process run writes (adapter/ or model/, merged/, metrics.json...).

Loss normalisation (exact, as in one process): the label-token count of the whole global
accumulation window (every micro-batch on every rank) is all-reduced before the forward passes, and
each micro-batch backpropagates `loss_sum x world_size / global_count`. The engine averages
gradients over ranks (divides by world_size) and, with `scale_wrt_gas=False`, does not divide by the
accumulation steps, so the gradient is that of (summed token loss over the global window) / (its
label tokens): the same as one process with a world_size times larger batch. A rank left without a
micro-batch gets a dummy (phitune.distributed.world) that still runs forward and backward.

Stopping: SIGINT / SIGTERM are recorded for the whole run (a rank raising on its own would leave the
others waiting in a collective); the flags ride on the all-reduce every step makes anyway, so all
ranks stop after the same step and write the checkpoint together.

Checkpoints: checkpoints/step-N/ holds deepspeed/ (the engine's files, every rank its ZeRO
partition), rng/rank-R.* (each rank's RNG state, since dropout draws differ per rank) and
trainer_state.json (rank 0, written last). It is assembled in a hidden folder and renamed into
place, so `--resume` never sees half of one.

Outputs: below ZeRO-3 rank 0 saves the engine's module; with ZeRO-3 the weights are partitioned, so
rank 0 gathers the trainable ones into a freshly built (unpartitioned) model and saves that exactly
like a single-process run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from phitune.distributed import deepspeed_engine as engines
from phitune.distributed import world as ranks
from phitune.errors import Problem, TrainError
from phitune.files import follow_umask, replace_dir
from phitune.models import base_of
from phitune.models.run_dir import CHECKPOINTS
from phitune.training.backend import StepTotals
from phitune.training.checkpoint import STATE_FILE, load_rng, read_state, save_rng

T = TypeVar("T")


@contextlib.contextmanager
def deepspeed_run() -> Iterator["DeepSpeedBackend"]:
    """This rank's backend for one run: in the process group, with SIGINT / SIGTERM recorded (not
    raised) throughout, and only warnings logged on ranks other than 0 (restored afterwards)."""
    from phitune.training.signals import StopRequests

    logger = logging.getLogger("phitune")
    level = logger.level
    with ranks.process_group() as world, StopRequests() as stop:
        if not world.is_main:  # rank 0 reports progress and data summaries; the others only warnings
            logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
        try:
            yield DeepSpeedBackend(world, stop)
        finally:
            logger.setLevel(level)


class DeepSpeedBackend:
    collective = True  # stops and checkpoints involve every rank

    def __init__(self, world: ranks.World, stop) -> None:
        self.world, self.stop = world, stop  # stop: this rank's phitune.training.signals.StopRequests
        self.engine = self.model = self.device = self.spec = None

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def world_size(self) -> int:
        return self.world.size

    @property
    def runs_generation_eval(self) -> bool:
        """Ranks that hold the whole model leave generation-based evaluation to rank 0; ZeRO-3 ranks
        must all run the same forwards (each one gathers parameters from every rank)."""
        return self.world.is_main or engines.zero_stage(self.engine) == 3

    def on_main(self, fn: Callable[[], T]) -> T:
        return ranks.on_main(self.world, fn)

    def all_reduce_sum(self, values) -> list[float]:
        return ranks.all_reduce_sum(values)

    def shard_plan(self, plan) -> list[ranks.RankBatch]:
        return ranks.shard_plan(plan, self.world.rank, self.world.size)

    # --- setup ---------------------------------------------------------------------------------

    def setup(self, model, recipe, total_steps: int) -> None:
        from phitune.training.optim import param_groups
        from phitune.training.schedule import make_scheduler

        spec = self.spec = recipe.train
        self.engine = engines.make_engine(model, recipe, self.world.size, param_groups(model, spec.weight_decay),
                                          lambda optimizer: make_scheduler(optimizer, spec, total_steps))
        self.model, self.device = self.engine.module, self.engine.device

    def state_extra(self) -> dict:
        return {"world_size": self.world.size}

    def tracking_params(self) -> dict:
        return {"distributed.world_size": self.world.size, "distributed.zero_stage": engines.zero_stage(self.engine)}

    # --- one optimizer step --------------------------------------------------------------------

    def stop_requests(self) -> contextlib.AbstractContextManager:
        """Already recording since the run began (`deepspeed_run`); the stop is agreed in `step_totals`."""
        return contextlib.nullcontext(self.stop)

    def step_totals(self, targets: int, tokens: int) -> StepTotals:
        signum = self.stop.signum
        # the stop flags ride on the all-reduce every step makes anyway: all ranks see the same sums
        n_targets, n_tokens, n_term, n_int = (int(v) for v in ranks.all_reduce_sum(
            [targets, tokens, signum == signal.SIGTERM, signum == signal.SIGINT]))
        return StepTotals(n_targets, n_tokens, signal.SIGTERM if n_term else signal.SIGINT if n_int else 0)

    def backward(self, batches: list[dict], n_targets: int) -> float:
        scale = self.world.size / max(n_targets, 1)
        local_loss = 0.0
        for batch in batches:
            loss = micro_loss(self.engine, batch)
            self.engine.backward(loss * scale, scale_wrt_gas=False)
            local_loss += float(loss.detach())
        (loss_sum,) = ranks.all_reduce_sum([local_loss])
        return loss_sum

    def lr(self) -> float:
        return self.engine.get_lr()[0]

    def optimizer_step(self) -> float | None:
        import torch

        self.engine.step()
        norm = self.engine.get_global_grad_norm() if self.spec.max_grad_norm is not None else None
        return float(norm) if isinstance(norm, (int, float, torch.Tensor)) else None

    def set_training(self, on: bool) -> None:
        self.engine.train(on)

    def eval_loss(self, eval_batches: list) -> float | None:
        """Held-out loss, eval batches split across ranks and the sums all-reduced."""
        import torch

        from phitune.models.loss import IGNORE_INDEX, count_targets

        mine, pad = ranks.shard_list(eval_batches, self.world.rank, self.world.size)
        dummy = dict(eval_batches[0])
        dummy["labels"] = dummy["labels"].new_full(dummy["labels"].shape, IGNORE_INDEX)
        self.engine.eval()
        try:
            total = count = 0.0
            with torch.no_grad():
                for batch in mine + [dummy] * pad:
                    total += float(micro_loss(self.engine, batch))
                    count += count_targets(batch)
        finally:
            self.engine.train()
        total, count = ranks.all_reduce_sum([total, count])
        return total / count if count else None

    # --- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, run_dir: Path, step: int, state: dict, rng: dict) -> Path:
        """Collective: every rank must call it at the same step."""
        root = Path(run_dir) / CHECKPOINTS
        final, partial = root / f"step-{step}", root / f".step-{step}.partial"
        if self.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            (partial / "rng").mkdir(parents=True)
        ranks.barrier()
        engines.save_engine_files(self.engine, partial)
        save_rng(rng, *rng_files(partial, self.world.rank))
        ranks.barrier()
        if self.is_main:
            (partial / STATE_FILE).write_text(json.dumps(state, indent=1))
            follow_umask(partial)
            replace_dir(partial, final)
        ranks.barrier()
        return final

    def restore_checkpoint(self, path: Path) -> tuple[dict, dict]:
        """Weights, ZeRO optimizer partitions and the lr schedule into the engine; (trainer state,
        this rank's RNG states). Refuses a checkpoint written by another process count or without
        DeepSpeed."""
        path = Path(path)
        state = read_state(path)
        saved_world = state.get("extra", {}).get("world_size")
        if not engines.has_engine_files(path):
            raise TrainError(f"cannot resume {path} with DeepSpeed", [Problem(
                str(path), "it was written by a single-process run without train.deepspeed",
                "resume with the recipe and process count that wrote it")])
        if saved_world != self.world.size:
            raise TrainError(f"cannot resume {path} with {self.world.size} process(es)", [Problem(
                str(path), f"it was written by {saved_world} process(es) (ZeRO partitions and the data split depend on it)",
                f"resume with --nproc {saved_world}")])
        engines.load_engine_files(self.engine, path)
        return state, load_rng(*rng_files(path, self.world.rank))

    # --- the end -------------------------------------------------------------------------------

    def consolidated_model(self, recipe):
        """Collective. On rank 0: a plain model holding the trained weights (the engine's module
        below ZeRO-3); None on other ranks."""
        engines.write_rank_digest(self.engine, self.world)
        if engines.zero_stage(self.engine) < 3:
            return self.engine.module if self.is_main else None
        state = engines.consolidated_state_dict(self.engine)
        if not self.is_main:
            return None
        import torch

        from phitune.models.build import load_trainable_model

        rng = random.getstate(), torch.get_rng_state()  # building a model reseeds; keep the run's RNG as it was
        model = load_trainable_model(recipe)
        random.setstate(rng[0])
        torch.set_rng_state(rng[1])
        params = dict(model.named_parameters())
        missing = sorted(n for n, p in params.items() if p.requires_grad and n not in state)
        unknown = sorted(n for n in state if n not in params and n not in dict(model.named_buffers()))
        if missing or unknown:
            raise TrainError("cannot consolidate the ZeRO-3 weights", [Problem(
                "train.deepspeed.stage", f"gathered weights do not match the model (missing {missing[:3]}, unknown {unknown[:3]})",
                "report this; meanwhile train with stage 2")])
        with torch.no_grad():
            for name, tensor in state.items():
                if name in params:
                    params[name].copy_(tensor)
        return model

    def resume_hint(self, final_dir: Path) -> str:
        return f"resume with: phitune train RECIPE --output {final_dir} --nproc {self.world.size} --resume"


def rng_files(checkpoint: Path, rank: int) -> tuple[Path, Path]:
    """Where a DeepSpeed checkpoint keeps rank `rank`'s RNG states (JSON, safetensors)."""
    folder = Path(checkpoint) / "rng"
    return folder / f"rank-{rank}.json", folder / f"rank-{rank}.safetensors"


def micro_loss(engine, batch: dict):
    """Summed token loss of one micro-batch through the engine. A batch with no learned token
    (a dummy) still runs a full forward: ZeRO's collectives need the same graph on every rank."""
    from phitune.models.loss import count_targets, model_inputs, token_loss_sum

    batch = {k: v.to(engine.device) for k, v in batch.items()}
    if count_targets(batch) > 0:
        return token_loss_sum(EngineAsModel(engine), batch)[0]
    logits = engine(**model_inputs(batch), use_cache=False).logits
    return logits.float().sum() * 0.0


class EngineAsModel:
    """The engine's forward (ZeRO hooks, backward bookkeeping) with the wrapped model's identity, so
    `token_loss_sum` sees that the HF model accepts `logits_to_keep` (computes only learned logits)."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self, **kwargs):
        return self.engine(**kwargs)

    def parameters(self):
        return self.engine.module.parameters()

    def get_base_model(self):
        return base_of(self.engine.module)


def check_launchable(recipe, output_dir: str | os.PathLike, resume: bool, overwrite: bool = False) -> None:
    """What can be checked before starting processes, so a problem is reported once, cleanly: the run
    folder can take this run and nobody holds its lock (rank 0 checks again and keeps the lock), the
    DeepSpeed config builds from the recipe, and deepspeed is installed."""
    from phitune.training.run_folder import open_run_folder

    open_run_folder(Path(output_dir), resume=resume, overwrite=overwrite).release()
    if recipe.train.deepspeed is not None:
        from phitune.distributed.ds_config import deepspeed_config

        deepspeed_config(recipe, device="gpu" if ranks.use_gpu() else "cpu")
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise TrainError("multi-process training needs the deepspeed package", [Problem(
            "train.deepspeed", "deepspeed is not installed", "pip install 'phitune[deepspeed]'")])
