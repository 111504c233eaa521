"""`maap` with `target.trainer: azureml`: Azure ML's own registry fine-tuning pipeline component for the
recipe's task (`chat_completion_pipeline`, ... from registry `azureml`) on your compute, submitted the way
Microsoft's sample (azureml-examples, foundation-models/system/finetune/chat-completion) does it: one
pipeline node using the registry component, `force_rerun: true`, `continue_on_step_failure: false`, and
its `mlflow_model_folder` output as the pipeline output, registered as a model named from the recipe.

Offline (`--dry-run`), values are checked against the shipped copy of the component's interface. A real
submit first reads the registry: the component (its interface is compared with the shipped copy and the
version pinned) and the model (its version pinned; tags `finetune_compute_allow_list` checked against
the instance type, `model_specific_defaults` applied beneath the recipe's explicit values).
"""

from __future__ import annotations

import re
from pathlib import Path

from phitune.errors import Problem, SubmitError
from phitune.recipe.paths import AZURE_ML_INPUT_PREFIXES
from phitune.targets import registry_mapping as mapping
from phitune.targets.handles import AzureJobHandle, DryRunHandle
from phitune.targets.pipeline_job import job_name, job_yaml_text, load_pipeline_job, restore_secret_inputs
from phitune.targets.pipeline_plan import REGISTRY_MODEL, missing_local_data, run_tags
from phitune.targets.registry_interfaces import interface_changes, shipped, source
from phitune.targets.report import Progress, Submission, SubmitLog

PIPELINE_OUTPUT = "trained_model"


class RegistryPipelineRunner:
    """Run by MaapRunner when `target.trainer: azureml`."""

    def __init__(self, spec, output_dir: Path, ml_client=None):
        self.spec = spec
        self.out = output_dir
        self.ml_client = ml_client

    def check(self, recipe) -> list[Problem]:
        problems = mapping.method_problems(recipe) + missing_local_data(recipe)
        if self.spec.environment:
            problems.append(Problem("target.environment", "the registry components run in Azure ML's own "
                                    "environments; target.environment is for phitune's finetune step",
                                    "remove target.environment, or set target.trainer: phitune"))
        if recipe.data.validation_split and recipe.data.train.startswith(AZURE_ML_INPUT_PREFIXES):
            problems.append(Problem("data.validation_split", "the held-out split of a remote file cannot be made here",
                                    "register a validation file and set data.validation"))
        return problems

    # --- building ---------------------------------------------------------------------------------

    def build(self, recipe, interface=None):
        """(plan, notes): the component inputs, checked against `interface` (default: the shipped copy)."""
        component = mapping.TASK_COMPONENTS[recipe.task.type]
        interface = interface or shipped(component)
        data, notes = self._data_inputs(recipe)
        result, problems = mapping.plan(recipe, self.spec, data, interface)
        if problems:
            raise SubmitError(f"the recipe cannot run as Azure ML's {component}", problems)
        result.notes = notes + result.notes
        return result

    def job_document(self, recipe, result) -> dict:
        output_model = re.sub(r"[^A-Za-z0-9_-]", "-", recipe.name)
        inputs = {name: mapping.plain(m.value) for name, m in result.inputs.items()}
        return {
            "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
            "type": "pipeline",
            "name": job_name(recipe.name),
            "display_name": self.spec.display_name or recipe.name,
            "experiment_name": self.spec.experiment or recipe.tracking.experiment,
            "tags": {**run_tags(recipe), "phitune.trainer": "azureml", **self.spec.tags},
            "properties": dict(self.spec.properties),
            "settings": {"default_compute": f"azureml:{self.spec.compute}", "force_rerun": True,
                         "continue_on_step_failure": False},
            "outputs": {PIPELINE_OUTPUT: {"type": "mlflow_model", "name": output_model}},
            "jobs": {result.component: {
                "type": "pipeline", "component": result.component_uri, "inputs": inputs,
                "outputs": {"mlflow_model_folder": f"${{{{parent.outputs.{PIPELINE_OUTPUT}}}}}"}}},
        }

    def write_job(self, recipe, result):
        """(job, document): job.yml written with SAS signatures redacted, loaded with azure-ai-ml; the job
        object gets the real data URLs back (it is what is sent)."""
        doc = self.job_document(recipe, result)
        self.out.mkdir(parents=True, exist_ok=True)
        job_file = self.out / "job.yml"
        job_file.write_text(job_yaml_text(doc))
        job = load_pipeline_job(job_file)
        for name, node in doc["jobs"].items():
            restore_secret_inputs(job.jobs[name], node)
        return job, doc

    # --- submitting -------------------------------------------------------------------------------

    def submit(self, recipe, dry_run: bool = False, progress: Progress | None = None) -> Submission:
        from phitune.recipe.load import write_resolved
        from phitune.targets.workspace import find_workspace, make_ml_client

        log = SubmitLog(progress)
        result = self.build(recipe)
        log.wrote(write_resolved(recipe, self.out / "resolved_recipe.json"))
        if dry_run:
            copy = shipped(result.component).version
            if not result.version:
                result.notes.append(f"{result.component} labels/latest is resolved to a version at submit")
            elif result.version != copy:
                result.notes.append(f"{result.component} {result.version} is pinned; phitune ships the interface of "
                                    f"{copy}, and a submit compares the two")
            if _is_latest(recipe.model.name):
                result.notes.append(f"{recipe.model.name} is resolved to a version at submit")
            result.notes.append(f"values checked against the shipped interface of {result.component} "
                                f"{shipped(result.component).version} ({source()}); the model's tags "
                                "(finetune_compute_allow_list, model_specific_defaults) are read at submit")
            job, doc = self.write_job(recipe, result)
            log.wrote(self.out / "job.yml")
            log.notes += result.notes
            log.say(summary(self.spec, result, doc, self.out, dry_run=True))
            request = registry_request(job, find_workspace(self.spec.workspace))
            from phitune.targets.dry_run import write_request

            log.wrote(write_request(self.out, request))
            return log.done(DryRunHandle(self.out, request))
        from phitune.targets.azure_errors import azure_call

        client = self.ml_client or make_ml_client(self.spec.workspace)
        result = self._against_registry(client, recipe, result)
        job, doc = self.write_job(recipe, result)
        log.wrote(self.out / "job.yml")
        log.notes += result.notes
        log.say(summary(self.spec, result, doc, self.out, dry_run=False))  # before sending: the upload can take a while
        with azure_call("submitting the registry fine-tuning pipeline job"):
            created = client.jobs.create_or_update(job, experiment_name=job.experiment_name)
        return log.done(AzureJobHandle(client, created.name, getattr(created, "studio_url", "") or ""))

    def _against_registry(self, client, recipe, result):
        """Re-plan against the registry's component and apply the model's tags."""
        from phitune.targets.registry_client import get_component, get_model
        from phitune.targets.registry_interfaces import from_component

        component = get_component(client, mapping.REGISTRY, result.component, result.version)
        fetched = from_component(component)
        changes = interface_changes(shipped(result.component), fetched)
        self.spec = self.spec.model_copy(update={"component_version": fetched.version})
        try:
            result = self.build(recipe, fetched)
        except SubmitError as exc:
            raise _changed(exc, fetched, changes) from None
        if changes:
            result.notes.append(f"{fetched.name} {fetched.version} differs from the shipped copy "
                                f"({shipped(fetched.name).version}): " + "; ".join(changes))
        if REGISTRY_MODEL.match(recipe.model.name):
            model = get_model(client, recipe.model.name, "model.name")
            result.inputs["mlflow_model_path"].value = {"type": "mlflow_model", "path": model.uri}
            self._check_allow_list(client, model)
            result.notes += mapping.apply_model_defaults(result.inputs, model.tag_dict("model_specific_defaults"),
                                                         fetched, model.name)
            result.notes.append(f"model {model.name} version {model.version}")
        return result

    def _check_allow_list(self, client, model) -> None:
        allowed = model.tag_list("finetune_compute_allow_list")
        if not allowed:
            return
        sku = self.spec.instance_type or _compute_size(client, self.spec.compute)
        if sku is None:
            raise SubmitError("the VM size of the compute is unknown", [Problem(
                "target.instance_type", f"{model.name} fine-tunes only on {', '.join(allowed)}, and the VM size of "
                f"{self.spec.compute} could not be read", f"set target.instance_type to one of: {', '.join(allowed)}")])
        if sku.lower() not in {a.lower() for a in allowed}:
            raise SubmitError(f"{sku} is not allowed for fine-tuning {model.name}", [Problem(
                "target.instance_type", f"{sku} is not in {model.name}'s finetune_compute_allow_list",
                f"use a compute with one of: {', '.join(allowed)}")])

    def _data_inputs(self, recipe) -> tuple[dict[str, dict], list[str]]:
        from phitune.targets.maas_rules import split_validation

        train, validation, notes = recipe.data.train, recipe.data.validation, []
        if not validation and recipe.data.validation_split:
            train_out, val_out = split_validation(train, recipe.data.validation_split, recipe.train.seed,
                                                  self.out / "split-data")
            train, validation = str(train_out), str(val_out)
        inputs = {"train_file_path": _file(train)}
        if validation:
            inputs["validation_file_path"] = _file(validation)
            inputs["test_file_path"] = _file(validation)
        else:
            notes.append("no validation file: the registry pipeline evaluates nothing held out")
        return inputs, notes


def registry_request(job, workspace) -> dict:
    """The PUT .../jobs/<name> request for a loaded registry pipeline job (component ids stay registry URIs)."""
    from phitune.targets import dry_run

    job.name = job.name or dry_run.dry_run_job_name()
    ws = dry_run.workspace_path(workspace)
    for node in job.jobs.values():
        for value in node.inputs.values():
            dry_run.replace_local_input(value)
    if job.settings and job.settings.default_compute:
        job.settings.default_compute = dry_run.compute_id(ws, job.settings.default_compute)
    return dry_run.request_for(job, ws)


def _changed(exc: SubmitError, fetched, changes: list[str]) -> SubmitError:
    what = [Problem(f"{fetched.name} {fetched.version}", change, None) for change in changes]
    return SubmitError(f"Azure ML's {fetched.name} {fetched.version} in the registry differs from the shipped copy "
                       f"({shipped(fetched.name).version}) in ways this recipe depends on",
                       exc.problems + what + [Problem("target.component_version", "the shipped copy's version is "
                                                      f"{shipped(fetched.name).version}",
                                                      f"pin target.component_version: {shipped(fetched.name).version}")])


def _compute_size(client, compute: str) -> str | None:
    try:
        return getattr(client.compute.get(compute), "size", None)
    except Exception:  # noqa: BLE001 - any failure just means the size is unknown; the caller says so
        return None


def _file(path: str) -> dict:
    value = path if path.startswith(AZURE_ML_INPUT_PREFIXES) else str(Path(path).expanduser().resolve())
    return {"type": "uri_file", "path": value}


def _is_latest(name: str) -> bool:
    match = REGISTRY_MODEL.match(name)
    return bool(match) and match.group("label") == "latest"


def summary(spec, result, doc: dict, out: Path, dry_run: bool) -> str:
    """What is (or would be) sent: the registry component and model, the compute, where each value came from."""
    by_source: dict[str, list[str]] = {}
    for name, m in result.inputs.items():
        if m.source == mapping.TARGET or isinstance(m.value, dict):
            continue
        by_source.setdefault(m.source, []).append(f"{name}={mapping.plain(m.value)}")
    lines = [
        f"{'dry run: nothing sent' if dry_run else 'submitting'} pipeline job {doc['name']}",
        f"  component:   {result.component_uri}",
        f"  model:       {_model_text(result)}",
        f"  compute:     {spec.compute}, {spec.instance_count} node(s) x {spec.processes_per_instance} GPU(s)"
        + (f" of {spec.instance_type}" if spec.instance_type else ""),
        f"  output:      {PIPELINE_OUTPUT} (mlflow_model_folder) registered as model {doc['outputs'][PIPELINE_OUTPUT]['name']}",
    ]
    for source_name in (mapping.RECIPE, mapping.MODEL_DEFAULT, mapping.PHITUNE_DEFAULT):
        if by_source.get(source_name):
            lines.append(f"  from {source_name}: {', '.join(by_source[source_name])}")
    lines.append(f"  job YAML:    {out / 'job.yml'}")
    if dry_run:
        lines.append(f"  request:     {out / 'request.json'}")
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def _model_text(result) -> str:
    for key in ("mlflow_model_path", "huggingface_id"):
        if key in result.inputs:
            value = result.inputs[key].value
            return value["path"] if isinstance(value, dict) else f"{value} (huggingface_id)"
    return "?"
