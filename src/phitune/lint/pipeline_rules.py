"""phitune's rules for pipeline jobs and pipeline components.

azure-ai-ml's schemas read every node's keys and types (see `schema_walk`). What they leave to Azure,
each seen by loading such pipelines offline with azure-ai-ml 1.35 (`load_job` succeeds):
- `${{parent.inputs.x}}` / `${{parent.outputs.x}}` / `${{parent.jobs.j.outputs.o}}` naming nothing:
  never checked offline; Azure fails the pipeline when it resolves the graph.
- an input name a node's component does not declare: the SDK keeps it on the node, Azure drops it.
- literal node inputs outside the component's `min`/`max`/`enum` or of the wrong type (`epochs: two`).
- a required component input left unbound, and a node output the component does not declare.
- `environment:` next to `component:` on a node: the SDK loads it but the node's request body
  (`_to_rest_object()`) carries no environment, so the component's runs.
A node with its own `command` (no `component:`) is an anonymous component: its own inputs and outputs
are what its command may reference.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from phitune.errors import Problem
from phitune.lint.kinds import kind_of
from phitune.lint.component_rules import (ANY_REF, PATH_TEMPLATES, SCOPED_REF, command_strings, optional_problems,
                                          path_problems, reference_problems, value_problems)
from phitune.lint.job_rules import input_path_problems
from phitune.lint.source import KeyPath, YamlDoc, read_doc

PARENT_REF = re.compile(r"\$\{\{\s*parent\.(inputs|outputs|jobs)\.([A-Za-z0-9_.-]+?)"
                        r"(?:\.(inputs|outputs)\.([A-Za-z0-9_]+))?(\.[A-Za-z0-9_.]+)?\s*\}\}")
REMOTE = {"_remote": True}
# AutoML nodes publish outputs they do not declare (best_model); control-flow nodes bind whole jobs.
OPAQUE_NODES = {"automl", "do_while", "parallel_for", "if_else"}


def check_pipeline(doc: YamlDoc) -> list[Problem]:
    """Pipeline jobs and pipeline components: every node's bindings, inputs and outputs."""
    data = doc.data
    inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
    outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    problems = input_path_problems(doc, ("inputs",), inputs)
    problems += reference_problems(doc, ("outputs",), outputs, {})
    jobs = data.get("jobs") if isinstance(data.get("jobs"), dict) else {}
    components = {str(name): _component_of(doc, str(name), node) for name, node in jobs.items()}
    for name, node in jobs.items():
        component = components[str(name)]
        if isinstance(component, Problem):
            problems.append(component)
            continue
        if isinstance(node, dict):
            problems += _node_problems(doc, str(name), node, component, inputs, outputs, jobs, components)
    return problems


def _component_of(doc: YamlDoc, job: str, node: Any) -> dict | Problem:
    """The component a node runs: a local file, an inline definition, the node itself (an inline
    command job is an anonymous component), or REMOTE (registered: its interface is Azure's to check)."""
    if not isinstance(node, dict):
        return {}
    if node.get("type") in OPAQUE_NODES:
        return REMOTE
    field = "trial" if node.get("type") == "sweep" else "component"
    ref = node.get(field)
    if isinstance(ref, dict) and (field == "component" or "inputs" in ref or "outputs" in ref):
        return ref
    if ref is None or isinstance(ref, dict):  # an inline job, or a sweep's inline trial: the node is the interface
        return {"inputs": node.get("inputs") or {}, "outputs": node.get("outputs") or {}, "_inline": True}
    if not isinstance(ref, str):
        return REMOTE
    if not (ref.startswith(("file:", "./", "../", "/")) or ref.endswith((".yml", ".yaml"))):
        return REMOTE  # azureml:name:version, name@label, a registry path
    path = doc.path.parent / ref.removeprefix("file:")
    key = ("jobs", job, field)
    if not path.is_file():
        return doc.problem(key, f"component file {ref} does not exist (relative to {doc.path.parent})")
    component = read_doc(path)
    if isinstance(component, Problem):
        return component
    if not isinstance(component.data, dict):
        return doc.problem(key, f"{ref} is not a mapping")
    if kind_of(component.data) is None:
        return REMOTE  # a prompt flow (flow.dag.yaml, run.yml): its interface is not a component's
    return component.data


def _node_problems(doc: YamlDoc, job: str, node: dict, component: dict, inputs: dict, outputs: dict,
                   jobs: dict, components: dict) -> list[Problem]:
    base = ("jobs", job)
    problems: list[Problem] = []
    if "component" in node and "environment" in node:
        problems.append(doc.problem(base + ("environment",), "azure-ai-ml drops `environment:` on a component job "
                                    "when it builds the request, so the component's environment runs instead",
                                    "set `environment:` in the component (phitune submit does this for "
                                    "target.environment)"))
    if node.get("type") not in OPAQUE_NODES - {"automl"}:
        problems += _binding_problems(doc, base, node, inputs, outputs, jobs, components)
    if not component.get("_remote"):
        own = {"inputs": _names(component.get("inputs")), "outputs": _names(component.get("outputs"))}
        problems += _own_reference_problems(doc, base, node, own)
    if component.get("_remote"):
        return problems
    if component.get("_inline"):
        scopes = {"inputs": _names(node.get("inputs")), "outputs": _names(node.get("outputs"))}
        for key, text in command_strings(node, base):
            problems += reference_problems(doc, key, text, scopes)
        if isinstance(node.get("trial"), dict):
            scopes["search_space"] = _names(node.get("search_space"))
            for key, text in command_strings(node["trial"], base + ("trial",)):
                problems += reference_problems(doc, key, text, scopes)
            problems += path_problems(doc, node["trial"], base + ("trial",))
        problems += path_problems(doc, node, base) + input_path_problems(doc, base + ("inputs",), node.get("inputs"))
        return problems
    declared_in = component.get("inputs") if isinstance(component.get("inputs"), dict) else {}
    declared_out = component.get("outputs") if isinstance(component.get("outputs"), dict) else {}
    if isinstance(node.get(("trial" if node.get("type") == "sweep" else "component")), dict):
        problems += _inline_component_problems(doc, base + ("component",), component)
    bound = dict(node.get("inputs") or {}) if isinstance(node.get("inputs"), dict) else {}
    for name, value in bound.items():
        key = base + ("inputs", str(name))
        if name not in declared_in:
            problems.append(_no_such(doc, key, job, "input", str(name), declared_in))
            continue
        spec = declared_in[name] if isinstance(declared_in[name], dict) else {"type": declared_in[name]}
        literal = value.get("value", value.get("default")) if isinstance(value, dict) else value
        if not isinstance(value, dict) or "path" not in value:
            problems += value_problems(doc, key, spec, literal, f"input '{name}'")
    problems += input_path_problems(doc, base + ("inputs",), bound)
    for name in (node.get("search_space") or {}) if isinstance(node.get("search_space"), dict) else ():
        if name not in declared_in:
            problems.append(_no_such(doc, base + ("search_space", str(name)), job, "input", str(name), declared_in))
        bound[name] = True
    for name in (node.get("outputs") or {}) if isinstance(node.get("outputs"), dict) else ():
        if name not in declared_out:
            problems.append(_no_such(doc, base + ("outputs", str(name)), job, "output", str(name), declared_out))
    for name, spec in declared_in.items():
        spec = spec if isinstance(spec, dict) else {"type": spec}
        if name not in bound and spec.get("optional") is not True and "default" not in spec:
            problems.append(doc.problem(base + ("inputs",) if "inputs" in node else base,
                                        f"job '{job}' does not bind required input '{name}'",
                                        f"add inputs: {{{name}: ...}} to job '{job}'"))
    return problems


def _inline_component_problems(doc: YamlDoc, key: KeyPath, component: dict) -> list[Problem]:
    scopes = {"inputs": _names(component.get("inputs")), "outputs": _names(component.get("outputs"))}
    problems = []
    for command_key, text in command_strings(component, key):
        problems += reference_problems(doc, command_key, text, scopes)
        problems += optional_problems(doc, command_key, text, component.get("inputs"))
    return problems + path_problems(doc, component, key)


def _names(section: Any) -> set[str]:
    return {str(k) for k in section} if isinstance(section, dict) else set()


def _no_such(doc: YamlDoc, key: KeyPath, job: str, what: str, name: str, declared: dict) -> Problem:
    close = difflib.get_close_matches(name, [str(k) for k in declared], n=1, cutoff=0.6)
    return doc.problem(key, f"job '{job}' has no {what} '{name}' (azure-ai-ml keeps it; Azure ignores it)",
                       f"did you mean '{close[0]}'?" if close else
                       f"{what}s of its component: {', '.join(map(str, declared)) or 'none'}")


def _strings(value: Any, key: KeyPath, skip: set[str]):
    if isinstance(value, dict):
        for name, item in value.items():
            if str(name) not in skip:
                yield from _strings(item, key + (str(name),), set())
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, key + (str(i),), set())
    elif isinstance(value, str):
        yield key, value


_OWN_SKIP = {"inputs", "outputs", "component", "trial", "command", "args", "environment", "code"}


def _own_reference_problems(doc: YamlDoc, base: KeyPath, node: dict, own: dict) -> list[Problem]:
    """`${{inputs.x}}` / `${{outputs.x}}` in a node's own settings (a parallel node's `input_data`,
    `task.append_row_to`) name the node's own inputs and outputs."""
    problems = []
    for key, text in _strings(node, base, _OWN_SKIP):
        if SCOPED_REF.search(text):
            problems += reference_problems(doc, key, text, own)
    return problems


def _binding_problems(doc: YamlDoc, base: KeyPath, node: dict, inputs: dict, outputs: dict, jobs: dict,
                      components: dict) -> list[Problem]:
    """Every `${{...}}` in the node outside its own command and component: a parent binding or a path macro."""
    problems = []
    for key, text in _strings(node, base, {"component", "trial", "command", "args", "task", "environment",
                                           "code"}):
        for match in ANY_REF.finditer(text):
            token = match.group(0)
            if match.group(1).strip() in PATH_TEMPLATES or (SCOPED_REF.fullmatch(token) and key[2] not in
                                                             ("inputs", "outputs")):
                continue
            message = _reference_problem(PARENT_REF.fullmatch(token), token, inputs, outputs, jobs, components)
            if message:
                problems.append(doc.token_problem(key, token, message[0], message[1]))
    return problems


def _reference_problem(ref, token: str, inputs: dict, outputs: dict, jobs: dict, components: dict):
    if ref is None:
        return (f"{token} is not a pipeline binding",
                "use ${{parent.inputs.x}}, ${{parent.outputs.x}} or ${{parent.jobs.<job>.outputs.<output>}}")
    scope, name, sub, sub_name, _ = ref.groups()
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
        declared = None
        if isinstance(component, dict) and not component.get("_remote"):
            declared = component.get("outputs") if isinstance(component.get("outputs"), dict) else {}
        if declared is not None and sub_name not in declared:
            return _missing(token, f"output of job '{name}'", sub_name, declared)
    return None


def _missing(token: str, what: str, name: str, declared: dict):
    close = difflib.get_close_matches(name, [str(k) for k in declared], n=1, cutoff=0.6)
    return (f"{token} names no {what} '{name}' (azure-ai-ml does not check this offline)",
            f"did you mean '{close[0]}'?" if close else f"declared: {', '.join(map(str, declared)) or 'none'}")
