"""KAITO's tuning presets as phitune summarises them (phitune/assets/kaito/tuning_presets.yaml): which
preset a recipe's model is, and which LoRA target modules that preset's architecture really has."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from phitune.errors import Problem

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "kaito"
KAITO_VERSION = "v0.12.0"


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
    tuning = yaml.safe_load((ASSETS / "tuning_presets.yaml").read_text())
    out = {}
    for name, preset in tuning["presets"].items():
        arch = tuning["architectures"][preset["model_type"]]
        out[name] = TuningPreset(name, preset["hf_repo"], preset["revision"], preset["model_type"],
                                 tuple(arch["linear_modules"]), tuple(arch["peft_default_targets"]))
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
    if recipe_targets is None:  # unset: the architecture's default, as for phitune's default
        recipe_targets = recipe_default
    if tuple(recipe_targets) == tuple(recipe_default) and preset.model_type != "phi3" and preset.peft_default_targets:
        return list(preset.peft_default_targets), []
    missing = [m for m in recipe_targets if m.rsplit(".", 1)[-1] not in preset.linear_modules]
    if missing:
        return list(recipe_targets), [Problem(
            "method.target_modules", f"{', '.join(missing)} match no layer of {preset.name} ({preset.model_type}: its "
            f"linear layers are {', '.join(preset.linear_modules)})",
            f"use names it has, e.g. method.target_modules: [{', '.join(preset.linear_modules)}]")]
    return list(recipe_targets), []
