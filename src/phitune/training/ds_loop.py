"""`TrainLoop` driven through a DeepSpeed engine, one process per rank.

Only the step, the evaluation and the checkpoints differ from the single-process loop; the data
position, step arithmetic, logging, callbacks and progress bar are the parent's.

Loss normalisation (exact, as in the single-process loop): the label-token count of the whole
global accumulation window (every micro-batch on every rank) is all-reduced before the forward
passes, and each micro-batch backpropagates `loss_sum x world_size / global_count`. The engine
averages gradients over ranks (divides by world_size) and, with `scale_wrt_gas=False`, does not
divide by the accumulation steps, so the gradient is that of (summed token loss over the global
window) / (its label tokens): the same as one process with a world_size times larger batch.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from phitune.models import base_of
from phitune.distributed import deepspeed_engine as dse
from phitune.distributed import world as dist
from phitune.training.loop import TrainLoop, _defer_sigint
from phitune.models.loss import IGNORE_INDEX, count_targets, model_inputs, token_loss_sum
from phitune.training.signals import stop_for


class DeepSpeedLoop(TrainLoop):
    def __init__(self, *, engine, world: dist.World, stop=None, **kwargs):
        super().__init__(model=engine, optimizer=engine.optimizer, scheduler=engine.lr_scheduler, **kwargs)
        self.engine, self.world = engine, world
        self.rank_stop = stop  # phitune.training.signals.StopRequests (installed by ds_run): signals this rank received
        self._agreed_stop = False  # every rank saw the same stop request: a collective checkpoint is safe

    def _step(self, window: list) -> dict:
        import torch

        t0, engine = time.perf_counter(), self.engine
        batches = [self._collate(rb) for rb in window]
        local_targets = sum(count_targets(b) for b in batches)
        local_tokens = sum(len(self.examples[i]) for rb in window if not rb.dummy for i in rb.indices)
        signum = self.rank_stop.signum if self.rank_stop is not None else 0
        # the stop flags ride on the all-reduce every step makes anyway: all ranks see the same sums
        n_targets, tokens, n_term, n_int = (int(v) for v in dist.all_reduce_sum(
            [local_targets, local_tokens, signum == signal.SIGTERM, signum == signal.SIGINT]))
        scale = self.world.size / max(n_targets, 1)
        local_loss = 0.0
        for batch in batches:
            loss = micro_loss(engine, batch)
            engine.backward(loss * scale, scale_wrt_gas=False)
            local_loss += float(loss.detach())
        (loss_sum,) = dist.all_reduce_sum([local_loss])
        loss_value = loss_sum / max(n_targets, 1)
        self._check_finite(loss_value)  # the same global value on every rank: all stop together
        lr = engine.get_lr()[0]
        with _defer_sigint():
            engine.step()
            norm = engine.get_global_grad_norm() if self.spec.max_grad_norm is not None else None
            grad_norm = float(norm) if isinstance(norm, (int, float, torch.Tensor)) else None
            record = self._record_step(window_len=len(window), tokens=tokens, n_targets=n_targets, loss=loss_value,
                                       lr=lr, grad_norm=grad_norm, started=t0)
        self._log_step(record)
        if n_term or n_int:  # finish this step on every rank, then checkpoint together and stop
            self._agreed_stop = True
            raise stop_for(signal.SIGTERM if n_term else signal.SIGINT)
        return record

    def _stop_requests(self):
        """ds_run's StopRequests already records signals; the stop is agreed in `_step`."""
        import contextlib

        return contextlib.nullcontext()

    def _check_stop(self) -> None:
        pass  # `_step` raises once every rank knows (a rank stopping alone would hang the others)

    def _collate(self, rank_batch: dist.RankBatch) -> dict:
        batch = self.collate([self.examples[i] for i in rank_batch.indices])
        if rank_batch.dummy:
            batch["labels"] = batch["labels"].new_full(batch["labels"].shape, IGNORE_INDEX)
        return batch

    def _evaluate(self) -> float | None:
        """Held-out loss, eval batches split across ranks and the sums all-reduced."""
        if not self.eval_batches:
            return None
        import torch

        mine, pad = dist.shard_list(self.eval_batches, self.world.rank, self.world.size)
        dummy = dict(self.eval_batches[0])
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
        total, count = dist.all_reduce_sum([total, count])
        if not count:
            return None
        loss = total / count
        self.state.eval_history.append({"step": self.state.global_step, "eval_loss": loss})
        self.tracker.log_metrics({"eval_loss": loss}, step=self.state.global_step)
        return loss

    def save(self) -> Path | None:
        """Collective checkpoint. After a KeyboardInterrupt only when every rank agreed to stop at this
        step (a signal, see `_step`); one raised on a single rank (e.g. by a callback) would leave the
        others waiting, so then the last `train.save_every` checkpoint is kept."""
        stopping = isinstance(sys.exc_info()[1], KeyboardInterrupt)
        if (stopping and not self._agreed_stop) or self._saved_step == self.state.global_step:
            return None
        self.state.extra["world_size"] = self.world.size
        path = dse.save_checkpoint(self.engine, self.run_dir, self.state.global_step, self.state.to_dict(),
                                   self._rng, self.world)
        self._saved_step = self.state.global_step
        return path


def micro_loss(engine, batch: dict):
    """Summed token loss of one micro-batch through the engine. A batch with no learned token
    (a dummy) still runs a full forward: ZeRO's collectives need the same graph on every rank."""
    batch = {k: v.to(engine.device) for k, v in batch.items()}
    if count_targets(batch) > 0:
        return token_loss_sum(_EngineAsModel(engine), batch)[0]
    logits = engine(**model_inputs(batch), use_cache=False).logits
    return logits.float().sum() * 0.0


class _EngineAsModel:
    """The engine's forward (ZeRO hooks, backward bookkeeping) with the wrapped model's identity, so
    `token_loss_sum` sees that the HF model accepts `logits_to_keep` (computes only learned logits)."""

    def __init__(self, engine):
        self._engine = engine

    def __call__(self, **kwargs):
        return self._engine(**kwargs)

    def parameters(self):
        return self._engine.module.parameters()

    def get_base_model(self):
        module = self._engine.module
        return base_of(module)
