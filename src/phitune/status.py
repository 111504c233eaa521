"""Status lines: one line on stderr when a phase that can take more than a second begins (reading
data, loading the model, evaluating, saving), so a wait is never silent. stdout stays for results.

`phitune train --no-progress` keeps them (a CI log still says what it is waiting for); library users
turn them off with `set_status_lines(False)` or PHITUNE_STATUS=0.
"""

from __future__ import annotations

import os
import sys

_enabled = {"on": os.environ.get("PHITUNE_STATUS", "1") not in ("0", "false", "no")}


def set_status_lines(on: bool) -> None:
    _enabled["on"] = bool(on)


def status(message: str) -> None:
    """Print `message ...` on stderr (rank 0 only in distributed runs)."""
    if not _enabled["on"] or os.environ.get("RANK", "0") != "0":
        return
    print(f"{message} ...", file=sys.stderr, flush=True)


def eval_bar(total: int, desc: str, progress: bool):
    """The evaluation progress bar (batches), obeying --no-progress."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not progress or total == 0, leave=False,
                dynamic_ncols=True)
