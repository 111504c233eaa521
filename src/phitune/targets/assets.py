"""Where the Azure ML YAMLs live (components/, environments/, aml/ at the repository root), and the
default output folder of a submission."""

from __future__ import annotations

import os
import time
from pathlib import Path

from phitune.errors import Problem, SubmitError

ASSETS_ENV = "PHITUNE_AML_ROOT"
DEFAULT_PIPELINE = "aml/pipelines/finetune.yml"


def assets_root() -> Path:
    """The folder holding components/ and aml/: $PHITUNE_AML_ROOT, else this checkout's root."""
    candidates = [Path(os.environ[ASSETS_ENV])] if os.environ.get(ASSETS_ENV) else []
    candidates.append(Path(__file__).resolve().parents[3])
    for root in candidates:
        if (root / "components").is_dir() and (root / "aml").is_dir():
            return root
    raise SubmitError("cannot find the Azure ML component YAMLs", [Problem(
        "components/", f"no components/ and aml/ under {', '.join(str(c) for c in candidates)}",
        f"run from a phitune checkout, or set {ASSETS_ENV} to the folder that holds components/ and aml/")])


def pipeline_path(configured: str | None) -> Path:
    path = Path(configured).expanduser() if configured else assets_root() / DEFAULT_PIPELINE
    if not path.is_file():
        raise SubmitError("pipeline YAML not found", [Problem("target.pipeline", f"{path} does not exist",
                                                              f"leave target.pipeline unset to use {DEFAULT_PIPELINE}")])
    return path.resolve()


def default_output_dir(recipe_name: str, target: str) -> Path:
    """runs/<recipe>-<target>-<timestamp>/ under the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recipe_name}-{target}-{stamp}"
