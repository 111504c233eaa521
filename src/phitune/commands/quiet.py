"""Keep library chatter out of a command's output: the user sees phitune's progress bar and summary,
not transformers' weight-loading bars or warnings from optional backends we never use on CPU."""

from __future__ import annotations

import logging
import os
import sys


def quiet_libraries(verbose: bool = False) -> None:
    """Call at the start of a heavy command handler (it imports torch), before transformers."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # transformers imports deepspeed when it is installed; on a CPU-only machine its accelerator
    # auto-detection then prints a warning through its own handler. Naming the accelerator skips it.
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    level = logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    phitune_log = logging.getLogger("phitune")
    if not phitune_log.handlers:
        phitune_log.addHandler(handler)
    phitune_log.setLevel(level)
    phitune_log.propagate = False
    for name in ("bitsandbytes", "DeepSpeed", "deepspeed", "torch.distributed", "mlflow", "alembic", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|peft|torch)\..*")
