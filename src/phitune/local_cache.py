"""phitune's cache folder and the lock that lets several processes fill it at once.

`$PHITUNE_CACHE` (default `~/.cache/phitune`) holds `models/` (the built-in tiny models) and `data/` (tokenized
datasets). Each entry is built under an exclusive lock and moved into place whole, so every rank of a
`--nproc N` run, or two runs started together, build it once and the others wait, then read it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


def cache_root() -> Path:
    return Path(os.environ.get("PHITUNE_CACHE") or Path.home() / ".cache" / "phitune")


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_file` (blocking while another process holds it). Where the OS has
    no flock, nothing is locked: builds may then race, and the atomic rename still keeps each entry whole."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except (ImportError, OSError):
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
