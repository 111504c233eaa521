"""KAITO's tuning presets (pinned in phitune/assets/kaito/): which preset a recipe's model is, and which
LoRA target modules that preset's architecture really has."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from phitune.errors import Problem

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "kaito"
CRD_FILE = ASSETS / "kaito.sh_workspaces.yaml"
KAITO_VERSION = "v0.12.0"
_HF_COMMIT = re.compile(r"^https://huggingface\.co/(?P<repo>[^/]+/[^/]+)/commit/(?P<revision>[0-9a-f]+)$")


@dataclass(frozen=True)
class TuningPreset:
    name: str             # KAITO preset name, e.g. phi-3-mini-4k-instruct
    hf_repo: str          # the Hugging Face repository its weights come from
    revision: str         # the commit KAITO pins
    model_type: str       # Hugging Face architecture, e.g. phi3
    linear_modules: tuple[str, ...]
    peft_default_targets: tuple[str, ...]


@lru_cache(maxsize=1)
def tuning_presets() -> dict[str, TuningPreset]:
    supported = yaml.safe_load((ASSETS / "supported_models.yaml").read_text())["models"]
    repos = {}
    for entry in supported:
        match = _HF_COMMIT.match(str(entry.get("version", "")))
        if match and not entry.get("deprecated"):
            repos[entry["name"]] = (match["repo"], match["revision"])
    tuning = yaml.safe_load((ASSETS / "tuning_presets.yaml").read_text())
    out = {}
    for name, model_type in tuning["presets"].items():
        arch = tuning["architectures"][model_type]
        repo, revision = repos[name]
        out[name] = TuningPreset(name, repo, revision, model_type, tuple(arch["linear_modules"]),
                                 tuple(arch["peft_default_targets"]))
    return out


def resolve_preset(model_name: str) -> tuple[TuningPreset | None, list[Problem]]:
    """The preset for `model.name`: a Hugging Face id (microsoft/Phi-3-mini-4k-instruct) or a preset
    name (phi-3-mini-4k-instruct), case-insensitive."""
    presets = tuning_presets()
    wanted = model_name.strip().lower().removeprefix("hf://")
    for preset in presets.values():
        if wanted in (preset.name, preset.hf_repo.lower(), preset.hf_repo.split("/")[1].lower()):
            return preset, []
    listed = ", ".join(f"{p.name} ({p.hf_repo})" for p in presets.values())
    return None, [Problem("model.name", f"KAITO {KAITO_VERSION} has no tuning preset for {model_name!r} (KAITO "
                          "tunes only its preset models, whose weights ship in its images)",
                          f"set model.name to one of: {listed}")]


def lora_targets(preset: TuningPreset, recipe_targets: list[str], recipe_default: tuple[str, ...]) -> tuple[list[str], list[Problem]]:
    """The LoRA target modules for `preset`. The recipe's own list is kept when the architecture has
    those modules; phitune's default (the Phi-3 fused names) on another architecture becomes peft's
    default for it. A name the architecture does not have is an error (peft would fail on the cluster)."""
    if tuple(recipe_targets) == tuple(recipe_default) and preset.model_type != "phi3" and preset.peft_default_targets:
        return list(preset.peft_default_targets), []
    missing = [m for m in recipe_targets if m.rsplit(".", 1)[-1] not in preset.linear_modules]
    if missing:
        return list(recipe_targets), [Problem(
            "method.target_modules", f"{', '.join(missing)} match no layer of {preset.name} ({preset.model_type}: its "
            f"linear layers are {', '.join(preset.linear_modules)})",
            f"use names it has, e.g. method.target_modules: [{', '.join(preset.linear_modules)}]")]
    return list(recipe_targets), []
