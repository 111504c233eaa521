"""Keep library chatter out of phitune's output: the user sees phitune's own status lines, progress
bars and summary, not transformers' weight-loading bars, DeepSpeed's accelerator notice (printed on
stdout), bitsandbytes' kernel notice or dependencies' FutureWarnings. `-v` (or PHITUNE_VERBOSE=1)
shows all of it.

`quiet_libraries()` is process-wide and cheap (it imports nothing heavy): the CLI calls it before any
command runs and `phitune.training` calls it for Python API users. Most switches are environment
variables and logger levels that the libraries read when they are first imported, so it also works
when it runs first; whatever is already imported is switched off directly.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Loggers of dependencies that print notices a user cannot act on (levels apply to their children).
NOISY_LOGGERS = ("bitsandbytes", "DeepSpeed", "deepspeed", "torch.distributed", "mlflow", "alembic", "matplotlib",
                 "accelerate", "peft", "transformers", "huggingface_hub", "onnxruntime", "onnxscript", "httpx", "urllib3")
# Warnings raised inside these packages are theirs to fix, not the user's.
DEPENDENCY_MODULES = (r"(torch|transformers|peft|accelerate|bitsandbytes|deepspeed|mlflow|trl|datasets|onnx|onnxscript|"
                      r"onnx_ir|onnxruntime|onnxruntime_genai|matplotlib|pydantic|huggingface_hub|safetensors|"
                      r"sqlalchemy|alembic|azure|tqdm)(\..*)?")
_state = {"quiet": None}


def verbose_requested() -> bool:
    return os.environ.get("PHITUNE_VERBOSE", "").lower() in ("1", "true", "yes")


def add_verbose_option(parser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also show the libraries' own logs, warnings and progress bars")


def quiet_libraries(verbose: bool = False) -> None:
    """Silence dependency noise for this process (idempotent; `verbose=True` undoes nothing, it just
    leaves the libraries' defaults alone and turns phitune's own INFO logs on)."""
    verbose = verbose or verbose_requested()
    _phitune_logger(verbose)
    if verbose:
        _state["quiet"] = False
        os.environ["PHITUNE_VERBOSE"] = "1"  # child processes (compare, local-pipeline steps) follow
        return
    if _state["quiet"]:
        return
    _state["quiet"] = True
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bars read this
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # mlflow sets its own loggers' levels when imported (from this variable; INFO by default), which
    # would print "Creating initial MLflow database tables..." the first time a folder's store is made.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    if not gpu_visible():
        # DeepSpeed (imported by accelerate when installed) probes for an accelerator and, finding none,
        # prints "Setting accelerator to CPU" on stdout through its own handler. Naming it skips the probe.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=DEPENDENCY_MODULES)
    if "transformers" in sys.modules:  # imported before us (Python API users): switch it off directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "deepspeed" in sys.modules:
        logging.getLogger("DeepSpeed").setLevel(logging.ERROR)


def gpu_visible() -> bool:
    """A CUDA or ROCm device node exists (checked without importing torch, which costs seconds)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg"))


def _phitune_logger(verbose: bool) -> None:
    log = logging.getLogger("phitune")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False
