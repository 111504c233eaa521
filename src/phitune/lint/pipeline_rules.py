"""Lint rules for pipeline jobs: bindings that name nothing, unknown node inputs, literal values out
of range, required inputs left unbound, unknown keys."""

from __future__ import annotations

import difflib
from pathlib import Path

from phitune.errors import Problem
from phitune.lint import schemas
from phitune.lint.component_rules import command_problems, is_binding, unknown_keys, value_problems
from phitune.lint.source import YamlDoc, read_doc
from phitune.targets.pipeline_yaml import ANY_REF, PARENT_REF


def check_pipeline(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = unknown_keys(doc, (), data, schemas.PIPELINE_JOB, "a pipeline job")
    problems += unknown_keys(doc, ("settings",), data.get("settings"), schemas.PIPELINE_SETTINGS, "settings")
    inputs = data.get("inputs") or {}
    outputs = data.get("outputs") or {}
    for name, value in inputs.items():
        if isinstance(value, dict):
            problems += unknown_keys(doc, ("inputs", str(name)), value, schemas.JOB_DATA_INPUT | {"default", "optional",
                                     "description", "value"}, f"pipeline input '{name}'")
            problems += _local_path_problems(doc, ("inputs", str(name), "path"), value.get("path"))
    for name, value in outputs.items():
        if isinstance(value, dict):
            problems += unknown_keys(doc, ("outputs", str(name)), value, schemas.JOB_OUTPUT, f"pipeline output '{name}'")
    jobs = data.get("jobs") or {}
    components = {name: _component_of(doc, name, node) for name, node in jobs.items()}
    for name, node in jobs.items():
        component = components[name]
        if isinstance(component, Problem):
            problems.append(component)
            continue
        problems += _node_problems(doc, str(name), node, component, inputs, outputs, jobs, components)
    return problems


def _component_of(doc: YamlDoc, job: str, node) -> dict | Problem:
    key = ("jobs", str(job), "component")
    if not isinstance(node, dict):
        return doc.problem(("jobs", str(job)), "a job must be a mapping")
    ref = node.get("component")
    if not isinstance(ref, str):
        return {"inputs": {}, "outputs": {}, "_inline": True} if isinstance(ref, dict) is False else ref
    if ref.startswith("azureml:"):
        return {"_remote": True}  # a registered component: checked by Azure, not here
    path = doc.path.parent / ref.removeprefix("file:")
    if not path.is_file():
        return doc.problem(key, f"component file {ref} does not exist (relative to {doc.path.parent})")
    component = read_doc(path)
    if isinstance(component, Problem):
        return component
    return component.data if isinstance(component.data, dict) else doc.problem(key, f"{ref} is not a mapping")


def _node_problems(doc: YamlDoc, job: str, node: dict, component: dict, inputs: dict, outputs: dict,
                   jobs: dict, components: dict) -> list[Problem]:
    base = ("jobs", job)
    problems = unknown_keys(doc, base, node, schemas.PIPELINE_NODE, f"job '{job}'")
    problems += unknown_keys(doc, base + ("distribution",), node.get("distribution"), schemas.DISTRIBUTION, "distribution")
    problems += unknown_keys(doc, base + ("resources",), node.get("resources"), schemas.RESOURCES, "resources")
    if "environment" in node:
        problems.append(doc.problem(base + ("environment",), "azure-ai-ml drops `environment:` on a component job "
                                    "when it builds the request, so the component's environment runs instead",
                                    "set `environment:` in the component (phitune submit does this for "
                                    "target.environment)"))
    if component.get("_remote"):
        return problems + _binding_problems(doc, base, node, inputs, outputs, jobs, components)
    declared_in = component.get("inputs") or {}
    declared_out = component.get("outputs") or {}
    for name, value in (node.get("inputs") or {}).items():
        key = base + ("inputs", str(name))
        if name not in declared_in:
            close = difflib.get_close_matches(str(name), [str(k) for k in declared_in], n=1, cutoff=0.6)
            problems.append(doc.problem(key, f"job '{job}' has no input '{name}' (Azure ignores it silently)",
                                        f"did you mean '{close[0]}'?" if close else
                                        f"inputs of its component: {', '.join(map(str, declared_in)) or 'none'}"))
            continue
        spec = declared_in[name] if isinstance(declared_in[name], dict) else {"type": declared_in[name]}
        literal = value.get("value", value.get("default")) if isinstance(value, dict) else value
        if not isinstance(value, dict) or "path" not in value:
            problems += value_problems(doc, key, spec, literal, f"input '{name}'")
        if isinstance(value, dict):
            problems += _local_path_problems(doc, key + ("path",), value.get("path"))
    for name in (node.get("outputs") or {}):
        if name not in declared_out:
            problems.append(doc.problem(base + ("outputs", str(name)), f"job '{job}' has no output '{name}'",
                                        f"outputs of its component: {', '.join(map(str, declared_out)) or 'none'}"))
    bound = set(node.get("inputs") or {})
    for name, spec in declared_in.items():
        spec = spec if isinstance(spec, dict) else {"type": spec}
        if name not in bound and not spec.get("optional") and "default" not in spec:
            problems.append(doc.problem(base + ("inputs",) if "inputs" in node else base,
                                        f"job '{job}' does not bind required input '{name}'"))
    if isinstance(node.get("command"), str):
        problems += command_problems(doc, base + ("command",), node["command"], declared_in, declared_out)
    return problems + _binding_problems(doc, base, node, inputs, outputs, jobs, components)


def _binding_problems(doc: YamlDoc, base, node: dict, inputs: dict, outputs: dict, jobs: dict,
                      components: dict) -> list[Problem]:
    problems = []
    for section in ("inputs", "outputs"):
        for name, value in (node.get(section) or {}).items():
            key = base + (section, str(name))
            text = str(value.get("path", "")) if isinstance(value, dict) else str(value)
            for match in ANY_REF.finditer(text):
                token = match.group(0)
                ref = PARENT_REF.fullmatch(token)
                message = _reference_problem(ref, token, inputs, outputs, jobs, components)
                if message:
                    problems.append(doc.token_problem(key, token, message[0], message[1]))
    return problems


def _reference_problem(ref, token: str, inputs: dict, outputs: dict, jobs: dict, components: dict):
    if ref is None:
        return (f"{token} is not a pipeline binding",
                "use ${{parent.inputs.x}}, ${{parent.outputs.x}} or ${{parent.jobs.<job>.outputs.<output>}}")
    scope, name, sub, sub_name = ref.groups()
    if scope == "inputs" and name not in inputs:
        return _missing(token, "pipeline input", name, inputs)
    if scope == "outputs" and name not in outputs:
        return _missing(token, "pipeline output", name, outputs)
    if scope == "jobs":
        if name not in jobs:
            return _missing(token, "job", name, jobs)
        if sub != "outputs":
            return (f"{token}: only a job's outputs can be bound", "use ${{parent.jobs.<job>.outputs.<output>}}")
        component = components.get(name)
        declared = (component.get("outputs") or {}) if isinstance(component, dict) and not component.get("_remote") else None
        if declared is not None and sub_name not in declared:
            return _missing(token, f"output of job '{name}'", sub_name, declared)
    return None


def _missing(token: str, what: str, name: str, declared: dict):
    close = difflib.get_close_matches(name, [str(k) for k in declared], n=1, cutoff=0.6)
    return (f"{token} names no {what} '{name}' (azure-ai-ml does not check this offline)",
            f"did you mean '{close[0]}'?" if close else f"declared: {', '.join(map(str, declared)) or 'none'}")


def _local_path_problems(doc: YamlDoc, key, path) -> list[Problem]:
    if not isinstance(path, str) or is_binding(path) or path.startswith(("azureml:", "http", "abfss:", "wasbs:")):
        return []
    if not (doc.path.parent / path).exists() and not Path(path).is_absolute():
        return [doc.problem(key, f"local path {path} does not exist (relative to {doc.path.parent})")]
    if Path(path).is_absolute() and not Path(path).exists():
        return [doc.problem(key, f"local path {path} does not exist")]
    return []
