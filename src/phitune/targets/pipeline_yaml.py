"""Azure ML pipeline and component YAML, read as plain data: bindings, optional blocks and command
rendering. Shared by the local-pipeline runner (which executes exactly these command lines) and
`phitune lint` (which checks the same references Azure resolves)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from phitune.errors import Problem, SubmitError

# ${{inputs.x}} / ${{outputs.y}} inside a component command.
COMMAND_REF = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
# ${{parent.inputs.x}} / ${{parent.outputs.x}} / ${{parent.jobs.j.outputs.o}} in a pipeline node.
PARENT_REF = re.compile(r"\$\{\{\s*parent\.(inputs|outputs|jobs)\.([A-Za-z0-9_]+)(?:\.(inputs|outputs)\.([A-Za-z0-9_]+))?\s*\}\}")
ANY_REF = re.compile(r"\$\{\{(.*?)\}\}")
OPTIONAL_BLOCK = re.compile(r"\$\[\[(.*?)\]\]", re.S)
DATA_TYPES = {"uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"}


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SubmitError(f"cannot read {path}", [Problem(str(path), str(exc).splitlines()[0])]) from None
    if not isinstance(data, dict):
        raise SubmitError(f"cannot read {path}", [Problem(str(path), "top level must be a mapping")])
    return data


@dataclass
class Component:
    path: Path
    data: dict

    @property
    def name(self) -> str:
        return str(self.data.get("name", self.path.stem))

    @property
    def inputs(self) -> dict[str, dict]:
        return {k: (v if isinstance(v, dict) else {"type": v}) for k, v in (self.data.get("inputs") or {}).items()}

    @property
    def outputs(self) -> dict[str, dict]:
        return {k: (v if isinstance(v, dict) else {"type": v}) for k, v in (self.data.get("outputs") or {}).items()}

    @property
    def command(self) -> str:
        return str(self.data.get("command", ""))

    @property
    def code_dir(self) -> Path:
        code = self.data.get("code")
        return (self.path.parent / code).resolve() if isinstance(code, str) else self.path.parent

    @property
    def process_count(self) -> int:
        dist = self.data.get("distribution") or {}
        return int(dist.get("process_count_per_instance") or 1) if dist.get("type") == "pytorch" else 1


class _Bindings:
    """`inputs:` and `outputs:` of a pipeline or of one of its jobs, as written (values or bindings)."""

    data: dict

    @property
    def inputs(self) -> dict[str, Any]:
        return dict(self.data.get("inputs") or {})

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.data.get("outputs") or {})


@dataclass
class Node(_Bindings):
    name: str
    component: Component
    data: dict

    def upstream(self) -> set[str]:
        found = set()
        for value in self.inputs.values():
            for m in PARENT_REF.finditer(_binding_text(value)):
                if m.group(1) == "jobs":
                    found.add(m.group(2))
        return found

    @property
    def process_count(self) -> int:
        dist = self.data.get("distribution") or {}
        if dist.get("process_count_per_instance"):
            return int(dist["process_count_per_instance"])
        return self.component.process_count


@dataclass
class Pipeline(_Bindings):
    path: Path
    data: dict
    jobs: dict[str, Node] = field(default_factory=dict)

    def ordered_jobs(self) -> list[Node]:
        """Nodes in dependency order (file order among independent nodes), as Azure schedules them."""
        done: list[str] = []
        pending = list(self.jobs)
        while pending:
            ready = [n for n in pending if self.jobs[n].upstream() <= set(done)]
            if not ready:
                raise SubmitError(f"{self.path}: the pipeline's jobs depend on each other in a cycle",
                                  [Problem("jobs", ", ".join(pending))])
            done.append(ready[0])
            pending.remove(ready[0])
        return [self.jobs[n] for n in done]

    def node_for_component(self, component_name: str) -> Node | None:
        for node in self.jobs.values():
            if node.component.name == component_name:
                return node
        return None


def load_component(path: Path) -> Component:
    return Component(path.resolve(), read_yaml(path))


def load_pipeline(path: Path, data: dict | None = None) -> Pipeline:
    """A pipeline YAML (or its already-read `data`) with each node's component file loaded."""
    data = data if data is not None else read_yaml(path)
    pipeline = Pipeline(path, data)
    for name, node in (data.get("jobs") or {}).items():
        ref = node.get("component") if isinstance(node, dict) else None
        if not isinstance(ref, str) or ref.startswith("azureml:"):
            raise SubmitError(f"{path}: job {name} must use a local component file",
                              [Problem(f"jobs.{name}.component", f"got {ref!r}", "use component: ../../components/<name>.yml")])
        comp_path = (path.parent / ref.removeprefix("file:")).resolve()
        pipeline.jobs[name] = Node(name, load_component(comp_path), node)
    return pipeline


def render_command(command: str, inputs: dict[str, Any], outputs: dict[str, str]) -> str:
    """The command Azure would run: `$[[...]]` blocks kept only when every input they use is given,
    then `${{inputs.x}}` / `${{outputs.y}}` replaced by (shell-quoted) values. Line breaks of a
    folded YAML command are already spaces."""
    def keep_block(match: re.Match) -> str:
        body = match.group(1)
        used = [m.group(2) for m in COMMAND_REF.finditer(body) if m.group(1) == "inputs"]
        return body if all(inputs.get(name) is not None for name in used) else ""

    text = " ".join(OPTIONAL_BLOCK.sub(keep_block, command).split())

    def substitute(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2)
        source = inputs if kind == "inputs" else outputs
        value = source.get(name)
        if value is None:
            raise SubmitError("cannot render a component command", [Problem(
                f"${{{{{kind}.{name}}}}}", f"no value for {kind[:-1]} '{name}' (required: not inside $[[...]])")])
        return shlex.quote(_as_command_value(value))

    return COMMAND_REF.sub(substitute, text)


def _as_command_value(value: Any) -> str:
    # Azure renders booleans as True/False in command lines.
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _binding_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("path", "")) + " " + str(value.get("value", ""))
    return str(value)
