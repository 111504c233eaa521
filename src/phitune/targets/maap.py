"""`maap`: the pipeline (validate_data -> finetune -> evaluate) on your own Azure ML compute; with
`target.trainer: azureml`, Azure ML's registry pipeline component instead (phitune.targets.registry_pipeline).

The job document comes from aml/pipelines/finetune.yml and the component YAMLs (phitune.targets.
pipeline_plan), is written as job.yml, and loaded with azure-ai-ml's `load_job`: exactly what
`az ml job create -f job.yml` would submit. azure-ai-ml uploads the local recipe, data and model
folder, registers the code snapshot and environments, then PUTs the job.
"""

from __future__ import annotations

from pathlib import Path

from phitune.errors import Problem
from phitune.targets.assets import default_output_dir, pipeline_path
from phitune.targets.base import Runner
from phitune.targets.handles import AzureJobHandle, DryRunHandle
from phitune.targets.pipeline_job import job_name, job_yaml_text, load_pipeline_job, restore_secret_inputs
from phitune.targets.pipeline_plan import FINETUNE, build_pipeline_document, missing_local_data
from phitune.targets.report import Progress, Submission, SubmitLog


class MaapRunner(Runner):
    def _registry(self, out: Path | None = None):
        """The runner of `target.trainer: azureml` (Azure ML's registry pipeline component)."""
        from phitune.targets.registry_pipeline import RegistryPipelineRunner

        return RegistryPipelineRunner(self.spec, out or Path("."), self.ml_client)

    def check(self, recipe) -> list[Problem]:
        if self.spec.trainer == "azureml":
            return self._registry().check(recipe)
        return missing_local_data(recipe)

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
        job_file.write_text(job_yaml_text(doc.data))
        job = load_pipeline_job(job_file)
        restore_secret_inputs(job, doc.data)
        return job, job_file, doc

    def submit(self, recipe, dry_run: bool = False, progress: Progress | None = None) -> Submission:
        from phitune.targets.dry_run import pipeline_request, write_request
        from phitune.targets.workspace import find_workspace, make_ml_client

        out = Path(self.output_dir or default_output_dir(recipe.name, self.name)).resolve()
        if self.spec.trainer == "azureml":
            return self._registry(out).submit(recipe, dry_run=dry_run, progress=progress)
        log = SubmitLog(progress)
        job, job_file, doc = self.build(recipe, out)
        log.wrote(out / "resolved_recipe.json")
        log.wrote(job_file)
        for note in doc.notes:
            log.note(note)
        if dry_run:
            log.say(summary(self.spec, job, doc, out, dry_run=True))
            request = pipeline_request(job, find_workspace(self.spec.workspace))
            log.wrote(write_request(out, request))
            return log.done(DryRunHandle(out, request))
        from phitune.targets.azure_errors import azure_call

        client = self.ml_client or make_ml_client(self.spec.workspace)
        log.say(summary(self.spec, job, doc, out, dry_run=False))  # before sending: the upload can take a while
        with azure_call("submitting the pipeline job"):
            created = client.jobs.create_or_update(job, experiment_name=job.experiment_name)
        return log.done(AzureJobHandle(client, created.name, getattr(created, "studio_url", "") or ""))


def summary(spec, job, doc, out: Path, dry_run: bool) -> str:
    """What is (or would be) sent: the job, its compute and steps, the uploads and notes."""
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
    return "\n".join(lines)
