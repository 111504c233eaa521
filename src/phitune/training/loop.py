"""The optimisation loop: a plain PyTorch loop, no HF Trainer, so per-step overhead is ours to keep
small (we must beat TRL's SFTTrainer on tokens/s). The same loop runs in one process and on every
rank of a DeepSpeed run: what differs (the step's backward and optimizer update, the held-out loss,
checkpoints, stopping) is the backend's (phitune.training.backend).

Exactness choices:
- loss = summed token cross-entropy / label tokens of the whole accumulation window, so gradient
  accumulation equals one big batch (see models/loss.py);
- the data order is a pure function of (seed, epoch) and the position is (epoch, micro-batch
  index); with the RNG states taken right after each optimizer step, a checkpoint written at any
  step boundary resumes to bit-identical weights;
- Ctrl-C or SIGTERM cannot land between the optimizer update and the bookkeeping that records it
  (both are deferred for those few microseconds), so the saved state is always consistent; either
  one saves a checkpoint of the last completed step (phitune.training.signals). Ranks of a
  DeepSpeed run stop only after a step all of them agreed on, and checkpoint together.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from phitune.distributed.world import RankBatch
from phitune.errors import Problem, TrainError
from phitune.host_memory import training_allocator
from phitune.models.loss import IGNORE_INDEX, count_targets
from phitune.training import checkpoint as ckpt
from phitune.training.signals import deferred, stop_for


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
    """Optimizer steps from `state` to `state.total_steps` over `plan_epoch(epoch)` (this process's
    micro-batches of each epoch), through `backend` (after its `setup`)."""

    def __init__(self, *, backend, spec, examples: Sequence, eval_batches: list,
                 plan_epoch: Callable[[int], list[RankBatch]], collate: Callable[[list], dict],
                 state: TrainState, run_dir: Path, tracker, callbacks: Sequence[Any] = (), progress: bool = True):
        self.backend, self.spec = backend, spec
        self.examples, self.eval_batches = examples, eval_batches
        self.plan_epoch, self.collate = plan_epoch, collate
        self.state, self.run_dir, self.tracker = state, Path(run_dir), tracker
        self.callbacks, self.progress = list(callbacks), progress
        self._rng = ckpt.capture_rng()  # RNG at the current resume point
        self._saved_step: int | None = None
        self._agreed_stop = False  # every rank saw the same stop request: a collective checkpoint is safe
        self.last_checkpoint: Path | None = None  # the checkpoint this loop wrote last
        self.stop = None  # phitune.training.signals.StopRequests while the loop runs
        self._plans: dict[int, list[RankBatch]] = {}

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> TrainState:
        """Train until `total_steps`; on KeyboardInterrupt save a checkpoint and re-raise."""
        # host_memory.py: where freed activations go; the backend: how a signal stops the loop
        with training_allocator(self.backend.model), self.backend.stop_requests() as stop:
            self.stop = stop
            return self._run()

    def _check_stop(self) -> None:
        """After a completed step: a signal arrived meanwhile, so checkpoint (in `_run`) and stop. Ranks
        of a collective backend stop only together (`_step`): one rank stopping alone would leave the
        others waiting."""
        if not self.backend.collective and self.stop is not None and self.stop.signum:
            raise stop_for(self.stop.signum)

    def _run(self) -> TrainState:
        from tqdm.auto import tqdm

        st = self.state
        bar = tqdm(total=st.total_steps, initial=st.global_step, desc="train", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        started = time.perf_counter()
        self.backend.set_training(True)
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
                info = StepInfo(st.global_step, st.total_steps, record["loss"], record["lr"], eval_loss, tok_s,
                                self.backend.model)
                for cb in self.callbacks:
                    cb.on_step_end(info)
                self._check_stop()
            if not st.eval_history or st.eval_history[-1]["step"] != st.global_step:
                self._evaluate()
        except KeyboardInterrupt:
            st.loop_time_s += time.perf_counter() - started
            started = time.perf_counter()
            with deferred():  # a second Ctrl-C / SIGTERM must not cut the checkpoint short
                self.save()
            raise
        finally:
            st.loop_time_s += time.perf_counter() - started
            bar.close()
        return st

    def _step(self, window: list[RankBatch]) -> dict:
        """One optimizer step over a window of micro-batches (the accumulation window)."""
        t0 = time.perf_counter()
        batches = [self._collate(rank_batch) for rank_batch in window]
        local_targets = sum(count_targets(b) for b in batches)  # on the CPU tensors: no device sync
        local_tokens = sum(len(self.examples[i]) for rb in window if not rb.dummy for i in rb.indices)
        totals = self.backend.step_totals(local_targets, local_tokens)
        loss_value = self.backend.backward(batches, totals.targets) / max(totals.targets, 1)
        self._check_finite(loss_value)  # the same global value on every rank: all stop together
        lr = self.backend.lr()
        with deferred():
            grad_norm = self.backend.optimizer_step()
            record = self._record_step(window_len=len(window), tokens=totals.tokens, n_targets=totals.targets,
                                       loss=loss_value, lr=lr, grad_norm=grad_norm, started=t0)
        self._log_step(record)
        if totals.stop_signal:  # every rank finishes this step, then all checkpoint together and stop
            self._agreed_stop = True
            raise stop_for(totals.stop_signal)
        return record

    def _collate(self, rank_batch: RankBatch) -> dict:
        batch = self.collate([self.examples[i] for i in rank_batch.indices])
        if rank_batch.dummy:  # runs forward and backward like the others, learns nothing
            batch["labels"] = batch["labels"].new_full(batch["labels"].shape, IGNORE_INDEX)
        return batch

    def _check_finite(self, loss_value: float) -> None:
        if not math.isfinite(loss_value):
            raise TrainError(f"training diverged: the loss is {loss_value} at step {self.state.global_step + 1}", [
                Problem("train.lr", f"lr {self.spec.lr} may be too high for this model",
                        "lower train.lr, add warmup (train.warmup_ratio: 0.05) or keep train.max_grad_norm set")])

    def _record_step(self, *, window_len: int, tokens: int, n_targets: int, loss: float, lr: float,
                     grad_norm: float | None, started: float) -> dict:
        """Advance the state past a step whose weights just changed (call inside `deferred`, so a
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

    def _plan(self, epoch: int) -> list[RankBatch]:
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
        loss = self.backend.eval_loss(self.eval_batches)
        if loss is not None:
            self.state.eval_history.append({"step": self.state.global_step, "eval_loss": loss})
            self.tracker.log_metrics({"eval_loss": loss}, step=self.state.global_step)
        return loss

    def _maybe_save(self) -> None:
        every = self.spec.save_every
        if every and self.state.global_step % every == 0 and self.state.global_step < self.state.total_steps:
            self.save()

    def save(self) -> Path | None:
        """Checkpoint the last step boundary (skipped if that exact state is already on disk). With a
        collective backend, after a KeyboardInterrupt only when every rank agreed to stop at this step
        (a signal, see `_step`): one raised on a single rank (e.g. by a callback) would leave the others
        waiting, so then the last `train.save_every` checkpoint is kept."""
        stopping = isinstance(sys.exc_info()[1], KeyboardInterrupt)
        if stopping and self.backend.collective and not self._agreed_stop:
            return None
        if self._saved_step == self.state.global_step:
            return None
        if not stopping:  # a resumed run continues this tracked run; on a stop the id saved before stands
            self.state.extra["tracking_run_id"] = getattr(self.tracker, "run_id", None)  # (reading it may wait)
        path = self.backend.save_checkpoint(self.run_dir, self.state.global_step, self.state.to_dict(), self._rng)
        self._saved_step = self.state.global_step
        self.last_checkpoint = path
        return path

    def restore_rng(self, rng: dict) -> None:
        """Continue a resumed run with the RNG exactly as the interrupted run had it."""
        ckpt.restore_rng(rng)
        self._rng = rng
        self._saved_step = self.state.global_step
