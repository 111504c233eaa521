"""`--dry-run` for Azure targets: the exact REST request a submit would send, computed offline.

No credential and no network. What only the service can know is computed the way azure-ai-ml does
it where possible (local files become `azureml://datastores/workspaceblobstore/paths/LocalUpload/
<content hash>/<name>`, the same hash azure-ai-ml uploads under) and shown as a placeholder otherwise
(anonymous component ids, registered on submit from components/*.yml). `mlflow.source.git.*`
properties that azure-ai-ml adds at send time are left out.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

ARM = "https://management.azure.com"
DATASTORE = "workspaceblobstore"
COMPONENT_PLACEHOLDER = "<anonymous component registered on submit from {path}>"


def workspace_path(workspace) -> str:
    if workspace is None:
        return ("/subscriptions/<subscription>/resourceGroups/<resource-group>/providers/"
                "Microsoft.MachineLearningServices/workspaces/<workspace>")
    return workspace.arm_id


def upload_uri(path: str | Path) -> str:
    """The datastore URI azure-ai-ml gives a local file or folder it uploads (content-addressed)."""
    from phitune.compat import aml_upload_hash

    path = Path(path)
    digest = aml_upload_hash(path)
    suffix = "/" if path.is_dir() else ""
    return f"azureml://datastores/{DATASTORE}/paths/LocalUpload/{digest}/{path.name}{suffix}"


def pipeline_request(job, workspace) -> dict:
    """The PUT .../jobs/<name> request for a loaded (not yet resolved) PipelineJob. Mutates `job`
    (azure-ai-ml entities do not deep-copy): pass one loaded for this purpose."""
    from phitune.compat import aml_component_source, aml_set_node_component

    job.name = job.name or dry_run_job_name()
    for value in job.inputs.values():
        replace_local_input(value)
    ws = workspace_path(workspace)
    if job.settings and job.settings.default_compute:
        job.settings.default_compute = compute_id(ws, job.settings.default_compute)
    for node in job.jobs.values():
        source = aml_component_source(node.component) or getattr(node.component, "name", "component")
        aml_set_node_component(node, COMPONENT_PLACEHOLDER.format(path=source))
        for value in node.inputs.values():
            replace_local_input(value)
        if node.compute:
            node.compute = compute_id(ws, node.compute)
    return request_for(job, ws)


def finetuning_request(job, workspace) -> dict:
    """The PUT .../jobs/<name> request for a serverless fine-tuning job. Mutates `job`."""
    job.name = job.name or dry_run_job_name()
    for attr in ("training_data", "validation_data"):
        data = getattr(job, attr, None)
        if data is not None and _is_local(data.path):
            data.path = upload_uri(data.path)
    return request_for(job, workspace_path(workspace))


def write_request(folder: Path, request: dict) -> Path:
    """request.json, secrets redacted (a SAS data input shows `sig=REDACTED`)."""
    from phitune.redact import redact_data

    path = folder / "request.json"
    path.write_text(json.dumps(redact_data(request), indent=2) + "\n")
    return path


def request_for(job, ws: str) -> dict:
    """The PUT request for an offline-resolved `job` in workspace `ws` (an ARM id), without null fields."""
    from phitune.compat import aml_rest_job_body

    body = aml_rest_job_body(job)
    _strip_none(body)
    return {"method": "PUT", "url": f"{ARM}{ws}/jobs/{job.name}", "body": body}


def replace_local_input(value: Any) -> None:
    """A job or node input pointing at a local path now points at the datastore URI it uploads to."""
    from phitune.compat import aml_input_data

    data = aml_input_data(value)
    path = getattr(data, "path", None)
    if isinstance(path, str) and _is_local(path):
        data.path = upload_uri(path)


def _is_local(path: str | None) -> bool:
    from phitune.recipe.paths import AZURE_ML_INPUT_PREFIXES

    return bool(path) and not str(path).startswith((*AZURE_ML_INPUT_PREFIXES, "${{"))


def compute_id(ws: str, compute) -> str:
    """The ARM id of a compute named `compute` (`azureml:gpu`, `gpu` or an id) in workspace `ws`."""
    return f"{ws}/computes/{str(compute).removeprefix('azureml:').rsplit('/', 1)[-1]}"


def dry_run_job_name() -> str:
    # azure-ai-ml names jobs <adjective>_<noun>_<random>; the service accepts any unique name.
    return f"phitune_dryrun_{secrets.token_hex(5)}"


def _strip_none(obj: Any) -> None:
    if isinstance(obj, dict):
        for key in [k for k, v in obj.items() if v is None]:
            del obj[key]
        for value in obj.values():
            _strip_none(value)
    elif isinstance(obj, list):
        for item in obj:
            _strip_none(item)
