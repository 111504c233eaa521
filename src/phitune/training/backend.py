"""Execution backends: what differs between training in one process and training as one rank of a
DeepSpeed run. `phitune.training.run.train` and `phitune.training.loop.TrainLoop` run the same
phases and the same loop with either; the backend supplies:

- the run's scope (phitune.training.run.execution_backend): nothing for one process; for DeepSpeed
  the process group, stop requests recorded for the whole run and quieter logs on ranks other than 0;
- who decides (`is_main`, `on_main`), sums over ranks (`all_reduce_sum`) and this process's share
  of the batch plan (`shard_plan`);
- `setup`: AdamW + lr schedule on the model's device, or the DeepSpeed engine;
- one optimizer step: `step_totals` (label tokens and tokens of the whole window, and a stop every
  rank agrees on), `backward` over the window's micro-batches, `optimizer_step`;
- the held-out loss during training (`eval_loss`), checkpoints (`save_checkpoint`,
  `restore_checkpoint`), and the model to write at the end (`consolidated_model`).

Exact loss normalisation, in both: the loss of the window is (summed token cross-entropy over every
micro-batch of every rank) / (their label tokens), so accumulation and ranks equal one big batch.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, NamedTuple, TypeVar

from phitune.distributed.world import RankBatch, shard_plan
from phitune.errors import Problem, TrainError

T = TypeVar("T")


class StepTotals(NamedTuple):
    """One optimizer step's window summed over ranks, and the signal every rank stops for (0: none)."""

    targets: int
    tokens: int
    stop_signal: int = 0


class SingleProcess:
    """Training in this process: PyTorch's AdamW and LambdaLR on the model's device."""

    is_main = True
    rank, world_size = 0, 1
    collective = False  # a stop or a checkpoint concerns this process only
    runs_generation_eval = True

    def __init__(self) -> None:
        self.model = self.device = self.optimizer = self.scheduler = self.spec = None
        self.params: list = []

    # --- who does what -------------------------------------------------------------------------

    def on_main(self, fn: Callable[[], T]) -> T:
        return fn()

    def all_reduce_sum(self, values) -> list[float]:
        return [float(v) for v in values]

    def shard_plan(self, plan) -> list[RankBatch]:
        return shard_plan(plan, 0, 1)

    # --- setup ---------------------------------------------------------------------------------

    def setup(self, model, recipe, total_steps: int) -> None:
        """Put the model on the GPU when there is one; AdamW over its trainable parameters and the
        recipe's lr schedule."""
        from phitune.training.device import place_model
        from phitune.training.optim import make_optimizer
        from phitune.training.schedule import make_scheduler

        self.model, self.spec = model, recipe.train
        self.device = place_model(model)
        self.optimizer = make_optimizer(model, self.spec)
        self.scheduler = make_scheduler(self.optimizer, self.spec, total_steps)
        self.params = [p for p in model.parameters() if p.requires_grad]

    def state_extra(self) -> dict:
        return {}

    def tracking_params(self) -> dict:
        return {}

    # --- one optimizer step --------------------------------------------------------------------

    def stop_requests(self) -> contextlib.AbstractContextManager:
        """Ctrl-C / SIGTERM during the loop: finish the step in progress, then stop; a second one
        stops at once (phitune.training.signals.StopRequests)."""
        from phitune.training.signals import StopRequests

        return StopRequests(second_raises=True)

    def step_totals(self, targets: int, tokens: int) -> StepTotals:
        return StepTotals(targets, tokens)

    def backward(self, batches: list[dict], n_targets: int) -> float:
        """Backpropagate each micro-batch's summed token loss / the window's label tokens; the
        window's summed loss (one host sync per step, not per micro-batch)."""
        from phitune.models.loss import token_loss_sum
        from phitune.models.loss import to_device

        loss_sum = None
        for batch in batches:
            loss, _ = token_loss_sum(self.model, to_device(batch, self.device))
            (loss / max(n_targets, 1)).backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        return float(loss_sum)

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def optimizer_step(self) -> float | None:
        """Clip (when train.max_grad_norm is set), step the optimizer and the schedule; the gradient norm."""
        import torch

        grad_norm = None
        if self.spec.max_grad_norm is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.spec.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def set_training(self, on: bool) -> None:
        self.model.train(on)

    def eval_loss(self, eval_batches: list) -> float | None:
        from phitune.models.loss import evaluate_loss

        self.model.eval()
        try:
            loss, _ = evaluate_loss(self.model, eval_batches)
        finally:
            self.model.train()
        return loss

    # --- checkpoints and the end ---------------------------------------------------------------

    def save_checkpoint(self, run_dir: Path, step: int, state: dict, rng: dict) -> Path:
        from phitune.training.checkpoint import save_checkpoint

        return save_checkpoint(run_dir, step, self.model, self.optimizer, self.scheduler, state, rng)

    def restore_checkpoint(self, path: Path) -> tuple[dict, dict]:
        """Weights, optimizer and schedule from checkpoint `path`; (trainer state, RNG states)."""
        from phitune.training.checkpoint import load_checkpoint

        try:
            return load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        except (ValueError, KeyError, OSError) as exc:
            raise TrainError(f"cannot resume from {path}", [Problem(str(path), str(exc),
                             "start a new run in another --output folder")]) from None

    def consolidated_model(self, recipe):
        return self.model

    def resume_hint(self, final_dir: Path) -> str:
        return f"resume with: phitune train RECIPE --output {final_dir} --resume  (Python: train(recipe, out, resume=True))"
