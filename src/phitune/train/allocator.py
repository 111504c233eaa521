"""Keep freed memory mapped while the training loop runs (glibc malloc only; elsewhere a no-op).

Every step allocates and frees the same large activation tensors. glibc serves big blocks with mmap
and hands them (and the free top of the heap) back to the kernel on free, so the next step
page-faults all of it in again, zero-filled. Measured on the hidden-256 x 4-layer tiny model
(batches of 8 x ~150 tokens): ~230k page faults and ~0.4 s of kernel time per step, nearly half the
step's CPU; with the thresholds raised, 1.4 M faults over 6 steps became 44 k and steps took about
half the CPU time. The numbers computed do not change, only where their memory comes from. Peak RSS
stays what it was (the same tensors are alive at the peak); between steps RSS stays near the peak
instead of dropping. On exit the thresholds go back to glibc's initial values and free memory is
returned to the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from typing import Iterator

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap, so they are reused rather than unmapped
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: hand back the heap top only when 2 GiB of it is free
GLIBC_DEFAULT = 128 * 1024  # both thresholds' initial value in glibc


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """Yields whether the allocator was tuned (False: not glibc, or it refused)."""
    libc = _glibc()
    tuned = bool(libc and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    try:
        yield tuned
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT)
            libc.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT)
            libc.malloc_trim(0)


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc if hasattr(libc, "gnu_get_libc_version") else None  # musl has mallopt as a stub
    except (OSError, AttributeError):
        return None
