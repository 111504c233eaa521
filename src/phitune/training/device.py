"""Where training runs: the GPU when there is one, else the CPU, and how many CPU threads to use.

CPU threads: PyTorch's intra-op threads wait for each other at every op (OpenMP barriers). When the
machine is already busy, a waiting thread is descheduled and every op stalls: measured here on a
2-core machine with a load average of 7-10, the tiny Phi-3 trained 4-18x SLOWER with 2 threads than
with 1 (e.g. 279 vs ~6,000 tokens/s), and a hidden-256 model 7x slower. So when the load average of
other processes already fills every core we use one thread; an idle machine keeps PyTorch's default. Results depend
on it only through float rounding (some reductions split work by thread): the demo recipe's losses
with 1 and 2 threads first differ at step 3, in the 7th digit. `OMP_NUM_THREADS` or
`PHITUNE_CPU_THREADS` set by the user always win. `phitune.train` applies this as a named phase
(`cpu_threads`, from the evaluation before training to the saved outputs) and restores the
process's thread count when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from phitune.models import base_of

log = logging.getLogger("phitune.training")


def place_model(model):
    """Move a model that loaded on the CPU to the GPU when one is available. Quantized or already
    dispatched models (device_map) stay where their loader put them. Returns the model's device."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cpu" and torch.cuda.is_available() and not _is_dispatched(model):
        model.to("cuda")
        device = next(model.parameters()).device
    return device


@contextlib.contextmanager
def cpu_threads(device) -> Iterator[int]:
    """Yield the intra-op thread count used while training; restore the previous one afterwards."""
    import torch

    previous = torch.get_num_threads()
    wanted = _wanted_threads(device, previous)
    if wanted != previous:
        log.info("using %d CPU thread(s) instead of %d: %s", wanted, previous, _reason(wanted))
        torch.set_num_threads(wanted)
    try:
        yield torch.get_num_threads()
    finally:
        if wanted != previous:
            torch.set_num_threads(previous)


def _wanted_threads(device, current: int) -> int:
    explicit = os.environ.get("PHITUNE_CPU_THREADS")
    if explicit and explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    if getattr(device, "type", "cpu") != "cpu" or "OMP_NUM_THREADS" in os.environ or current <= 1:
        return current
    return 1 if machine_is_busy() else current


def machine_is_busy() -> bool:
    """Other processes already fill every core: the 1-minute load average, less the one runnable
    thread this process has been all along (loading and tokenizing before the loop), still reaches
    the core count. Without that allowance a training run started right after another one, while
    the average still decays, read an idle machine as busy and trained on one thread."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return False
    return load - 1 >= (os.cpu_count() or 1)


def _reason(wanted: int) -> str:
    if os.environ.get("PHITUNE_CPU_THREADS"):
        return "PHITUNE_CPU_THREADS"
    return "the CPU is busy with other processes (more threads would wait on each other)" if wanted == 1 else ""


def _is_dispatched(model) -> bool:
    base = base_of(model)
    return bool(getattr(base, "hf_device_map", None)) or getattr(base, "hf_quantizer", None) is not None
