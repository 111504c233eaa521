"""Which kind of Azure ML YAML a document is (command job, pipeline, component, environment, ...),
decided as azure-ai-ml's loaders decide it; None for any other YAML."""

from __future__ import annotations

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
