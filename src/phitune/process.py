"""Everything phitune changes process-wide, and why: one function, `configure_process`, called
explicitly at the entry points (`phitune.cli.main`, which the Azure ML components run too;
`phitune.train`; `phitune.submit`). Library modules change no process-wide state on their own.

What it changes:
- dependency noise is kept out of phitune's output (`quiet_libraries`): the user sees phitune's own
  status lines, progress bars and summary, not transformers' weight-loading bars, DeepSpeed's
  accelerator notice (printed on stdout), bitsandbytes' kernel notice or dependencies' FutureWarnings.
  Most switches are environment variables and logger levels the libraries read when first imported,
  so it works when it runs first; whatever is already imported is switched off directly. `-v` (or
  PHITUNE_VERBOSE=1) shows all of it, and child processes (compare, local-pipeline steps) follow;
- MLflow's telemetry is off, and its and its database migrations' INFO logs are not shown;
- Azure's INFO logs name every request, azure-ai-ml warns about every experimental class and
  anonymous asset name, azure.identity logs the whole credential chain: phitune prints its own
  summary and errors instead;
- every log record's message is redacted (phitune.redact: azure-ai-ml's telemetry logs whole error
  bodies, SAS URLs included), and with `redact_output=True` (the CLI) so is every line written to
  stdout and stderr.
All of it is idempotent and cheap: nothing heavy is imported.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Loggers of dependencies that print notices a user cannot act on (levels apply to their children).
# (mlflow's and alembic's are set by _quiet_mlflow, which configure_process always runs.)
NOISY_LOGGERS = ("bitsandbytes", "DeepSpeed", "deepspeed", "torch.distributed", "matplotlib",
                 "accelerate", "peft", "transformers", "huggingface_hub", "onnxruntime", "onnxscript", "httpx", "urllib3")
# Warnings raised inside these packages are theirs to fix, not the user's.
DEPENDENCY_MODULES = (r"(torch|transformers|peft|accelerate|bitsandbytes|deepspeed|mlflow|trl|datasets|onnx|onnxscript|"
                      r"onnx_ir|onnxruntime|onnxruntime_genai|matplotlib|pydantic|huggingface_hub|safetensors|"
                      r"sqlalchemy|alembic|azure|tqdm)(\..*)?")
# Loggers that only ever say what phitune's own summary says better (levels apply to their children).
AZURE_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy")
MLFLOW_LOGGERS = ("mlflow", "alembic", "alembic.runtime.migration")
_state = {"quiet": None}


def configure_process(*, verbose: bool = False, redact_output: bool = False) -> None:
    """Apply everything phitune changes process-wide (see the module docstring). `verbose` leaves the
    libraries' own logs alone; `redact_output` also redacts everything written to stdout and stderr."""
    from phitune.redact import install_log_redaction

    install_log_redaction()
    if redact_output:
        _redact_standard_streams()
    quiet_libraries(verbose)
    _quiet_mlflow()
    _quiet_azure()


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


def verbose_requested() -> bool:
    return os.environ.get("PHITUNE_VERBOSE", "").lower() in ("1", "true", "yes")


def gpu_visible() -> bool:
    """A CUDA or ROCm device node exists (checked without importing torch, which costs seconds)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg"))


def _quiet_mlflow() -> None:
    # mlflow 3.17 reads MLFLOW_DISABLE_TELEMETRY, or DO_NOT_TRACK only when it equals "true"
    # (so DO_NOT_TRACK=1 does NOT turn it off, and MLFLOW_ENABLE_TELEMETRY is not read at all).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name in MLFLOW_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _quiet_azure() -> None:
    from phitune.compat import AZURE_AI_ML_NOISY_LOGGERS

    for name in AZURE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) included
            logger.setLevel(logging.WARNING)
    for name in (*AZURE_AI_ML_NOISY_LOGGERS, "azure.identity"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _phitune_logger(verbose: bool) -> None:
    log = logging.getLogger("phitune")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


def _redact_standard_streams() -> None:
    """Every line printed by this process goes through phitune.redact (SAS signatures, tokens and keys
    never reach a terminal or a log file)."""
    from phitune.redact import RedactingStream

    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
