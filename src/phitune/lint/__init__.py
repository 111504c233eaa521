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
from phitune.lint.source import YamlDoc, read_doc

DEFAULT_PATHS = ("components", "environments", "aml")
_JOB_MARKERS = {"compute", "experiment_name", "settings", "environment_variables", "services", "limits",
                "identity", "trial", "objective", "search_space", "training_data", "status"}
_PRIMITIVES = {"string", "integer", "number", "boolean"}


def kind_of(data) -> str | None:
    """The kind of Azure ML YAML (a key of `sdk_schemas.SCHEMAS`: "command", "pipeline", "component",
    "environment", ...), or None for any other YAML (conda files, MLTable, settings)."""
    from phitune.lint import sdk_schemas

    if not isinstance(data, dict):
        return None
    schema = str(data.get("$schema", "")).strip().rsplit("/", 1)[-1].lower()
    schema = schema.removesuffix(".json").removesuffix(".schema")
    kind = data.get("type")
    by_schema = sdk_schemas.SCHEMA_FILES.get(schema)
    # azure-ai-ml's loaders go by `type:`, not `$schema:`: a `$schema` naming another job or component
    # type (a parallel component under a pipeline-job schema) is decided as if it were absent.
    if by_schema and not (kind in sdk_schemas.JOB_TYPES and kind != _type_of(by_schema)):
        return by_schema
    if kind in sdk_schemas.COMPUTE_TYPES:
        return "compute"
    if kind in sdk_schemas.DATASTORE_TYPES:
        return "datastore"
    if kind in sdk_schemas.JOB_TYPES:
        if kind in ("automl", "finetuning") or not _looks_like_component(data):
            return kind
        return "component" if kind == "command" else f"{kind}_component"
    if kind in ("mlflow_model", "custom_model", "triton_model") and "path" in data and "name" in data:
        return "model"
    if kind in ("uri_file", "uri_folder", "mltable") and "path" in data and "name" in data:
        return "data"
    if kind is None and "command" in data:  # azure-ai-ml reads a YAML without `type:` as a command
        return "component" if _looks_like_component(data) else "command"
    if kind is None and ("image" in data or "build" in data) and "dependencies" not in data:
        return "environment"
    if "target" in data and "credentials" in data and isinstance(kind, str):
        return "connection"
    if kind is None and "replication_locations" in data:
        return "registry"
    if kind is None and "managed_network" in data:
        return "workspace"
    return None


def _type_of(kind: str) -> str:
    """The `type:` of a kind: "component" -> command, "spark_component" -> spark, "sweep" -> sweep."""
    return "command" if kind == "component" else kind.removesuffix("_component")


def _looks_like_component(data: dict) -> bool:
    """A job and a component of one `type` share most keys: a component declares its inputs (`type`,
    `default`, `optional`) and has a version; a job binds values and names a compute or experiment."""
    if _JOB_MARKERS & set(data):
        return False
    if "version" in data or "is_deterministic" in data:
        return True
    inputs = data.get("inputs")
    for spec in inputs.values() if isinstance(inputs, dict) else ():
        if isinstance(spec, dict) and "path" not in spec and "value" not in spec and (
                spec.get("type") in _PRIMITIVES or "optional" in spec or "default" in spec):
            return True
    return data.get("type") == "command" and "command" in data and "jobs" not in data


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
