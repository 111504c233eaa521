"""Deploy the model a serverless fine-tuning job registered as a serverless endpoint."""

from __future__ import annotations

from phitune.errors import Problem, SubmitError
from phitune.targets.azure_errors import azure_call
from phitune.targets.handles import status_text


def registered_model(ml_client, job_name: str):
    """The workspace model a completed fine-tuning job registered (its `registered_model` output)."""
    with azure_call(f"getting job {job_name}"):
        job = ml_client.jobs.get(job_name)
    if status_text(job.status) != "Completed":
        raise SubmitError(f"job {job_name} has not completed (status {job.status})", [Problem(
            job_name, "only a completed fine-tuning job has a model to deploy",
            f"wait for it: phitune status {job_name}")])
    output = (getattr(job, "outputs", None) or {}).get("registered_model")
    name = getattr(output, "name", None)
    if not name:
        raise SubmitError(f"job {job_name} registered no model", [Problem(
            job_name, "it has no registered_model output", "deploy the output of a `--target maas` job")])
    with azure_call(f"getting model {name}"):
        return ml_client.models.get(name=name, label="latest")


def deploy_serverless(ml_client, job_name: str, endpoint_name: str):
    """Create (or update) serverless endpoint `endpoint_name` for the job's registered model."""
    from azure.ai.ml.entities import ServerlessEndpoint

    from phitune.compat import aml_workspace_id

    model = registered_model(ml_client, job_name)
    with azure_call(f"reading workspace {ml_client.workspace_name}"):
        workspace = ml_client.workspaces.get(ml_client.workspace_name)
    # Fine-tuned models are addressed by region and workspace id, not by ARM id.
    model_id = (f"azureml://locations/{workspace.location}/workspaces/{aml_workspace_id(workspace)}"
                f"/models/{model.name}/versions/{model.version}")
    endpoint = ServerlessEndpoint(name=endpoint_name, model_id=model_id)
    with azure_call(f"creating serverless endpoint {endpoint_name}"):
        return ml_client.serverless_endpoints.begin_create_or_update(endpoint).result()
