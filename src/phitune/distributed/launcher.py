"""`phitune train RECIPE --nproc N`: start N copies of the same `phitune train` command under torchrun.

torchrun (torch.distributed.run, called in-process) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR
and MASTER_PORT for each copy; a copy sees WORLD_SIZE > 1 and trains as one rank (phitune.training.run
with the DeepSpeed backend) instead of launching again. Under Azure ML's `distribution: pytorch` the variables are already set,
so `phitune train` goes straight to the rank path: the same code, no launcher.

Each rank prints its own `error: ...` for a problem; torchrun's failure report (a traceback) is
replaced by one line naming the rank and exit code. OMP threads default to cores / processes
(torchrun would pick 1 and print a banner about it).
"""

from __future__ import annotations

import logging
import sys

from phitune.errors import Problem, TrainError
from phitune.distributed.world import free_port, launched_by_torchrun, prepare_env_for_children, use_gpu

SHUTDOWN_TIMEOUT_S = 300


def child_argv(args, output: str) -> list[str]:
    """The `phitune train ...` arguments each rank runs: the same command (its --nproc only shapes
    messages there, since RANK is set)."""
    argv = ["train", args.recipe, "--output", output, "--nproc", str(args.nproc)]
    for override in args.overrides:
        argv += ["--set", override]
    for flag, on in (("--resume", args.resume), ("--overwrite", getattr(args, "overwrite", False)),
                     ("--no-progress", args.no_progress), ("--verbose", args.verbose)):
        if on:
            argv.append(flag)
    return argv


def launch(nproc: int, argv: list[str]) -> int:
    """Run `python -m phitune.cli *argv` as `nproc` ranks on this machine; the first failing rank's
    exit code (0 when all succeed)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    prepare_env_for_children(nproc)
    args = get_args_parser().parse_args([
        "--nproc_per_node", str(nproc), "--nnodes", "1", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "--module", "phitune.cli",
        # on SIGINT/SIGTERM torchrun passes the signal on and waits this long before SIGKILL: time for
        # the ranks to finish their step and write the checkpoint together
        "--shutdown_timeout", str(SHUTDOWN_TIMEOUT_S)])
    args.training_script_args = list(argv)  # not parsed by torchrun (it would take --nproc for its own option)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = min(exc.failures.items())
        print(f"rank {rank} of {nproc} failed with exit code {failure.exitcode}", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException as exc:  # Ctrl-C or SIGTERM: torchrun passed it on and waited for the ranks
        print(f"interrupted ({exc.sigval.name}); the ranks were stopped", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


def check_nproc(nproc: int) -> None:
    if nproc < 1:
        raise TrainError(f"--nproc must be at least 1 (got {nproc})", [Problem("--nproc", f"is {nproc}", "use --nproc 2 or more")])
    if use_gpu():
        import torch

        if nproc > torch.cuda.device_count():
            raise TrainError(f"--nproc {nproc} needs {nproc} GPUs", [Problem(
                "--nproc", f"this machine has {torch.cuda.device_count()} GPU(s)", "use one process per GPU")])


def should_launch(nproc: int | None) -> bool:
    """--nproc N > 1 outside a multi-process launcher (inside one the ranks already exist)."""
    return bool(nproc and nproc > 1) and not launched_by_torchrun()
