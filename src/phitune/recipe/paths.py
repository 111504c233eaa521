"""Local paths named by a recipe: do they exist, and are they the right kind (file or folder)?

Checked by `phitune validate` (without reading any data): a data file that is missing or is a
folder, a DeepSpeed config that is not a file, a model folder that does not exist or holds no model.
URIs (`azureml:`, `https://`, `hf://`, ...) and `builtin:` models are not local paths. A model name
like `org/name` is a hub id unless it exists here, so only names that can only be paths
(`/...`, `./...`, `~/...`, two or more `/`) are required to exist.
"""

from __future__ import annotations

import os
from pathlib import Path

from phitune.recipe.base import Conflict

# Where a data file or model can live other than on this machine: never checked as local paths.
REMOTE_PREFIXES = ("azureml:", "https://", "http://", "abfss://", "wasbs://", "hf://")
URI_PREFIXES = (*REMOTE_PREFIXES, "builtin:")
# The remote locations an Azure ML job input can take as its `path`: Azure ML has no input type that
# reads `hf://`, so a pipeline job treats every other value (hf:// included) as a local path to upload.
AZURE_ML_INPUT_PREFIXES = tuple(prefix for prefix in REMOTE_PREFIXES if prefix != "hf://")


def is_uri(value: str) -> bool:
    return value.startswith(URI_PREFIXES)


def local_path_problems(recipe, base_dir: Path) -> list[Conflict]:
    """(field, message) for every local path of the recipe that is missing or of the wrong kind."""
    out: list[Conflict] = []
    files = [("data.train", recipe.data.train), ("data.validation", recipe.data.validation)]
    deepspeed = recipe.train.deepspeed
    if deepspeed is not None:
        files.append(("train.deepspeed.config", deepspeed.config))
    for field, value in files:
        if value and not is_uri(value):
            problem = _file_problem(_local(value, base_dir))
            if problem:
                out.append(Conflict(field, problem))
    name = recipe.model.name
    if not is_uri(name):
        path = _local(name, base_dir)
        if path.exists() or _only_a_path(name):
            problem = _model_folder_problem(path)
            if problem:
                out.append(Conflict("model.name", problem))
    return out


def _local(value: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base_dir / path


def _only_a_path(name: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else can only be a local path."""
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or name in (".", "..") or \
        name.count("/") >= 2 or "\\" in name or name.endswith("/")


def _file_problem(path: Path) -> str | None:
    if path.is_file():
        return None
    if path.is_dir():
        return f"{path} is a folder; this field names a file"
    if not path.parent.is_dir():
        return f"{path} does not exist (nor does its folder {path.parent})"
    return f"{path} does not exist"


def _model_folder_problem(path: Path) -> str | None:
    if not path.exists():
        return f"model folder {path} does not exist"
    if not path.is_dir():
        return f"{path} is a file; a local model is a folder (save_pretrained output, or an MLflow model)"
    if not (path / "config.json").is_file() and not (path / "MLmodel").is_file():
        return f"{path} holds no model: no config.json (nor an MLflow MLmodel file)"
    return None
