"""The interfaces (input names, types, enums, bounds, defaults; outputs) of Azure ML's registry
fine-tuning pipeline components, shipped with phitune so a dry run can check every value offline.

The copy is `phitune/assets/azureml_finetune_pipelines.json`, taken from Azure/azureml-assets
(`assets/training/finetune_acft_hf_nlp/components/pipeline_components/<task>/spec.yaml`; the commit and
each component's version are recorded in the file). A real submit fetches the component from the
registry and compares its interface with this copy (`interface_changes`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from phitune.errors import Problem

ASSET = "azureml_finetune_pipelines.json"


@dataclass(frozen=True)
class InputSpec:
    type: str
    optional: bool = False
    default: Any = None
    enum: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        parts = [self.type]
        if self.enum:
            parts.append("one of " + "|".join(self.enum))
        if self.min is not None:
            parts.append(f"min {self.min:g}")
        if self.max is not None:
            parts.append(f"max {self.max:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class ComponentInterface:
    name: str
    version: str
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _asset() -> dict:
    return json.loads(resources.files("phitune.assets").joinpath(ASSET).read_text(encoding="utf-8"))


def source() -> str:
    """Where the shipped copy comes from, for messages: repository @ commit."""
    data = _asset()
    return f"{data['source'].removeprefix('https://github.com/')}@{data['commit'][:12]}"


def shipped(name: str) -> ComponentInterface:
    raw = _asset()["components"][name]
    inputs = {key: InputSpec(spec["type"], bool(spec.get("optional")), spec.get("default"),
                             tuple(spec["enum"]) if "enum" in spec else None, spec.get("min"), spec.get("max"))
              for key, spec in raw["inputs"].items()}
    return ComponentInterface(name, raw["version"], inputs, {k: v["type"] for k, v in raw["outputs"].items()})


def shipped_names() -> tuple[str, ...]:
    return tuple(_asset()["components"])


def check_value(interface: ComponentInterface, name: str, value: Any, location: str) -> Problem | None:
    """Does `value` fit input `name` of `interface` (name, type, enum, min/max)? `location` is the recipe
    field the value came from, so the message says what to change."""
    spec = interface.inputs.get(name)
    where = f"{interface.name} {interface.version}"
    if spec is None:
        return Problem(location, f"{where} has no input {name!r}", "pin target.component_version to a version that has it")
    if spec.type == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return Problem(location, f"{where} input {name} takes an integer, got {value!r}", "use a whole number")
    if spec.type == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return Problem(location, f"{where} input {name} takes a number, got {value!r}")
    if spec.type == "string" and not isinstance(value, str):
        return Problem(location, f"{where} input {name} takes a string, got {value!r}")
    if spec.type not in ("integer", "number", "string", "boolean") and not isinstance(value, dict):
        return Problem(location, f"{where} input {name} takes a {spec.type} asset, got {value!r}")
    if spec.enum is not None and str(value) not in spec.enum:
        return Problem(location, f"{where} input {name} takes one of {', '.join(spec.enum)}, not {value!r}")
    if spec.min is not None and isinstance(value, (int, float)) and value < spec.min:
        return Problem(location, f"{where} input {name} must be >= {spec.min:g}, got {value!r}")
    if spec.max is not None and isinstance(value, (int, float)) and value > spec.max:
        return Problem(location, f"{where} input {name} must be <= {spec.max:g}, got {value!r}")
    return None


def from_component(component) -> ComponentInterface:
    """The interface of a component entity fetched with azure-ai-ml (`ml_client.components.get`)."""
    inputs = {}
    for name, spec in (component.inputs or {}).items():
        enum = getattr(spec, "enum", None)
        inputs[name] = InputSpec(str(spec.type), bool(getattr(spec, "optional", False)), getattr(spec, "default", None),
                                 tuple(str(e) for e in enum) if enum else None,
                                 getattr(spec, "min", None), getattr(spec, "max", None))
    outputs = {name: str(getattr(spec, "type", spec)) for name, spec in (component.outputs or {}).items()}
    return ComponentInterface(component.name, str(component.version), inputs, outputs)


def interface_changes(old: ComponentInterface, new: ComponentInterface) -> list[str]:
    """What changed from the shipped interface to the registry's, one line per input or output."""
    changes = []
    for name in sorted(set(old.inputs) | set(new.inputs)):
        before, after = old.inputs.get(name), new.inputs.get(name)
        if after is None:
            changes.append(f"input {name} was removed")
        elif before is None:
            changes.append(f"input {name} was added ({after.describe()}{'' if after.optional else ', required'})")
        else:
            for attr in ("type", "enum", "min", "max", "optional"):
                a, b = getattr(before, attr), getattr(after, attr)
                if _norm(a) != _norm(b):
                    changes.append(f"input {name}: {attr} {_show(a)} -> {_show(b)}")
            if str(before.default) != str(after.default) and not _same_number(before.default, after.default):
                changes.append(f"input {name}: default {_show(before.default)} -> {_show(after.default)}")
    for name in sorted(set(old.outputs) | set(new.outputs)):
        if old.outputs.get(name) != new.outputs.get(name):
            changes.append(f"output {name}: {old.outputs.get(name) or 'absent'} -> {new.outputs.get(name) or 'absent'}")
    return changes


def _norm(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return value


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
