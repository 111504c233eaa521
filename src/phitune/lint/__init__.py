"""`phitune lint`: Azure ML YAMLs checked against azure-ai-ml's own schemas, plus what the SDK accepts
offline but Azure rejects or silently drops.

Two layers:
- `schema_walk` walks every YAML kind the CLI v2 accepts (jobs of every type, components, environments,
  compute, models, data, datastores, ...) along azure-ai-ml's marshmallow schema classes: unknown keys at
  any depth, wrong types, enum and range violations. The rules come from the installed SDK.
- phitune's own rules (`component_rules`, `pipeline_rules`, `job_rules`, `asset_rules`), each saying
  which gap of the SDK it covers: bindings naming nothing, literals outside a component input's
  min/max/enum, unknown inputs on component jobs, optional inputs outside `$[[...]]`, missing files.
Every problem names FILE:LINE: key. azure-ai-ml is imported only when a YAML is found (about 2 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from phitune.errors import Problem
from phitune.lint.kinds import kind_of
from phitune.lint.source import YamlDoc, read_doc

DEFAULT_PATHS = ("components", "environments", "aml")


def check(doc: YamlDoc, kind: str) -> list[Problem]:
    """Schema problems, then phitune's rules for the kind."""
    from phitune.lint import asset_rules, component_rules, job_rules, pipeline_rules, sdk_schemas
    from phitune.lint.schema_walk import as_written, walk

    schemas, misfit = sdk_schemas.choose(kind, doc.data)
    if misfit:  # no schema reads this `type` / `task` / `model_provider`: only phitune's rules apply
        key, allowed = misfit
        allowed = sorted({as_written(a) for a in allowed})
        problems = [doc.problem((key,), f"{doc.data.get(key)!r} is not one of {', '.join(allowed)}",
                                f"use one of {', '.join(allowed)}")]
    else:
        try:
            problems = min((walk(doc, (), doc.data, schema) for schema in schemas), key=len)
        except Exception as err:  # noqa: BLE001 (an SDK schema shape lint does not know: say so, no traceback)
            problems = [doc.problem((), f"could not check against azure-ai-ml's {kind} schema "
                                    f"({type(err).__name__}: {err})", "report this to phitune with the file")]
    rules = {"component": component_rules.check_component, "pipeline": pipeline_rules.check_pipeline,
             "pipeline_component": pipeline_rules.check_pipeline, "command": job_rules.check_command_job,
             "sweep": job_rules.check_sweep_job, "finetuning": job_rules.check_finetuning,
             "parallel_component": component_rules.check_component, "spark": job_rules.check_code_job,
             "spark_component": component_rules.check_component, "parallel": job_rules.check_node_only_job,
             "data_transfer": job_rules.check_node_only_job,
             "environment": asset_rules.check_environment, "compute": asset_rules.check_compute,
             "model": asset_rules.check_local_path, "data": asset_rules.check_local_path}
    if kind in rules:
        problems += rules[kind](doc)
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if (p.location, p.message) not in seen:
            seen.add((p.location, p.message))
            out.append(p)
    return out


def yaml_files(paths: Iterable[str | Path]) -> tuple[list[tuple[Path, list[Path]]], list[Problem]]:
    """[(path given, YAML files under it)], and a problem per path that does not exist."""
    found, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
            found.append((path, files))
        elif path.is_file():
            found.append((path, [path]))
        else:
            problems.append(Problem(str(path), "no such file or folder"))
    return found, problems


def lint_paths(paths: Iterable[str | Path]) -> tuple[dict[Path, str], list[Problem]]:
    """({file: kind} of the Azure ML YAMLs checked, problems). Other YAML files are skipped; a path
    holding no Azure ML YAML at all is a problem (linting nothing must not look like success)."""
    from phitune.lint.sdk_schemas import quiet_experimental

    found, problems = yaml_files(paths)
    with quiet_experimental():
        checked = _lint_found(found, problems)
    return checked, problems


def _lint_found(found: list[tuple[Path, list[Path]]], problems: list[Problem]) -> dict[Path, str]:
    checked: dict[Path, str] = {}
    for given, files in found:
        before = len(checked)
        for path in files:
            doc = read_doc(path)
            if isinstance(doc, Problem):
                problems.append(doc)
                checked[path] = "unreadable"
                continue
            kind = kind_of(doc.data)
            if kind is None:
                continue
            checked[path] = kind
            problems += check(doc, kind)
        if len(checked) == before:
            problems.append(Problem(str(given), "holds no Azure ML YAML (no `$schema:` of Azure ML, no job, "
                                    "component, environment, compute, model or data `type:`)",
                                    "point lint at Azure ML job / component / asset YAMLs"))
    return checked
