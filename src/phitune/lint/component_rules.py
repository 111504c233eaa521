"""phitune's rules for components (command, parallel, spark) and the value checks jobs reuse.

azure-ai-ml's schemas read a component's keys and types (see `schema_walk`); what they leave to Azure:
- `${{inputs.x}}` / `${{outputs.x}}` naming nothing: `load_component` accepts it; only `_validate()`
  (not `az ml job create -f` before the upload) sees it for commands, never for `args` or
  `program_arguments`. Established by loading such components offline with azure-ai-ml 1.35.
- defaults outside `min`/`max`/`enum` or of the wrong type (`epochs: two`): the SDK's ParameterSchema
  reads `default` as string-or-number-or-bool and never compares it with `type`, `min`, `max`, `enum`.
- an optional input used outside `$[[...]]`: accepted everywhere offline; when the input is not given,
  Azure runs the command with an empty argument (`--flag` followed by nothing).
- `code:` / `environment: file:...` naming a missing local path: the SDK reports these only at upload.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from phitune.errors import Problem
from phitune.lint.schema_walk import is_binding
from phitune.lint.source import KeyPath, YamlDoc

PRIMITIVE_TYPES = {"string", "integer", "number", "boolean"}
ANY_REF = re.compile(r"\$\{\{(.*?)\}\}")
SCOPED_REF = re.compile(r"\$\{\{\s*(inputs|outputs|search_space)\.([A-Za-z0-9_]+)\s*\}\}")
OPTIONAL_BLOCK = re.compile(r"\$\[\[(.*?)\]\]", re.S)
# Macros Azure ML expands in output / data paths (job name, output name, datastores).
PATH_TEMPLATES = {"name", "output_name", "default_datastore", "output_dir", "path_on_datastore"}


def _number(value: Any) -> float | None:
    """A value as azure-ai-ml coerces it to a number (`1e-3` is a string to YAML 1.1, 0.001 to the SDK)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def value_problems(doc: YamlDoc, key: KeyPath, spec: dict, value: Any, what: str) -> list[Problem]:
    """A literal value against an input's type, min/max and enum."""
    if value is None or is_binding(value):
        return []
    kind = spec.get("type")
    number = _number(value)
    if kind == "integer" and (number is None or number != int(number) or isinstance(value, float)):
        return [doc.problem(key, f"{what} {value!r} is not an integer")]
    if kind == "number" and number is None:
        return [doc.problem(key, f"{what} {value!r} is not a number")]
    if kind == "boolean" and not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
        return [doc.problem(key, f"{what} {value!r} is not a boolean", "use true or false")]
    problems = []
    if kind in ("integer", "number"):
        low, high = _number(spec.get("min")), _number(spec.get("max"))
        if low is not None and number < low:
            problems.append(doc.problem(key, f"{what} {value!r} is below min {spec['min']}"))
        if high is not None and number > high:
            problems.append(doc.problem(key, f"{what} {value!r} is above max {spec['max']}"))
    enum = spec.get("enum")
    if isinstance(enum, list) and str(value) not in [str(e) for e in enum]:
        problems.append(doc.problem(key, f"{what} {value!r} is not one of the enum values {enum}"))
    return problems


def input_spec_problems(doc: YamlDoc, key: KeyPath, name: str, spec: Any) -> list[Problem]:
    if not isinstance(spec, dict):
        return []
    low, high = _number(spec.get("min")), _number(spec.get("max"))
    problems = []
    if low is not None and high is not None and low > high:
        problems.append(doc.problem(key + ("min",), f"input '{name}': min {spec['min']} is above max {spec['max']}"))
    if "default" in spec:
        problems += value_problems(doc, key + ("default",), spec, spec["default"], f"default of '{name}'")
    return problems


def check_component(doc: YamlDoc) -> list[Problem]:
    """Command, parallel and spark components: declared inputs, references, optional inputs, files."""
    data = doc.data
    inputs = data.get("inputs") or {}
    outputs = data.get("outputs") or {}
    problems = []
    if isinstance(inputs, dict):
        for name, spec in inputs.items():
            problems += input_spec_problems(doc, ("inputs", str(name)), str(name), spec)
    scopes = {"inputs": _names(inputs), "outputs": _names(outputs)}
    problems += reference_problems(doc, (), data, scopes, skip=("inputs", "outputs"))
    for key, command in command_strings(data):
        problems += optional_problems(doc, key, command, inputs)
    return problems + path_problems(doc, data)


def _names(section: Any) -> set[str]:
    return {str(k) for k in section} if isinstance(section, dict) else set()


def command_strings(data: dict, base: KeyPath = ()):
    """(key, text) of each command line Azure substitutes inputs into."""
    if isinstance(data.get("command"), str):
        yield base + ("command",), data["command"]
    if isinstance(data.get("args"), str):
        yield base + ("args",), data["args"]
    task = data.get("task")
    if isinstance(task, dict) and isinstance(task.get("program_arguments"), str):
        yield base + ("task", "program_arguments"), task["program_arguments"]


def reference_problems(doc: YamlDoc, key: KeyPath, value: Any, scopes: dict[str, set[str]],
                       skip: tuple[str, ...] = ()) -> list[Problem]:
    """Every `${{inputs.x}}` / `${{outputs.x}}` / `${{search_space.x}}` under `value` must name something
    declared in `scopes`; other `${{...}}` must be a path template."""
    problems = []
    if isinstance(value, dict):
        for name, item in value.items():
            if not key and str(name) in skip:
                continue
            problems += reference_problems(doc, key + (str(name),), item, scopes)
        return problems
    if isinstance(value, list):
        for i, item in enumerate(value):
            problems += reference_problems(doc, key + (str(i),), item, scopes)
        return problems
    if not isinstance(value, str):
        return []
    for match in ANY_REF.finditer(value):
        token, inner = match.group(0), match.group(1).strip()
        ref = SCOPED_REF.fullmatch(token)
        if ref is None:
            if inner not in PATH_TEMPLATES:
                allowed = ", ".join("${{" + s + ".<name>}}" for s in scopes)
                problems.append(doc.token_problem(key, token, f"{token} is not a reference Azure ML resolves here",
                                                  f"use {allowed}"))
            continue
        scope, name = ref.group(1), ref.group(2)
        if scope not in scopes:
            problems.append(doc.token_problem(key, token, f"{token}: no {scope} here",
                                              f"use {', '.join(scopes)}"))
        elif name not in scopes[scope]:
            declared = scopes[scope]
            close = difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.6)
            fix = f"did you mean ${{{{{scope}.{close[0]}}}}}?" if close else f"declare it under `{scope}:`"
            problems.append(doc.token_problem(key, token, f"{token} names no {scope.replace('_', ' ')} entry "
                                              f"'{name}' (azure-ai-ml does not check this when loading)", fix))
    return problems


def optional_problems(doc: YamlDoc, key: KeyPath, command: str, inputs: Any) -> list[Problem]:
    if not isinstance(inputs, dict):
        return []
    problems = []
    outside = OPTIONAL_BLOCK.sub(" ", command)
    for match in SCOPED_REF.finditer(outside):
        scope, name = match.group(1), match.group(2)
        spec = inputs.get(name) if scope == "inputs" else None
        if isinstance(spec, dict) and spec.get("optional") is True and "default" not in spec:
            problems.append(doc.token_problem(key, match.group(0), f"optional input '{name}' is used outside $[[...]]: "
                                              "when it is not given, Azure passes an empty argument",
                                              f"wrap its part of the command: $[[--flag ${{{{inputs.{name}}}}}]]"))
    return problems


def is_local(path: Any) -> bool:
    return isinstance(path, str) and not is_binding(path) and ":" not in path.split("/", 1)[0] \
        and not path.startswith(("azureml:", "http:", "https:", "git+"))


def path_problems(doc: YamlDoc, data: dict, base: KeyPath = ()) -> list[Problem]:
    """`code:` and `environment: file:` (or an inline environment's conda file) must exist locally."""
    problems = []
    code = data.get("code")
    if is_local(code) and not (doc.path.parent / code).exists():
        problems.append(doc.problem(base + ("code",), f"code folder {code} does not exist (relative to "
                                    f"{doc.path.parent})", "azure-ai-ml fails when it uploads the code"))
    env = data.get("environment")
    if isinstance(env, str) and env.startswith("file:") and not (doc.path.parent / env[5:]).is_file():
        problems.append(doc.problem(base + ("environment",), f"environment file {env[5:]} does not exist"))
    if isinstance(env, dict):
        for field in ("conda_file",):
            value = env.get(field)
            if is_local(value) and not (doc.path.parent / value).is_file():
                problems.append(doc.problem(base + ("environment", field), f"{field} {value} does not exist"))
    return problems
