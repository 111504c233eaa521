"""Shared fixtures. Every test runs offline, with phitune's cache and MLflow store in a temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session", autouse=True)
def _offline_env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("phitune-cache")
    os.environ["PHITUNE_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["MLFLOW_ENABLE_TELEMETRY"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # what mlflow 3.17 actually reads
    os.environ["AZURE_ML_DISABLE_ON_DISK_CACHE"] = "true"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The built-in tiny Phi-3 (hidden 64, 2 layers), built once per test session."""
    from phitune.models.tiny import builtin_model_path

    return builtin_model_path("builtin:tiny-phi3")


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real `phitune` entry point in a subprocess (what a user runs)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "phitune.cli", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def train_tiny_run(out: Path, method: str = "lora", r: int = 8, steps: int = 3, seed: int = 0) -> Path:
    """A real, short training run folder (a few optimizer steps of `method` on builtin:tiny-phi3)."""
    from phitune.recipe.load import load_recipe
    from phitune.training.run import train

    extra = {"r": r, "alpha": 2 * r, "dropout": 0.0} if method in ("lora", "dora") else {}
    recipe = load_recipe({"name": out.name, "model": "builtin:tiny-phi3",
                          "data": {"train": str(EXAMPLES / "data" / "reviews-train.jsonl")},
                          "method": {"type": method, **extra},
                          "train": {"max_steps": steps, "batch_size": 8, "max_seq_len": 128, "lr": 2e-2, "seed": seed},
                          "tracking": "none"})
    train(recipe, out, progress=False)
    return out
