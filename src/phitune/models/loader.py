"""Load the base model and tokenizer named by `model:`: built-in, local folder, or hub id.

Weights load from safetensors only; `trust_remote_code` is whatever the recipe says (off by default).
A local model whose config.json maps to its own code (`auto_map`) is then loaded with the built-in
class, and a warning says that its code was not run and how to allow it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from phitune.errors import ModelError, Problem

if TYPE_CHECKING:
    from phitune.recipe.sections import ModelSpec

log = logging.getLogger("phitune.models")
DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def resolve_model_path(spec: "ModelSpec") -> str:
    """A local folder for built-in and local models; the hub id unchanged otherwise."""
    if spec.is_builtin:
        from phitune.models.tiny import builtin_model_path

        return str(builtin_model_path(spec.name))
    if spec.name.startswith("azureml:"):
        raise ModelError(
            "an Azure ML registry model cannot be loaded locally",
            [Problem("model.name", f"{spec.name} lives in an Azure ML registry",
                     "use it with `--target maas` or `--target maap`, or point model.name at a local folder")],
        )
    path = Path(spec.name).expanduser()
    if path.exists() and not path.is_dir():
        raise ModelError("model path is not a folder", [Problem("model.name", f"{path} is a file, not a model folder")])
    if path.is_dir() and (path / "MLmodel").is_file():
        return str(mlflow_model_dir(path))
    return str(path.resolve()) if path.is_dir() else spec.name


# Where the Hugging Face files sit inside an MLflow model folder: Azure ML registry models
# (mounted as `mlflow_model` inputs) use data/model, MLflow's transformers flavour uses model/.
MLFLOW_HF_SUBDIRS = ("data/model", "model", "data")


def mlflow_model_dir(path: Path) -> Path:
    """The folder holding config.json inside an MLflow model (Azure ML registry layout)."""
    for sub in MLFLOW_HF_SUBDIRS:
        if (path / sub / "config.json").is_file():
            return (path / sub).resolve()
    found = sorted(p.parent for p in path.glob("**/config.json") if len(p.relative_to(path).parts) <= 4)
    if found:
        return found[0].resolve()
    raise ModelError(
        f"no Hugging Face model inside the MLflow model {path}",
        [Problem("model.name", "the MLmodel folder has no config.json under data/model or model/",
                 "register the model with the transformers flavour, or point model.name at a save_pretrained folder")],
    )


def _tokenizer_dir(source: str) -> str:
    """MLflow layouts keep the tokenizer beside the model (data/tokenizer or components/tokenizer)."""
    path = Path(source)
    if path.is_dir() and not (path / "tokenizer_config.json").is_file():
        for candidate in (path.parent / "tokenizer", path.parent.parent / "components" / "tokenizer",
                          path.parent / "components" / "tokenizer"):
            if (candidate / "tokenizer_config.json").is_file():
                return str(candidate)
    return source


def load_tokenizer(spec: "ModelSpec"):
    from transformers import AutoTokenizer

    source = _tokenizer_dir(resolve_model_path(spec))
    try:
        tok = AutoTokenizer.from_pretrained(source, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load tokenizer from {source}", [Problem("model.name", _first_line(exc), _hint(source))]) from None
    if tok.pad_token_id is None:
        # Causal LMs often ship without a pad token; padding positions are masked out of the loss anyway.
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(spec: "ModelSpec", **kwargs):
    """A causal LM in the recipe's dtype. Extra kwargs go to `from_pretrained` (e.g. quantization)."""
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve_model_path(spec)
    _custom_code_notice(source, spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            dtype=getattr(torch, DTYPES[spec.dtype]),
            use_safetensors=True,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model from {source}", [Problem("model.name", _first_line(exc), _hint(source))]) from None
    return model


def custom_code_classes(folder: str | Path) -> dict[str, str]:
    """config.json's `auto_map` (Auto class -> custom code, e.g. `modeling_phi3.Phi3ForCausalLM`), if any."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if not isinstance(auto_map, dict):
        return {}
    return {str(k): str(v[0] if isinstance(v, (list, tuple)) and v else v) for k, v in auto_map.items()}


def _custom_code_notice(source: str, spec: "ModelSpec") -> None:
    """A local model that ships its own code is loaded with the built-in transformers class unless
    the recipe trusts it: say so, since the two may differ (silently different results otherwise)."""
    if spec.trust_remote_code or not Path(source).is_dir():
        return
    classes = custom_code_classes(source)
    if not classes:
        return
    code = classes.get("AutoModelForCausalLM") or next(iter(classes.values()))
    log.warning("%s: config.json's auto_map points at custom code (%s); it was NOT run: the built-in transformers "
                "class for this model type is used instead. If the model needs its own code, set "
                "model.trust_remote_code: true in the recipe (or --set model.trust_remote_code=true), only for "
                "code you have read and trust.", source, code)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _hint(source: str) -> str:
    if Path(source).is_dir():
        return "the folder must hold config.json, *.safetensors and tokenizer files (save_pretrained output)"
    return "a hub id needs network access; offline, use builtin:tiny-phi3 or a local folder"
