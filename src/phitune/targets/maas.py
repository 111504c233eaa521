"""`maas`: Azure AI serverless fine-tuning ("model as a service").

A preflight first (phitune.targets.maas_rules: model, method, task, epochs, data), then the recipe's
hyperparameters are mapped to the service's names, a validation file is always sent (split from the
training data when the recipe has none), and the job is built with azure-ai-ml's
`create_finetuning_job` and submitted with `jobs.create_or_update`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import yaml

from phitune.errors import Problem, SubmitError
from phitune.targets import maas_rules as rules
from phitune.targets.assets import default_output_dir
from phitune.targets.base import Runner
from phitune.targets.handles import AzureJobHandle, DryRunHandle
from phitune.targets.pipeline_job import job_name
from phitune.targets.pipeline_plan import run_tags
from phitune.targets.report import Progress, Submission, SubmitLog

# recipe field -> serverless hyperparameter (values are sent as strings).
HYPERPARAMETERS = {
    "train.epochs": "num_train_epochs",
    "train.lr": "learning_rate",
    "train.batch_size": "per_device_train_batch_size",
}
# Recipe fields the service does not take: a note says they are not applied when they differ from the default.
NOT_APPLIED = ("method.r", "method.alpha", "method.dropout", "train.grad_accum", "train.max_seq_len",
               "train.scheduler", "train.warmup_steps", "train.warmup_ratio", "train.weight_decay", "train.packing")


def hyperparameters(recipe) -> dict[str, str]:
    values = {"train.epochs": int(recipe.train.epochs), "train.lr": recipe.train.lr,
              "train.batch_size": recipe.train.batch_size}
    return {HYPERPARAMETERS[field]: _as_string(value) for field, value in values.items()}


class MaasRunner(Runner):
    def model_uri(self, recipe) -> tuple[str | None, list[Problem]]:
        uri, problems = rules.resolve_model(self.spec.model or recipe.model.name, self._model_field())
        if problems and not self.spec.model:
            problems = [Problem(p.location, p.message, f"set target.model (e.g. --set target.model="
                                f"{rules.SERVERLESS_MODELS[0]}) or model.name; {p.fix}") for p in problems]
        return uri, problems

    def _model_field(self) -> str:
        return "target.model" if self.spec.model else "model.name"

    def check(self, recipe) -> list[Problem]:
        _, problems = self.model_uri(recipe)
        problems += rules.method_problems(recipe) + rules.task_problems(recipe) + rules.training_problems(recipe)
        if not problems or all(p.location.startswith(("target.model", "model.name")) for p in problems):
            task = recipe.task.type if recipe.task.type in rules.TASKS else "chat"
            keys = rules.completion_keys(recipe.task) if task == "completion" else ("prompt", "completion")
            problems += rules.data_problems(recipe.data.train, task, "data.train", keys)
            if recipe.data.validation:
                problems += rules.data_problems(recipe.data.validation, task, "data.validation", keys)
            elif _record_count(recipe.data.train) < 2:
                problems.append(Problem("data.train", "serverless fine-tuning needs a validation file, and there are too "
                                        "few records to split one off", "add data.validation"))
        return problems

    def build(self, recipe, out: Path):
        """(job, notes): the CustomModelFineTuningJob exactly as it would be submitted; writes job.yml."""
        from azure.ai.ml.finetuning import create_finetuning_job

        uri, problems = self.model_uri(recipe)
        if problems:
            raise SubmitError("the recipe cannot run as serverless fine-tuning", problems)
        out.mkdir(parents=True, exist_ok=True)
        train, validation, notes = self._data_files(recipe, out)
        output_model = self.spec.output_model_name or re.sub(r"[^A-Za-z0-9_-]", "-", recipe.name)
        params = hyperparameters(recipe)
        job = create_finetuning_job(
            model=uri, task=rules.TASKS[recipe.task.type], training_data=str(train), validation_data=str(validation),
            hyperparameters=params, output_model_name_prefix=output_model, name=job_name(recipe.name),
            display_name=self.spec.display_name or recipe.name,
            experiment_name=self.spec.experiment or recipe.tracking.experiment,
            tags={**run_tags(recipe), **self.spec.tags}, properties=dict(self.spec.properties))
        notes += [f"warning: {w}" for w in rules.model_warnings(uri)] + _not_applied(recipe)
        if rules.is_latest(uri):
            notes.append(f"{uri} is resolved to a version at submit (the job records that version)")
        write_job_yaml(job, recipe, out)
        return job, notes

    def submit(self, recipe, dry_run: bool = False, progress: Progress | None = None) -> Submission:
        from phitune.targets.dry_run import finetuning_request, write_request
        from phitune.targets.workspace import find_workspace, make_ml_client

        log = SubmitLog(progress)
        out = Path(self.output_dir or default_output_dir(recipe.name, self.name)).resolve()
        job, notes = self.build(recipe, out)
        log.wrote(out / "job.yml")
        if dry_run:
            log.notes += notes
            log.say(summary(job, notes, out, dry_run))
            request = finetuning_request(job, find_workspace(self.spec.workspace))
            log.wrote(write_request(out, request))
            return log.done(DryRunHandle(out, request))
        from phitune.targets.azure_errors import azure_call

        client = self.ml_client or make_ml_client(self.spec.workspace)
        if rules.is_latest(job.model.path):
            from phitune.targets.registry_client import get_model

            latest = job.model.path
            resolved = get_model(client, latest, self._model_field())
            job.model.path = resolved.uri
            write_job_yaml(job, recipe, out)
            notes = [n for n in notes if not n.startswith(latest)] + [f"{latest} resolved to version {resolved.version}"]
        log.notes += notes
        log.say(summary(job, notes, out, dry_run))  # before sending: the upload can take a while
        with azure_call("submitting the serverless fine-tuning job"):
            created = client.jobs.create_or_update(job)
        return log.done(AzureJobHandle(client, created.name, getattr(created, "studio_url", "") or ""))

    def _data_files(self, recipe, out: Path) -> tuple[Path | str, Path | str, list[str]]:
        train = recipe.data.train
        if recipe.data.validation:
            return train, recipe.data.validation, []
        fraction = recipe.data.validation_split or rules.DEFAULT_VALIDATION_SPLIT
        train_out, val_out = rules.split_validation(train, fraction, recipe.train.seed, out / "maas-data")
        return train_out, val_out, [f"validation data: {fraction:.0%} of {train} held out (seed {recipe.train.seed}) "
                                    f"into {val_out}; the service requires a validation file"]


def write_job_yaml(job, recipe, out: Path) -> Path:
    path = out / "job.yml"
    path.write_text(yaml.safe_dump(job_yaml(job, recipe), sort_keys=False, width=120))
    return path


def job_yaml(job, recipe) -> dict:
    """The `type: finetuning` YAML of `job` (absolute paths: such a file resolves paths against the
    working directory). `az ml job create -f job.yml` submits the same job. Secrets are redacted
    (a SAS data URL shows `sig=REDACTED`): the job object, not this file, carries the real ones."""
    from phitune.redact import redact_data

    task = {"chat": "chat_completion", "completion": "text_completion"}[recipe.task.type]
    return redact_data({
        "$schema": "https://azuremlschemas.azureedge.net/latest/finetuningJob.schema.json",
        "type": "finetuning", "model_provider": "custom", "task": task,
        "name": job.name, "display_name": job.display_name, "experiment_name": job.experiment_name,
        "tags": dict(job.tags), "properties": dict(job.properties or {}),
        "model": {"type": "mlflow_model", "path": job.model.path},
        "training_data": {"type": "uri_file", "path": str(job.training_data.path)},
        "validation_data": {"type": "uri_file", "path": str(job.validation_data.path)},
        "hyperparameters": dict(job.hyperparameters),
        "outputs": {"registered_model": {"type": "mlflow_model", "name": job.outputs["registered_model"].name}},
    })


def _not_applied(recipe) -> list[str]:
    from phitune.recipe.schema import Recipe

    default = Recipe.model_validate({"data": {"train": recipe.data.train}, "method": {"type": recipe.method.type}})
    changed = [f for f in NOT_APPLIED if _get(recipe, f) != _get(default, f)]
    if not changed:
        return []
    return [f"serverless fine-tuning does not take {', '.join(changed)}: the service's own values are used"]


def _get(recipe, dotted: str):
    value = recipe
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value


def _as_string(value) -> str:
    """Hyperparameters as Microsoft's samples write them: plain decimals ('0.00002', never '2e-05')."""
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    return str(value)


def _record_count(path: str) -> int:
    file = Path(path)
    if not file.is_file():
        return 0
    return sum(1 for line in file.read_text(encoding="utf-8-sig", errors="replace").splitlines() if line.strip())


def summary(job, notes: list[str], out: Path, dry_run: bool) -> str:
    """What is (or would be) sent: the job, its model, data and hyperparameters, notes and warnings."""
    lines = [
        f"{'dry run: nothing sent' if dry_run else 'submitting'} serverless fine-tuning job {job.name}",
        f"  model:        {job.model.path}",
        f"  task:         {job.task}",
        f"  data:         train {job.training_data.path}, validation {job.validation_data.path}",
        f"  hyperparams:  {', '.join(f'{k}={v}' for k, v in job.hyperparameters.items())}",
        f"  output model: {job.outputs['registered_model'].name}",
        f"  job YAML:     {out / 'job.yml'}",
    ]
    if dry_run:
        lines.append(f"  request:      {out / 'request.json'}")
    lines += [f"  {note}" if note.startswith("warning:") else f"  note: {note}" for note in notes]
    return "\n".join(lines)
