"""Where freed tensor memory goes on CPU (glibc malloc only; elsewhere everything here is a no-op),
and the process's peak resident memory.

Two policies, one per kind of base model, both set through glibc's mallopt:

- Return (`freed_memory_returned`, held by `phitune.train` for the whole run, so from before its
  model loads): blocks of 1 MB and more come from mmap and go back to the kernel on free. glibc's default raises its mmap threshold each time a large
  mmapped block is freed (up to 32 MB), so after a few steps most tensors live in a heap that never
  shrinks. Measured on an 814 M-param Phi-3, QLoRA nf4, batch 2 x 64 tokens: peak RSS 2.08 GB with
  the default, 1.55 GB with a fixed 1 MB threshold.
- Keep (`keep_freed_memory`, while a full-precision model trains): blocks up to 1 GiB come from the
  heap and the heap is never trimmed, so every step reuses the pages the last one freed instead of
  page-faulting them in again, zero-filled. On the hidden-256 x 4-layer tiny model that was ~230 k
  faults and ~0.4 s of kernel time per step, nearly half the step's CPU; kept, steps took about half
  the CPU time. Peak RSS of a full-precision run stays what it was (the same tensors are alive at the
  peak).

A quantized base (QLoRA) trains under Return: every layer dequantizes its weights into mid-size
temporaries in forward and again in backward, interleaved with saved activations, and a heap that
is never trimmed fragments around them: QLoRA's peak on the 814 M model was 0.64-0.73x LoRA's under
Keep and 0.38x under Return (benchmarks/qlora_memory.py). Saving memory is why QLoRA was chosen.

Nothing here changes the allocator on import or as a side effect of loading a model: each policy is
a context manager its caller enters (`phitune.train`, `TrainLoop.run`), and leaving it brings back
the thresholds that were in force before (glibc's initial 128 KiB when nothing was set; glibc's own
raising of that threshold stays off once any threshold was set).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from typing import Iterator

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
RETURN_MMAP_THRESHOLD = 1 << 20  # Return: blocks of 1 MB and more are mmapped, unmapped on free
KEEP_MMAP_THRESHOLD = 1 << 30  # Keep: blocks up to 1 GiB come from the heap and are reused
KEEP_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: hand back the heap top only when 2 GiB of it is free
GLIBC_DEFAULT = 128 * 1024  # both thresholds' initial value in glibc

_mmap_threshold: int | None = None  # what this module last set outside keep_freed_memory (None: glibc's own)


def return_freed_memory_to_os() -> bool:
    """Set glibc's mmap threshold to 1 MB for the rest of this process; True if it was set. Leaves a
    threshold the user chose (MALLOC_MMAP_THRESHOLD_) alone. For a scoped change use
    `freed_memory_returned`; this is for a process that does nothing else (a measuring child)."""
    global _mmap_threshold
    if _mmap_threshold == RETURN_MMAP_THRESHOLD:
        return True
    libc = _glibc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if libc.mallopt(M_MMAP_THRESHOLD, RETURN_MMAP_THRESHOLD) == 1:
        _mmap_threshold = RETURN_MMAP_THRESHOLD
        return True
    return False


@contextlib.contextmanager
def freed_memory_returned() -> Iterator[bool]:
    """Return freed blocks of 1 MB and more to the OS while the body runs; yields whether glibc took
    the setting. On exit the threshold in force before comes back."""
    global _mmap_threshold
    previous = _mmap_threshold
    returned = return_freed_memory_to_os()
    try:
        yield returned
    finally:
        libc = _glibc()
        if returned and previous != RETURN_MMAP_THRESHOLD and libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, previous or GLIBC_DEFAULT)
            _mmap_threshold = previous


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """Keep freed blocks in the heap while the body runs; yields whether glibc took the setting.
    On exit the previous thresholds come back and free heap memory is returned to the kernel."""
    libc = _glibc()
    tuned = bool(libc and libc.mallopt(M_MMAP_THRESHOLD, KEEP_MMAP_THRESHOLD)
                 and libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD))
    try:
        yield tuned
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, _mmap_threshold or GLIBC_DEFAULT)
            libc.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT)
            libc.malloc_trim(0)


def training_allocator(model) -> contextlib.AbstractContextManager:
    """The policy a training loop runs `model` under: Return for a quantized base, Keep otherwise."""
    if is_quantized(model):
        return freed_memory_returned()
    return keep_freed_memory()


def is_quantized(model) -> bool:
    """Whether any of `model`'s modules is a bitsandbytes quantized layer (QLoRA's base)."""
    return any(type(m).__module__.startswith("bitsandbytes") for m in model.modules())


def peak_rss_bytes() -> int:
    """Peak resident memory of this process image, in bytes. On Linux VmHWM, not ru_maxrss: Linux
    carries the parent's high-water mark into ru_maxrss across fork + exec, so a child of a 900 MB
    parent (e.g. one `phitune compare` run) reports at least 900 MB whatever it does."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc if hasattr(libc, "gnu_get_libc_version") else None  # musl has mallopt as a stub
    except (OSError, AttributeError):
        return None
