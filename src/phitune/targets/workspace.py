"""The one place an `MLClient` is built: which workspace, which credential, which retry policy.

Workspace, first match wins: `target.workspace` in the recipe (or --subscription/--resource-group/
--workspace), then `config.json` (`MLClient.from_config`, searched from the working directory up),
then AZURE_SUBSCRIPTION_ID + AZURE_RESOURCE_GROUP + AZUREML_WORKSPACE_NAME.
Credential: `DefaultAzureCredential` (az login, environment, managed identity, ...), never a key.
Transient 429 and 5xx responses are retried with exponential backoff by azure-core's RetryPolicy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from phitune.errors import Problem, SubmitError

ENV_VARS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")
# azure-core RetryPolicy settings (passed through MLClient to every service client).
RETRY_POLICY = {"retry_total": 5, "retry_status": 5, "retry_connect": 3, "retry_read": 3,
                "retry_backoff_factor": 0.8, "retry_backoff_max": 60}


@dataclass(frozen=True)
class WorkspaceRef:
    subscription: str
    resource_group: str
    name: str
    source: str  # where it came from, for messages
    config_path: Path | None = None

    @property
    def arm_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}")


def find_workspace(spec=None, start: str | Path | None = None) -> WorkspaceRef | None:
    """The workspace to use, read offline (no network); None when nothing names one."""
    if spec is not None:
        return WorkspaceRef(spec.subscription, spec.resource_group, spec.name, "target.workspace")
    config = _find_config(Path(start or Path.cwd()))
    if config is not None:
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
            return WorkspaceRef(data["subscription_id"], data["resource_group"], data["workspace_name"],
                                str(config), config)
        except (ValueError, KeyError, TypeError) as exc:
            raise SubmitError(f"unreadable workspace config {config}", [Problem(
                str(config), f"expected subscription_id, resource_group and workspace_name ({exc})",
                "download config.json again from the workspace page in Azure ML studio")]) from None
    values = [os.environ.get(var) for var in ENV_VARS]
    if all(values):
        return WorkspaceRef(values[0], values[1], values[2], "environment variables")
    return None


def require_workspace(spec=None) -> WorkspaceRef:
    ref = find_workspace(spec)
    if ref is None:
        raise SubmitError("no Azure ML workspace given", [Problem(
            "target.workspace", "no target.workspace in the recipe, no config.json found, and "
                                f"{', '.join(ENV_VARS)} are not all set",
            "add target.workspace {subscription, resource_group, name} to the recipe, pass --subscription "
            "--resource-group --workspace, or download config.json from the workspace page in Azure ML studio "
            "into this folder")])
    return ref


def make_credential():
    """DefaultAzureCredential without the interactive browser (a CLI must not pop windows)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def make_ml_client(spec=None, credential=None, **client_options):
    """An `MLClient` for the workspace (see module doc). `client_options` override RETRY_POLICY.
    Azure's request logs are quieted and every log message redacted by phitune.process (entry points)."""
    ref = require_workspace(spec)
    from azure.ai.ml import MLClient

    from phitune.targets.azure_errors import azure_call

    credential = credential if credential is not None else make_credential()
    options = {**RETRY_POLICY, "show_progress": False, **client_options}
    with azure_call(f"opening workspace {ref.name}"):
        if ref.config_path is not None:
            return MLClient.from_config(credential, path=str(ref.config_path), **options)
        return MLClient(credential, ref.subscription, ref.resource_group, ref.name, **options)


def _find_config(start: Path) -> Path | None:
    """config.json or .azureml/config.json in `start` or a parent (what MLClient.from_config finds)."""
    for folder in [start.resolve(), *start.resolve().parents]:
        for candidate in (folder / "config.json", folder / ".azureml" / "config.json"):
            if candidate.is_file() and _looks_like_workspace_config(candidate):
                return candidate
    return None


def _looks_like_workspace_config(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "workspace_name" in data

