"""`phitune lint`: what azure-ai-ml accepts offline but Azure rejects or silently drops.

Checks component, pipeline, fine-tuning job, environment and compute YAMLs: `${{inputs.x}}` /
`${{parent.inputs.x}}` / `${{parent.outputs.x}}` / `${{parent.jobs.j.outputs.o}}` naming nothing,
defaults and literal values outside min/max or enum (or of the wrong type), unknown input names on
pipeline nodes, unknown keys, optional inputs used outside `$[[...]]`, missing local files.
Every problem names FILE:LINE: key. Plain YAML only: no azure-ai-ml import, so it runs in a blink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from phitune.errors import Problem
from phitune.lint.source import YamlDoc, read_doc

DEFAULT_PATHS = ("components", "environments", "aml")


def kind_of(data) -> str | None:
    """component | pipeline | finetuning | environment | compute | None (not an Azure ML YAML)."""
    if not isinstance(data, dict):
        return None
    schema = str(data.get("$schema", "")).lower()
    for marker, kind in (("commandcomponent", "component"), ("pipelinejob", "pipeline"),
                         ("finetuningjob", "finetuning"), ("environment.schema", "environment"),
                         ("amlcompute", "compute")):
        if marker in schema:
            return kind
    kind = data.get("type")
    if kind == "pipeline":
        return "pipeline"
    if kind == "finetuning":
        return "finetuning"
    if kind == "amlcompute":
        return "compute"
    if kind == "command" and "command" in data and "compute" not in data:
        return "component"
    if kind is None and ("image" in data or "build" in data) and "dependencies" not in data:
        return "environment"
    return None


def _checkers() -> dict[str, Callable[[YamlDoc], list[Problem]]]:
    from phitune.lint.component_rules import check_component
    from phitune.lint.other_rules import check_compute, check_environment, check_finetuning
    from phitune.lint.pipeline_rules import check_pipeline

    return {"component": check_component, "pipeline": check_pipeline, "finetuning": check_finetuning,
            "environment": check_environment, "compute": check_compute}


def yaml_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), "no such file or folder"))
    return files, problems


def lint_paths(paths: Iterable[str | Path]) -> tuple[dict[Path, str], list[Problem]]:
    """({file: kind} of the Azure ML YAMLs checked, problems). Other YAML files are skipped."""
    files, problems = yaml_files(paths)
    checkers = _checkers()
    checked: dict[Path, str] = {}
    for path in files:
        doc = read_doc(path)
        if isinstance(doc, Problem):
            problems.append(doc)
            continue
        kind = kind_of(doc.data)
        if kind is None:
            continue
        checked[path] = kind
        problems += checkers[kind](doc)
    return checked, problems
