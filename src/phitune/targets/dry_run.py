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
    from azure.ai.ml._utils._asset_utils import get_ignore_file, get_object_hash

    path = Path(path)
    digest = get_object_hash(path, get_ignore_file(path))
    suffix = "/" if path.is_dir() else ""
    return f"azureml://datastores/{DATASTORE}/paths/LocalUpload/{digest}/{path.name}{suffix}"


def pipeline_request(job, workspace) -> dict:
    """The PUT .../jobs/<name> request for a loaded (not yet resolved) PipelineJob. Mutates `job`
    (azure-ai-ml entities do not deep-copy): pass one loaded for this purpose."""
    job.name = job.name or _job_name()
    for name, value in list(job.inputs.items()):
        _replace_local_input(job.inputs, name, value)
    ws = workspace_path(workspace)
    if job.settings and job.settings.default_compute:
        job.settings.default_compute = f"{ws}/computes/{_short(job.settings.default_compute)}"
    for node in job.jobs.values():
        source = getattr(node.component, "_source_path", None) or getattr(node.component, "name", "component")
        node._component = COMPONENT_PLACEHOLDER.format(path=source)
        for name, value in list(node.inputs.items()):
            _replace_local_input(node.inputs, name, value)
        if node.compute:
            node.compute = f"{ws}/computes/{_short(node.compute)}"
    return _request(job, ws)


def finetuning_request(job, workspace) -> dict:
    """The PUT .../jobs/<name> request for a serverless fine-tuning job. Mutates `job`."""
    job.name = job.name or _job_name()
    for attr in ("training_data", "validation_data"):
        data = getattr(job, attr, None)
        if data is not None and _is_local(data.path):
            data.path = upload_uri(data.path)
    return _request(job, workspace_path(workspace))


def write_request(folder: Path, request: dict) -> Path:
    """request.json, secrets redacted (a SAS data input shows `sig=REDACTED`)."""
    from phitune.redact import redact_data

    path = folder / "request.json"
    path.write_text(json.dumps(redact_data(request), indent=2) + "\n")
    return path


def _request(job, ws: str) -> dict:
    from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

    rest = to_rest_job_object(job)
    body = _serialize(rest)
    _strip_none(body)
    return {"method": "PUT", "url": f"{ARM}{ws}/jobs/{job.name}", "body": body}


def _serialize(rest) -> dict:
    if hasattr(rest, "serialize"):  # msrest models
        return rest.serialize()
    from azure.ai.ml._restclient.arm_ml_service._utils.model_base import SdkJSONEncoder

    return json.loads(json.dumps(rest, cls=SdkJSONEncoder, exclude_readonly=True))


def _replace_local_input(inputs, name: str, value: Any) -> None:
    data = getattr(value, "_data", value)
    path = getattr(data, "path", None)
    if isinstance(path, str) and _is_local(path):
        data.path = upload_uri(path)


def _is_local(path: str | None) -> bool:
    return bool(path) and not str(path).startswith(("azureml:", "http://", "https://", "abfss://", "wasbs://", "${{"))


def _short(compute) -> str:
    return str(compute).removeprefix("azureml:").rsplit("/", 1)[-1]


def _job_name() -> str:
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
