"""`maap`: the pipeline (validate_data -> finetune -> evaluate) on your own Azure ML compute; with
`target.trainer: azureml`, Azure ML's registry pipeline component instead (phitune.targets.registry_pipeline).

The job document comes from aml/pipelines/finetune.yml and the component YAMLs (phitune.targets.
pipeline_plan), is written as job.yml, and loaded with azure-ai-ml's `load_job`: exactly what
`az ml job create -f job.yml` would submit. azure-ai-ml uploads the local recipe, data and model
folder, registers the code snapshot and environments, then PUTs the job.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import yaml

from phitune.errors import Problem, SubmitError
from phitune.targets.assets import default_output_dir, pipeline_path
from phitune.targets.handles import AzureJobHandle, DryRunHandle
from phitune.targets.pipeline_plan import FINETUNE, build_pipeline_document


def job_name(recipe_name: str) -> str:
    """A unique Azure job name that still says which recipe it ran."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", recipe_name)[:40]
    return f"phitune-{stem}-{secrets.token_hex(4)}"


class MaapRunner:
    name = "maap"

    def __init__(self, spec, output_dir: Path | None = None, ml_client=None):
        self.spec = spec
        self.output_dir = output_dir
        self.ml_client = ml_client

    def _registry(self, out: Path | None = None):
        """The runner of `target.trainer: azureml` (Azure ML's registry pipeline component)."""
        from phitune.targets.registry_pipeline import RegistryPipelineRunner

        return RegistryPipelineRunner(self.spec, out or Path("."), self.ml_client)

    def check(self, recipe) -> list[Problem]:
        if self.spec.trainer == "azureml":
            return self._registry().check(recipe)
        problems = []
        for field, value in (("data.train", recipe.data.train), ("data.validation", recipe.data.validation)):
            if value and not value.startswith(("azureml:", "https://")) and not Path(value).is_file():
                problems.append(Problem(field, f"{value} does not exist", "point it at a local file or an azureml: data URI"))
        return problems

    def build(self, recipe, out: Path):
        """(job, job.yml path, notes): the PipelineJob exactly as it would be submitted."""
        from phitune.recipe.load import write_resolved

        out.mkdir(parents=True, exist_ok=True)
        resolved = write_resolved(recipe, out / "resolved_recipe.json")
        doc = build_pipeline_document(recipe, resolved, pipeline_path(self.spec.pipeline), self.spec, out)
        doc.data["name"] = job_name(recipe.name)
        if self.spec.properties:
            doc.data["properties"] = dict(self.spec.properties)
        job_file = out / "job.yml"
        job_file.write_text(_job_yaml_text(doc.data))
        job = load_pipeline_job(job_file)
        _restore_secret_inputs(job, doc.data)
        return job, job_file, doc

    def submit(self, recipe, dry_run: bool = False):
        from phitune.targets.dry_run import pipeline_request, write_request
        from phitune.targets.workspace import find_workspace, make_ml_client

        out = Path(self.output_dir or default_output_dir(recipe.name, self.name)).resolve()
        if self.spec.trainer == "azureml":
            return self._registry(out).submit(recipe, dry_run=dry_run)
        job, job_file, doc = self.build(recipe, out)
        if dry_run:
            _print_summary(self.spec, job, doc, out, dry_run=True)
            request = pipeline_request(job, find_workspace(self.spec.workspace))
            write_request(out, request)
            return DryRunHandle(out, request)
        from phitune.targets.azure_errors import azure_call

        client = self.ml_client or make_ml_client(self.spec.workspace)
        _print_summary(self.spec, job, doc, out, dry_run=False)
        with azure_call("submitting the pipeline job"):
            created = client.jobs.create_or_update(job, experiment_name=job.experiment_name)
        return AzureJobHandle(client, created.name, getattr(created, "studio_url", "") or "")


def load_pipeline_job(job_file: Path):
    """`load_job` + client-side validation; problems leave as one SubmitError naming the YAML keys."""
    from phitune.targets.workspace import quiet_azure_logs

    quiet_azure_logs()
    from azure.ai.ml import load_job

    from phitune.targets.azure_errors import azure_call

    with azure_call(f"loading {job_file}"):
        job = load_job(job_file)
    result = job._validate()  # what `az ml job validate` checks offline
    if not result.passed:
        problems = [Problem(f"{job_file}: {key}", str(msg)) for key, msg in result.error_messages.items()]
        raise SubmitError(f"the pipeline job does not validate ({job_file})", problems)
    return job


def _job_yaml_text(data: dict) -> str:
    """job.yml with secrets redacted; a note says how to submit it by hand when a SAS input lost its signature."""
    from phitune.redact import redact_data

    public = redact_data(data)
    text = yaml.safe_dump(public, sort_keys=False, width=120)
    if public != data:
        text = ("# SAS signatures are not written to disk (sig=REDACTED): put yours back in the inputs below before\n"
                "# `az ml job create -f job.yml`; `phitune submit` sends them from the recipe.\n" + text)
    return text


def _restore_secret_inputs(job, data: dict) -> None:
    """job.yml holds redacted SAS URLs: the job object sends the real ones, as its data inputs only."""
    from phitune.redact import redact

    for name, spec in (data.get("inputs") or {}).items():
        path = spec.get("path") if isinstance(spec, dict) else None
        if isinstance(path, str) and redact(path) != path and name in job.inputs:
            getattr(job.inputs[name], "_data", job.inputs[name]).path = path


def _print_summary(spec, job, doc, out: Path, dry_run: bool) -> None:
    finetune = job.jobs[doc.nodes[FINETUNE]]
    processes = getattr(finetune.distribution, "process_count_per_instance", 1)
    lines = [
        f"{'dry run: nothing sent' if dry_run else 'submitting'} pipeline job {job.name}",
        f"  experiment:  {job.experiment_name}",
        f"  compute:     {spec.compute}" + (f" (other steps on {spec.cpu_compute})" if spec.cpu_compute else ""),
        f"  finetune:    {finetune.resources.instance_count} node(s) x {processes} process(es)"
        + (f" on {spec.instance_type}" if spec.instance_type else ""),
        f"  steps:       {' -> '.join(job.jobs)}",
        f"  uploads:     {', '.join(str(p) for p in doc.uploads) or 'none'}",
        f"  job YAML:    {out / 'job.yml'}",
    ]
    if dry_run:
        lines.append(f"  request:     {out / 'request.json'}")
    lines += [f"  note: {note}" for note in doc.notes]
    print("\n".join(lines), flush=True)
