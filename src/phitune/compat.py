"""Every call into a dependency's private API, and the versions it was checked against.

A private name (a leading underscore, or a module such as `azure.ai.ml._schema`) can change in any
release without notice. Each one phitune uses is reached through a function here, one section per
dependency, so an upgrade has one file to review; tests/contract/test_compat_*.py check that every
name below still exists in the installed version and that the installed version is the pinned one,
so an upgrade fails loudly there and points here. Imports stay inside the functions: importing this
module imports no dependency (`phitune --help` stays light, the training core imports no azure).

azure-ai-ml (checked against 1.35.2, the pin in pyproject.toml):
- dry runs compute the request a submit would send, offline: the content hash azure-ai-ml uploads local
  files under, its entity-to-REST conversion and JSON encoder, the data behind a pipeline input, the
  source file of a component and the component a node points at;
- `_validate()`, what `az ml job validate` checks offline;
- the workspace id serverless endpoints address fine-tuned models by, and the credential of an MLClient
  (reused for registry clients);
- logger names of azure-ai-ml's experimental-class and schema warnings (quieted);
- `phitune lint` reads azure-ai-ml's own marshmallow schemas, by design: the schema classes named in
  phitune/lint/sdk_schemas.py (SCHEMAS, all under `azure.ai.ml._schema`), the field classes of
  `azure.ai.ml._schema.core.fields` (ExperimentalField, UnionField, TypeSensitiveUnionField and its
  `_type_sensitive_fields_dict`, StringTransformedEnum), the schema context key and the
  experimental-warning switch.

DeepSpeed (checked against 0.19.8, the pin in pyproject.toml):
- ZeRO-3 output: the trainable weights gathered from every rank's partition as a state dict
  (`DeepSpeedEngine._zero3_consolidated_16bit_state_dict`; the public `save_16bit_model` only writes
  them to a file);
- the config key `managed_gradient_accumulation` (phitune steps the optimizer once per accumulation
  window it chose), read by DeepSpeed's config parser.

transformers (checked against 5.23.0, the pin in pyproject.toml):
- the attention implementation a loaded model's config holds (`config._attn_implementation`; the
  public `set_attn_implementation` changes it but nothing public reads it), which decides whether
  padding-free rows may hold several examples (phitune.models.segment_attention);
- `config._name_or_path`, where `from_pretrained` records the folder a model came from; a quantized
  model that phitune loads tensor by tensor sets it the same way, so the tokenizer is found beside it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------------
# azure-ai-ml
# ---------------------------------------------------------------------------------------------------
AZURE_AI_ML_CHECKED = "1.35.2"
# (module, attribute) pairs imported below; the contract test imports each one.
AZURE_AI_ML_PRIVATE_IMPORTS = (
    ("azure.ai.ml._utils._asset_utils", "get_object_hash"),
    ("azure.ai.ml._utils._asset_utils", "get_ignore_file"),
    ("azure.ai.ml.entities._job.to_rest_functions", "to_rest_job_object"),
    ("azure.ai.ml._restclient.arm_ml_service._utils.model_base", "SdkJSONEncoder"),
    ("azure.ai.ml._schema.core.fields", "ExperimentalField"),
    ("azure.ai.ml._schema.core.fields", "UnionField"),
    ("azure.ai.ml._schema.core.fields", "TypeSensitiveUnionField"),
    ("azure.ai.ml._schema.core.fields", "StringTransformedEnum"),
    ("azure.ai.ml.constants._common", "BASE_PATH_CONTEXT_KEY"),
    ("azure.ai.ml._utils._experimental", "_should_skip_warning"),
)
# Loggers that warn about every experimental class and schema azure-ai-ml builds.
AZURE_AI_ML_NOISY_LOGGERS = ("azure.ai.ml._utils._experimental", "azure.ai.ml._schema")


def aml_upload_hash(path: Path) -> str:
    """The content hash azure-ai-ml uploads a local file or folder under (LocalUpload/<hash>/...)."""
    from azure.ai.ml._utils._asset_utils import get_ignore_file, get_object_hash

    return get_object_hash(path, get_ignore_file(path))


def aml_rest_job_body(job) -> dict:
    """The JSON body azure-ai-ml would PUT for `job` (its REST object, serialized as it sends it)."""
    import json

    from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

    rest = to_rest_job_object(job)
    if hasattr(rest, "serialize"):  # msrest models
        return rest.serialize()
    from azure.ai.ml._restclient.arm_ml_service._utils.model_base import SdkJSONEncoder

    return json.loads(json.dumps(rest, cls=SdkJSONEncoder, exclude_readonly=True))


def aml_validate(entity):
    """azure-ai-ml's offline validation of a loaded job or component (what `az ml job validate` runs):
    a result with `.passed` and `.error_messages`."""
    return entity._validate()


def aml_input_data(value: Any) -> Any:
    """The data object (with `.path`) behind a job's or node's input; a plain Input is its own data."""
    return getattr(value, "_data", value)


def aml_component_source(component) -> str | None:
    """The YAML file a loaded component came from, when it came from one."""
    return getattr(component, "_source_path", None)


def aml_set_node_component(node, component: Any) -> None:
    """Point a pipeline node at `component` (a dry run shows a placeholder where an id would be)."""
    node._component = component


def aml_workspace_id(workspace) -> str:
    """A workspace's immutable id (a GUID): fine-tuned models are addressed by it, not by ARM id."""
    return workspace._workspace_id


def aml_client_credential(ml_client):
    """The credential an MLClient was built with."""
    return ml_client._credential


def aml_schema_fields():
    """azure-ai-ml's marshmallow field classes module (`phitune lint` walks its schemas)."""
    from azure.ai.ml._schema.core import fields

    return fields


def aml_union_candidates_for_type(field, kind: str) -> list:
    """The candidate fields a TypeSensitiveUnionField tries for a mapping whose `type:` is `kind`."""
    return field._type_sensitive_fields_dict[kind]


def aml_schema_context(base_path: Path) -> dict:
    """The context azure-ai-ml's schemas are built with: the folder relative paths resolve against."""
    from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY

    return {BASE_PATH_CONTEXT_KEY: base_path}


@contextmanager
def aml_experimental_warnings_skipped():
    """Building an experimental schema makes azure-ai-ml walk the whole call stack with `inspect.stack()`
    to decide whether to log "This is an experimental class"; skip that decision (and the log)."""
    from azure.ai.ml._utils import _experimental

    original = _experimental._should_skip_warning
    _experimental._should_skip_warning = lambda: True
    try:
        yield
    finally:
        _experimental._should_skip_warning = original


# ---------------------------------------------------------------------------------------------------
# DeepSpeed
# ---------------------------------------------------------------------------------------------------
DEEPSPEED_CHECKED = "0.19.8"
# (module, class, attribute) of DeepSpeed's private API used below; the contract test checks each one.
DEEPSPEED_PRIVATE_ATTRIBUTES = (
    ("deepspeed.runtime.engine", "DeepSpeedEngine", "_zero3_consolidated_16bit_state_dict"),
)
# Config keys phitune writes that DeepSpeed's documentation does not list (module, constant, value).
DEEPSPEED_UNDOCUMENTED_CONFIG = (("deepspeed.runtime.constants", "MANAGED_GRADIENT_ACCUMULATION",
                                  "managed_gradient_accumulation"),)


def deepspeed_zero3_state_dict(engine) -> dict:
    """Collective under ZeRO-3: every trainable weight of `engine`, gathered from the ranks'
    partitions, on rank 0 (other ranks get an empty dict); frozen weights are left out."""
    return engine._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=True)


# ---------------------------------------------------------------------------------------------------
# transformers
# ---------------------------------------------------------------------------------------------------
TRANSFORMERS_CHECKED = "5.23.0"
# Private attributes of transformers' PretrainedConfig used below; the contract test checks each one.
TRANSFORMERS_CONFIG_ATTRIBUTES = ("_attn_implementation", "_name_or_path")


def attention_implementation(config) -> str | None:
    """The attention implementation a model's config selects ("sdpa", "eager", a registered name)."""
    return getattr(config, "_attn_implementation", None)


def set_model_source(config, folder) -> None:
    """Record `folder` as where the model was loaded from, as `from_pretrained` does."""
    config._name_or_path = str(folder)
