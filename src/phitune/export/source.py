"""What to export: a run folder (LoRA/DoRA adapter, full fine-tune, merged) or a plain model folder,
loaded in fp32 with any adapter folded in, plus what the report should say about it."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from phitune.errors import ExportError, Problem


@dataclass
class ExportSource:
    path: Path
    kind: str  # "adapter" (merged here), "merged", "full", "model"
    name: str
    method: str | None = None
    recipe_hash: str | None = None
    base_model: str | None = None
    adapter_dir: Path | None = None

    @property
    def has_separable_lora(self) -> bool:
        """A run whose adapter is plain LoRA on a full-precision base (several can share one base)."""
        from phitune.recipe.method import method_class

        method = method_class(self.method) if self.method else None
        return self.adapter_dir is not None and method is not None and method.plain_lora

    def as_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "name": self.name, "method": self.method,
                "recipe_hash": self.recipe_hash, "base_model": self.base_model}


def describe(path: str | Path) -> ExportSource:
    """Classify a run or model folder without loading weights."""
    from phitune.models import run_dir as rd

    path = Path(path).resolve()
    if not path.exists():
        raise ExportError(f"no such run or model folder: {path}", [Problem(str(path), "does not exist")])
    rd.require_finished_run(path, ExportError)
    if not rd.is_run_dir(path):
        if not (path / "config.json").is_file():
            raise ExportError(
                f"{path} is neither a phitune run nor a model folder",
                [Problem(str(path), f"no {rd.RESOLVED} and no config.json", "pass a run folder written by `phitune train`")],
            )
        return ExportSource(path, "model", _safe_name(path.name))
    body = json.loads((path / rd.RESOLVED).read_text())
    recipe = rd.run_recipe(path)
    common = dict(name=_safe_name(path.name),
                  method=recipe.method.type, recipe_hash=body.get("content_hash"), base_model=recipe.model.name)
    adapter = path / rd.ADAPTER
    has_adapter = (adapter / "adapter_config.json").is_file()
    if (path / rd.MERGED / "config.json").is_file():
        return ExportSource(path, "merged", adapter_dir=adapter if has_adapter else None, **common)
    if (path / rd.FULL_MODEL / "config.json").is_file():
        return ExportSource(path, "full", **common)
    if has_adapter:
        return ExportSource(path, "adapter", adapter_dir=adapter, **common)
    raise ExportError(
        f"run {path} has no model to export",
        [Problem(str(path), f"no {rd.MERGED}/, {rd.FULL_MODEL}/ or {rd.ADAPTER}/ folder",
                 "the run may not have finished (metrics.json is written last)")],
    )


def load_merged(source: ExportSource):
    """(fp32 model in eval mode with any adapter merged, tokenizer with a chat template)."""
    from phitune.models.run_dir import load_for_inference

    model, tokenizer = load_for_inference(source.path, prefer_merged=True)
    # A PeftModel means peft is already imported; asking peft otherwise would cost seconds of imports.
    if "peft" in sys.modules and isinstance(model, sys.modules["peft"].PeftModel):
        model = model.merge_and_unload()
    model = model.float().eval()
    if not getattr(tokenizer, "chat_template", None):
        raise ExportError(
            "the tokenizer has no chat template",
            [Problem(f"{source.path}/tokenizer", "chat generation needs tokenizer.chat_template",
                     "export a run of a chat model (the run's tokenizer/ keeps the template)")],
        )
    return model, tokenizer


def load_base_and_adapter(source: ExportSource):
    """(fp32 base model, adapter state dict, adapter config dict) of a LoRA run, for multi-LoRA export."""
    from safetensors.torch import load_file

    from phitune.models.loader import load_base_model
    from phitune.models.run_dir import run_recipe

    if not source.has_separable_lora:
        raise ExportError(
            "multi-LoRA export needs LoRA runs",
            [Problem(str(source.path), f"method {source.method!r} ({source.kind}) has no separable LoRA adapter",
                     "export it without --multi-lora (the adapter is merged into the model)")],
        )
    config = json.loads((source.adapter_dir / "adapter_config.json").read_text())
    weights = source.adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise ExportError("adapter weights missing", [Problem(str(weights), "no such file (safetensors only)")])
    base = load_base_model(run_recipe(source.path).model).float().eval()
    return base, load_file(weights), config


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"
