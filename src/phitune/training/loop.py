"""The optimisation loop: a plain PyTorch loop, no HF Trainer, so per-step overhead is ours to keep
small (we must beat TRL's SFTTrainer on tokens/s).

Exactness choices:
- loss = summed token cross-entropy / label tokens of the whole accumulation window, so gradient
  accumulation equals one big batch (see models/loss.py);
- the data order is a pure function of (seed, epoch) and the position is (epoch, micro-batch
  index); with the RNG states taken right after each optimizer step, a checkpoint written at any
  step boundary resumes to bit-identical weights;
- Ctrl-C or SIGTERM cannot land between the optimizer update and the bookkeeping that records it
  (both are deferred for those few microseconds), so the saved state is always consistent; either
  one saves a checkpoint of the last completed step (phitune.training.signals).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from phitune.errors import Problem, TrainError
from phitune.training import checkpoint as ckpt
from phitune.host_memory import training_allocator
from phitune.training.device import to_device
from phitune.models.loss import count_targets, evaluate_loss, token_loss_sum


@dataclass
class TrainState:
    """Everything about progress that a checkpoint must carry (JSON-serialisable)."""

    total_steps: int
    global_step: int = 0
    epoch: int = 0
    batch_index: int = 0  # next micro-batch of `epoch`'s plan
    train_tokens: int = 0  # non-padding input tokens processed
    label_tokens: int = 0
    step_time_s: float = 0.0  # time inside optimizer steps only (tokens/s is measured on this)
    loop_time_s: float = 0.0  # wall time of the loop, evaluation and checkpoints included
    history: list[dict] = field(default_factory=list)  # one entry per optimizer step
    eval_history: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # e.g. before-training evaluation, recipe fingerprint

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainState":
        return cls(**data)


@dataclass(frozen=True)
class StepInfo:
    """What callbacks see after each optimizer step."""

    step: int
    total_steps: int
    loss: float
    lr: float
    eval_loss: float | None
    tokens_per_s: float
    model: Any = field(default=None, repr=False, compare=False)  # the model being trained (read-only use)


class Callback(Protocol):
    """Called after every optimizer step (after logging, evaluation and any checkpoint). Raising
    KeyboardInterrupt here behaves exactly like Ctrl-C."""

    def on_step_end(self, info: StepInfo) -> None: ...


class TrainLoop:
    def __init__(self, *, model, optimizer, scheduler, spec, examples: Sequence, eval_batches: list,
                 plan_epoch: Callable[[int], list[list[int]]], collate: Callable[[list], dict],
                 state: TrainState, run_dir: Path, tracker, callbacks: Sequence[Any] = (), progress: bool = True):
        self.model, self.optimizer, self.scheduler, self.spec = model, optimizer, scheduler, spec
        self.examples, self.eval_batches = examples, eval_batches
        self.plan_epoch, self.collate = plan_epoch, collate
        self.state, self.run_dir, self.tracker = state, Path(run_dir), tracker
        self.callbacks, self.progress = list(callbacks), progress
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = next(model.parameters()).device
        self._rng = ckpt.capture_rng()  # RNG at the current resume point
        self._saved_step: int | None = None
        self.stop = None  # phitune.training.signals.StopRequests while the loop runs
        self._plans: dict[int, list[list[int]]] = {}

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> TrainState:
        """Train until `total_steps`; on KeyboardInterrupt save a checkpoint and re-raise."""
        with training_allocator(self.model), self._stop_requests():  # host_memory.py: where freed activations go
            return self._run()

    def _stop_requests(self):
        """Ctrl-C / SIGTERM during the loop: finish the step in progress, then stop (see `_check_stop`)."""
        from phitune.training.signals import StopRequests

        self.stop = StopRequests(second_raises=True)
        return self.stop

    def _check_stop(self) -> None:
        """After a completed step: a signal arrived meanwhile, so checkpoint (in `_run`) and stop."""
        from phitune.training.signals import stop_for

        if self.stop is not None and self.stop.signum:
            raise stop_for(self.stop.signum)

    def _run(self) -> TrainState:
        from tqdm.auto import tqdm

        st = self.state
        bar = tqdm(total=st.total_steps, initial=st.global_step, desc="train", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        started = time.perf_counter()
        self.model.train()
        try:
            while st.global_step < st.total_steps:
                plan = self._plan(st.epoch)
                if st.batch_index >= len(plan):
                    st.epoch, st.batch_index = st.epoch + 1, 0
                    continue
                window = plan[st.batch_index : st.batch_index + self.spec.grad_accum]
                record = self._step(window)
                eval_loss = self._maybe_evaluate()
                self._maybe_save()
                bar.update(1)
                tok_s = st.train_tokens / st.step_time_s if st.step_time_s else 0.0
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
                info = StepInfo(st.global_step, st.total_steps, record["loss"], record["lr"], eval_loss, tok_s, self.model)
                for cb in self.callbacks:
                    cb.on_step_end(info)
                self._check_stop()
            if not st.eval_history or st.eval_history[-1]["step"] != st.global_step:
                self._evaluate()
        except KeyboardInterrupt:
            st.loop_time_s += time.perf_counter() - started
            started = time.perf_counter()
            with _defer_sigint():  # a second Ctrl-C / SIGTERM must not cut the checkpoint short
                self.save()
            raise
        finally:
            st.loop_time_s += time.perf_counter() - started
            bar.close()
        return st

    def _step(self, window: list[list[int]]) -> dict:
        """One optimizer step over a window of micro-batches (the accumulation window)."""
        import torch

        t0 = time.perf_counter()
        batches = [self.collate([self.examples[i] for i in idx]) for idx in window]
        n_targets = sum(count_targets(b) for b in batches)  # on the CPU tensors: no device sync
        loss_sum = None
        for batch in batches:
            loss, _ = token_loss_sum(self.model, to_device(batch, self.device))
            (loss / max(n_targets, 1)).backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        loss_value = float(loss_sum) / max(n_targets, 1)  # one host sync per step, not per micro-batch
        self._check_finite(loss_value)
        lr = self.optimizer.param_groups[0]["lr"]
        with _defer_sigint():
            grad_norm = None
            if self.spec.max_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.spec.max_grad_norm))
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            tokens = sum(len(self.examples[i]) for idx in window for i in idx)
            record = self._record_step(window_len=len(window), tokens=tokens, n_targets=n_targets, loss=loss_value,
                                       lr=lr, grad_norm=grad_norm, started=t0)
        self._log_step(record)
        return record

    def _check_finite(self, loss_value: float) -> None:
        if not math.isfinite(loss_value):
            raise TrainError(f"training diverged: the loss is {loss_value} at step {self.state.global_step + 1}", [
                Problem("train.lr", f"lr {self.spec.lr} may be too high for this model",
                        "lower train.lr, add warmup (train.warmup_ratio: 0.05) or keep train.max_grad_norm set")])

    def _record_step(self, *, window_len: int, tokens: int, n_targets: int, loss: float, lr: float,
                     grad_norm: float | None, started: float) -> dict:
        """Advance the state past a step whose weights just changed (call inside _defer_sigint, so a
        Ctrl-C never separates the weights from the step counter)."""
        st = self.state
        st.global_step += 1
        st.batch_index += window_len
        st.train_tokens += tokens
        st.label_tokens += n_targets
        st.step_time_s += time.perf_counter() - started
        record = {"step": st.global_step, "loss": loss, "lr": lr, "tokens": tokens, "epoch": st.epoch}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        st.history.append(record)
        self._rng = ckpt.capture_rng()  # evaluation consumes no randomness: this is the next step's state
        return record

    def _log_step(self, record: dict) -> None:
        st = self.state
        if st.global_step % self.spec.log_every == 0 or st.global_step == st.total_steps:
            tok_s = st.train_tokens / st.step_time_s if st.step_time_s else 0.0
            metrics = {"train_loss": record["loss"], "lr": record["lr"], "tokens_per_s": tok_s, "epoch": float(st.epoch)}
            if "grad_norm" in record:
                metrics["grad_norm"] = record["grad_norm"]
            self.tracker.log_metrics(metrics, step=st.global_step)

    def _plan(self, epoch: int) -> list[list[int]]:
        if epoch not in self._plans:
            self._plans = {epoch: self.plan_epoch(epoch)}
        return self._plans[epoch]

    # --- evaluation and checkpoints ----------------------------------------------------------------

    def _maybe_evaluate(self) -> float | None:
        every = self.spec.eval_every
        if every and self.state.global_step % every == 0 and self.state.global_step < self.state.total_steps:
            return self._evaluate()
        return None

    def _evaluate(self) -> float | None:
        if not self.eval_batches:
            return None
        self.model.eval()
        try:
            loss, _ = evaluate_loss(self.model, self.eval_batches)
        finally:
            self.model.train()
        if loss is not None:
            self.state.eval_history.append({"step": self.state.global_step, "eval_loss": loss})
            self.tracker.log_metrics({"eval_loss": loss}, step=self.state.global_step)
        return loss

    def _maybe_save(self) -> None:
        every = self.spec.save_every
        if every and self.state.global_step % every == 0 and self.state.global_step < self.state.total_steps:
            self.save()

    def save(self) -> Path | None:
        """Checkpoint the last step boundary (skipped if that exact state is already on disk)."""
        if self._saved_step == self.state.global_step:
            return None
        path = ckpt.save_checkpoint(self.run_dir, self.state.global_step, self.model, self.optimizer,
                                    self.scheduler, self.state.to_dict(), self._rng)
        self._saved_step = self.state.global_step
        return path

    def restore_rng(self, rng: dict) -> None:
        """Continue a resumed run with the RNG exactly as the interrupted run had it."""
        ckpt.restore_rng(rng)
        self._rng = rng
        self._saved_step = self.state.global_step


def _defer_sigint():
    """Hold Ctrl-C and SIGTERM while the weights and the step counter change together
    (phitune.training.signals.deferred)."""
    from phitune.training.signals import deferred

    return deferred()
