"""Lint rules for command components (and the value checks pipelines reuse for literal inputs)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from phitune.errors import Problem
from phitune.lint import schemas
from phitune.lint.source import KeyPath, YamlDoc
from phitune.targets.pipeline_yaml import ANY_REF, COMMAND_REF, OPTIONAL_BLOCK


def unknown_keys(doc: YamlDoc, key: KeyPath, mapping: Any, allowed: set[str], what: str) -> list[Problem]:
    if not isinstance(mapping, dict):
        return []
    problems = []
    for name in mapping:
        if str(name) not in allowed:
            close = difflib.get_close_matches(str(name), sorted(allowed), n=1, cutoff=0.6)
            fix = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(sorted(allowed))}"
            problems.append(doc.problem(key + (str(name),), f"unknown key '{name}' in {what} "
                                        "(azure-ai-ml ignores it offline; Azure drops or rejects it)", fix))
    return problems


def is_binding(value: Any) -> bool:
    return isinstance(value, str) and "${{" in value


def value_problems(doc: YamlDoc, key: KeyPath, spec: dict, value: Any, what: str) -> list[Problem]:
    """A literal value against an input's type, min/max and enum."""
    if value is None or is_binding(value):
        return []
    kind = spec.get("type")
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return [doc.problem(key, f"{what} {value!r} is not an integer")]
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [doc.problem(key, f"{what} {value!r} is not a number")]
    if kind == "boolean" and not isinstance(value, bool):
        return [doc.problem(key, f"{what} {value!r} is not a boolean", "use true or false")]
    problems = []
    if kind in ("integer", "number"):
        low, high = spec.get("min"), spec.get("max")
        if isinstance(low, (int, float)) and value < low:
            problems.append(doc.problem(key, f"{what} {value!r} is below min {low}"))
        if isinstance(high, (int, float)) and value > high:
            problems.append(doc.problem(key, f"{what} {value!r} is above max {high}"))
    enum = spec.get("enum")
    if isinstance(enum, list) and str(value) not in [str(e) for e in enum]:
        problems.append(doc.problem(key, f"{what} {value!r} is not one of the enum values {enum}"))
    return problems


def input_spec_problems(doc: YamlDoc, key: KeyPath, name: str, spec: Any) -> list[Problem]:
    if not isinstance(spec, dict):
        return [doc.problem(key, f"input '{name}' must be a mapping with at least `type`")]
    kind = spec.get("type")
    if kind not in schemas.PRIMITIVE_TYPES | schemas.DATA_TYPES:
        return [doc.problem(key + ("type",), f"input '{name}' has unknown type {kind!r}",
                            f"use one of {', '.join(sorted(schemas.PRIMITIVE_TYPES | schemas.DATA_TYPES))}")]
    allowed = schemas.COMPONENT_PARAMETER if kind in schemas.PRIMITIVE_TYPES else schemas.COMPONENT_PORT
    problems = unknown_keys(doc, key, spec, allowed, f"input '{name}'")
    low, high = spec.get("min"), spec.get("max")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        problems.append(doc.problem(key + ("min",), f"input '{name}': min {low} is above max {high}"))
    if "default" in spec:
        problems += value_problems(doc, key + ("default",), spec, spec["default"], f"default of '{name}'")
    return problems


def check_component(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = unknown_keys(doc, (), data, schemas.COMMAND_COMPONENT, "a command component")
    inputs = data.get("inputs") or {}
    outputs = data.get("outputs") or {}
    for name, spec in inputs.items():
        problems += input_spec_problems(doc, ("inputs", str(name)), str(name), spec)
    for name, spec in outputs.items():
        if isinstance(spec, dict):
            problems += unknown_keys(doc, ("outputs", str(name)), spec, schemas.COMPONENT_OUTPUT, f"output '{name}'")
            if spec.get("type") not in schemas.DATA_TYPES:
                problems.append(doc.problem(("outputs", str(name), "type"), f"output '{name}' has type "
                                            f"{spec.get('type')!r}", f"use one of {', '.join(sorted(schemas.DATA_TYPES))}"))
    problems += unknown_keys(doc, ("distribution",), data.get("distribution"), schemas.DISTRIBUTION, "distribution")
    problems += unknown_keys(doc, ("resources",), data.get("resources"), schemas.RESOURCES, "resources")
    problems += command_problems(doc, ("command",), str(data.get("command") or ""), inputs, outputs)
    problems += _path_problems(doc, data)
    return problems


def command_problems(doc: YamlDoc, key: KeyPath, command: str, inputs: dict, outputs: dict) -> list[Problem]:
    """References naming nothing, and optional inputs used outside `$[[...]]`."""
    problems = []
    for match in ANY_REF.finditer(command):
        token = match.group(0)
        ref = COMMAND_REF.fullmatch(token)
        if ref is None:
            problems.append(doc.token_problem(key, token, f"{token} is not an input or output reference",
                                              "use ${{inputs.<name>}} or ${{outputs.<name>}}"))
            continue
        kind, name = ref.group(1), ref.group(2)
        declared = inputs if kind == "inputs" else outputs
        if name not in declared:
            close = difflib.get_close_matches(name, [str(k) for k in declared], n=1, cutoff=0.6)
            fix = f"did you mean ${{{{{kind}.{close[0]}}}}}?" if close else f"declare it under `{kind}:`"
            problems.append(doc.token_problem(key, token, f"{token} names no {kind[:-1]} of this component", fix))
    outside = OPTIONAL_BLOCK.sub(" ", command)
    for match in COMMAND_REF.finditer(outside):
        kind, name = match.group(1), match.group(2)
        spec = inputs.get(name) if kind == "inputs" else None
        if isinstance(spec, dict) and spec.get("optional") and "default" not in spec:
            problems.append(doc.token_problem(key, match.group(0), f"optional input '{name}' is used outside $[[...]]: "
                                              "when it is not given, Azure passes an empty argument",
                                              f"wrap its part of the command: $[[--flag ${{{{inputs.{name}}}}}]]"))
    return problems


def _path_problems(doc: YamlDoc, data: dict) -> list[Problem]:
    problems = []
    code = data.get("code")
    if isinstance(code, str) and not code.startswith(("azureml:", "git+", "http")):
        if not (doc.path.parent / code).exists():
            problems.append(doc.problem(("code",), f"code folder {code} does not exist (relative to {doc.path.parent})"))
    env = data.get("environment")
    if isinstance(env, str) and env.startswith("file:"):
        if not (doc.path.parent / env[len("file:"):]).is_file():
            problems.append(doc.problem(("environment",), f"environment file {env[5:]} does not exist"))
    return problems


def relative_exists(doc: YamlDoc, value: str) -> bool:
    return (doc.path.parent / value).exists() or Path(value).exists()
