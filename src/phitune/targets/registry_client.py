"""Reading Azure ML registries (`azureml`, `azureml-meta`, ...) the way Microsoft's samples do:
`MLClient(credential, registry_name=...)`, then `models.get(name, label="latest")` /
`components.get(name, version=...)`. Used at submit time only (a dry run never calls Azure).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from phitune.errors import Problem, SubmitError
from phitune.targets.pipeline_plan import REGISTRY_MODEL


@dataclass(frozen=True)
class RegistryModel:
    uri: str  # azureml://registries/<registry>/models/<name>/versions/<version>
    name: str
    version: str
    tags: dict[str, str] = field(default_factory=dict)

    def tag_list(self, key: str) -> list[str] | None:
        """A tag holding a Python list literal (e.g. finetune_compute_allow_list), parsed safely."""
        value = _literal(self.tags.get(key))
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else None

    def tag_dict(self, key: str) -> dict[str, object]:
        """A tag holding a Python dict literal (e.g. model_specific_defaults), parsed safely."""
        value = _literal(self.tags.get(key))
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def registry_client(ml_client, registry: str):
    """An MLClient for `registry`, with the workspace client's credential and phitune's retry policy."""
    from azure.ai.ml import MLClient

    from phitune.compat import aml_client_credential
    from phitune.targets.workspace import RETRY_POLICY

    return MLClient(aml_client_credential(ml_client), registry_name=registry, show_progress=False, **RETRY_POLICY)


def get_model(ml_client, uri: str, field: str) -> RegistryModel:
    """The registry model of `uri` (`/labels/latest` resolved to its version), with its tags."""
    from phitune.targets.azure_errors import azure_call

    match = REGISTRY_MODEL.match(uri)
    if not match:
        raise SubmitError("not a registry model", [Problem(field, f"{uri} is not azureml://registries/<r>/models/<n>/...")])
    client = registry_client(ml_client, match.group("registry"))
    with azure_call(f"reading model {match.group('name')} from registry {match.group('registry')}"):
        if match.group("version"):
            model = client.models.get(match.group("name"), version=match.group("version"))
        else:
            model = client.models.get(match.group("name"), label=match.group("label"))
    version = str(model.version)
    resolved = f"azureml://registries/{match.group('registry')}/models/{match.group('name')}/versions/{version}"
    return RegistryModel(resolved, match.group("name"), version, {str(k): str(v) for k, v in (model.tags or {}).items()})


def get_component(ml_client, registry: str, name: str, version: str | None):
    """The registry component `name` (latest when `version` is None), as azure-ai-ml's entity."""
    from phitune.targets.azure_errors import azure_call

    client = registry_client(ml_client, registry)
    with azure_call(f"reading component {name} from registry {registry}"):
        if version:
            return client.components.get(name, version=version)
        return client.components.get(name, label="latest")


def _literal(text: str | None):
    if not text:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
