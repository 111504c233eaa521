"""Ranks and the process group for multi-process training, and how data is split between ranks.

Who is who comes from the variables torchrun and Azure ML's `distribution: pytorch` set for every
process: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. A run takes the distributed path
(phitune.training.run with the DeepSpeed backend, phitune.training.deepspeed_backend) when the recipe sets
`train.deepspeed` or WORLD_SIZE > 1; everything else runs in one process. Process groups are gloo on CPU
(with `DS_ACCELERATOR=cpu`) and NCCL on GPU, joined for the length of one run by `process_group()`.

Data split: every rank builds the same batch plan from the seed (micro-batches of `train.batch_size`),
and global micro-batch j is plan entries j*W .. j*W+W-1, rank r taking entry j*W+r. So the effective
batch is batch_size x world_size x grad_accum, and with W = 1 the plan is the single-process plan. A
rank left without an entry in the last group gets a *dummy*: a real example whose labels are all
masked. It still runs forward and backward, because ZeRO's collectives (parameter gathers in ZeRO-3,
gradient buckets in ZeRO-2) need every rank to run the same graph, and it adds nothing to the loss.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence, TypeVar

T = TypeVar("T")
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class RankBatch(NamedTuple):
    """This rank's share of one global micro-batch: example indices, and whether it is a dummy."""

    indices: list[int]
    dummy: bool = False


def world_from_env(env: dict | None = None) -> World:
    env = os.environ if env is None else env
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def launched_by_torchrun(env: dict | None = None) -> bool:
    """Inside torchrun / Azure ML's PyTorch distribution with more than one process."""
    env = os.environ if env is None else env
    return "RANK" in env and int(env.get("WORLD_SIZE", 1)) > 1


def wants_distributed(recipe) -> bool:
    """DeepSpeed (any world size: ZeRO offload is useful on one device too) or several processes."""
    return recipe.train.deepspeed is not None or world_from_env().size > 1


def use_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def prepare_env() -> list[str]:
    """Variables DeepSpeed needs before it is imported: the CPU accelerator, a persistent cache for
    its JIT-built comm op (~27 s the first time), and a one-process rendezvous when not launched
    (without them DeepSpeed looks for mpi4py). Returns the names it added to os.environ (variables
    already set are left alone); `process_group` removes them again when the run ends."""
    before = set(os.environ)
    if not use_gpu():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    return [name for name in os.environ if name not in before]


def prepare_env_for_children(nproc: int) -> None:
    """What a launcher exports to its ranks: accelerator, extension cache, and a fair share of cores."""
    if not use_gpu():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))


@contextlib.contextmanager
def process_group() -> Iterator[World]:
    """This process's place in the process group, joined for the body (one training run): the
    variables `prepare_env` adds to os.environ are set only while inside, so a later
    `phitune train --nproc N` from the same process does not think it is a rank. A process group the
    caller had already set up is used and left as it was."""
    import torch.distributed as torch_dist

    added = prepare_env()
    ours = not (torch_dist.is_available() and torch_dist.is_initialized())
    try:
        yield init_process_group()
    finally:
        if ours:
            destroy_process_group()
        for name in added:
            os.environ.pop(name, None)


def init_process_group() -> World:
    """Join the process group (idempotent; the environment must be prepared, see `process_group`)
    and return this process's place in it."""
    import deepspeed
    import torch

    world = world_from_env()
    if use_gpu():
        torch.cuda.set_device(world.local_rank)
    import torch.distributed as torch_dist

    if not torch_dist.is_initialized():
        import io

        # On CPU this JIT-builds (first time, needs g++) and loads DeepSpeed's shared-memory comm op,
        # then print()s "built successfully" on every rank: keep that out of the command's output.
        with contextlib.redirect_stdout(io.StringIO()):
            deepspeed.init_distributed(dist_backend="nccl" if use_gpu() else "gloo", verbose=False)
    return world


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a rendezvous: MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard_plan(plan: Sequence[list[int]], rank: int, world_size: int) -> list[RankBatch]:
    """This rank's micro-batches of a global plan (see the module docstring). Same length on every rank."""
    if world_size == 1:
        return [RankBatch(list(b)) for b in plan]
    out = []
    for start in range(0, len(plan), world_size):
        group = plan[start : start + world_size]
        if rank < len(group):
            out.append(RankBatch(list(group[rank])))
        else:
            out.append(RankBatch(list(group[0][:1]), dummy=True))
    return out


def shard_list(items: Sequence[T], rank: int, world_size: int) -> tuple[list[T], int]:
    """Items rank, rank+W, ... and how many dummy passes pad this rank to the longest share."""
    mine = list(items[rank::world_size])
    longest = -(-len(items) // world_size)
    return mine, longest - len(mine)


# --- collectives (no-ops without a process group) --------------------------------------------------


def _active() -> bool:
    import torch.distributed as torch_dist

    return torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        import torch.distributed as torch_dist

        torch_dist.barrier()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over ranks (float64, so token counts stay exact)."""
    if not _active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as torch_dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    torch_dist.all_reduce(tensor)
    return tensor.tolist()


def on_main(world: World, fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and give every rank its result; an exception there is raised on
    every rank (so no rank waits forever for a rank that already failed)."""
    result: list[Any] = [None]
    if world.is_main:
        try:
            result[0] = ("ok", fn())
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            result[0] = ("error", exc)
    if _active():
        import torch.distributed as torch_dist

        torch_dist.broadcast_object_list(result, src=0)
    kind, value = result[0]
    if kind == "error":
        raise value
    return value


def destroy_process_group() -> None:
    import torch.distributed as torch_dist

    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
