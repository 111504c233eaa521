"""Recipe + target -> the pipeline job document (aml/pipelines/finetune.yml with this recipe's data,
model, compute and tags filled in).

One document for both pipeline targets: `maap` writes it as job.yml and submits it with azure-ai-ml's
`load_job` (what `az ml job create -f job.yml` does); `local-pipeline` runs its steps as local
subprocesses. So what runs on Azure is what was tested offline.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phitune.errors import Problem, SubmitError
from phitune.recipe.paths import AZURE_ML_INPUT_PREFIXES
from phitune.targets.pipeline_yaml import PARENT_REF, load_pipeline, read_yaml

FINETUNE, VALIDATE, EVALUATE = "phitune_finetune", "phitune_validate_data", "phitune_evaluate"
REGISTRY_MODEL = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))$")


def model_kind(name: str) -> str:
    """builtin | local | azureml (registry or workspace model) | hub."""
    if name.startswith("builtin:"):
        return "builtin"
    if name.startswith("azureml:"):
        return "azureml"
    if Path(name).expanduser().is_dir():
        return "local"
    return "hub"


@dataclass
class PipelineDocument:
    data: dict  # the pipeline job YAML, component paths made absolute
    uploads: list[Path] = field(default_factory=list)  # local files/folders Azure uploads on submit
    notes: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)  # component name -> job name in the pipeline


def build_pipeline_document(recipe, resolved_recipe: Path, pipeline_file: Path, target,
                            out: Path | None = None) -> PipelineDocument:
    """`target` is a MaapTarget (compute, nodes, environment, tags) or a LocalPipelineTarget.
    `out` is where derived files go (a finetune component with another environment)."""
    data = copy.deepcopy(read_yaml(pipeline_file))
    pipeline = load_pipeline(pipeline_file, data)
    doc = PipelineDocument(data)
    for name, node in pipeline.jobs.items():
        data["jobs"][name]["component"] = str(node.component.path)
        doc.nodes.setdefault(node.component.name, name)

    validation = recipe.data.validation
    values = {
        "recipe": _data_input(str(resolved_recipe), "uri_file", doc),
        "train_data": _data_input(recipe.data.train, "uri_file", doc),
        "validation_data": _data_input(validation, "uri_file", doc) if validation else None,
        "eval_data": _data_input(validation or recipe.data.train, "uri_file", doc),
    }
    if not validation:
        doc.notes.append("the recipe has no validation file: evaluate uses the training data "
                         "(finetune still holds out data.validation_split, if set)")
    inputs = data.setdefault("inputs", {})
    for name, value in values.items():
        if name not in inputs:
            continue
        if value is None:
            del inputs[name]
            _unbind(pipeline, data, name)
        else:
            inputs[name] = value

    finetune = pipeline.node_for_component(FINETUNE)
    if finetune is None:
        raise SubmitError(f"{pipeline_file} has no finetune step", [Problem(
            "jobs", f"no job uses the {FINETUNE} component", "keep the finetune job from aml/pipelines/finetune.yml")])
    _bind_model(recipe, pipeline, data, doc)
    evaluate = pipeline.node_for_component(EVALUATE)
    if evaluate is not None and recipe.eval.limit:
        data["jobs"][evaluate.name].setdefault("inputs", {})["limit"] = recipe.eval.limit

    data["display_name"] = getattr(target, "display_name", None) or recipe.name
    data["experiment_name"] = getattr(target, "experiment", None) or recipe.tracking.experiment
    data["tags"] = {**(data.get("tags") or {}), **run_tags(recipe), **(getattr(target, "tags", None) or {})}
    if getattr(target, "type", None) == "maap":
        _apply_maap(target, pipeline, data, out or resolved_recipe.parent)
    return doc


def run_tags(recipe) -> dict[str, str]:
    from phitune.version import __version__

    return {"phitune.recipe": recipe.name, "phitune.recipe_hash": recipe.content_hash()[:12],
            "phitune.method": recipe.method.type, "phitune.task": recipe.task.type, "phitune.version": __version__}


def _data_input(value: str, kind: str, doc: PipelineDocument) -> dict[str, Any]:
    if not value.startswith(AZURE_ML_INPUT_PREFIXES):
        path = Path(value).expanduser().resolve()
        if not path.exists():
            raise SubmitError("a local input does not exist", [Problem(value, "no such file or folder")])
        if path not in doc.uploads:
            doc.uploads.append(path)
        value = str(path)
    return {"type": kind, "path": value}


def _unbind(pipeline, data: dict, parent_input: str) -> None:
    """Drop node inputs bound to `${{parent.inputs.<parent_input>}}` (allowed only for optional ones)."""
    for name, node in pipeline.jobs.items():
        for key, value in list((data["jobs"][name].get("inputs") or {}).items()):
            refs = [m for m in PARENT_REF.finditer(str(value)) if m.group(1) == "inputs" and m.group(2) == parent_input]
            if not refs:
                continue
            if not node.component.inputs.get(key, {}).get("optional"):
                raise SubmitError(f"the pipeline needs {parent_input}", [Problem(
                    f"jobs.{name}.inputs.{key}", f"required input bound to parent input '{parent_input}'",
                    f"give the recipe a {parent_input.replace('_data', '')} file")])
            del data["jobs"][name]["inputs"][key]


def _bind_model(recipe, pipeline, data: dict, doc: PipelineDocument) -> None:
    name = recipe.model.name
    kind = model_kind(name)
    finetune = pipeline.node_for_component(FINETUNE)
    validate = pipeline.node_for_component(VALIDATE)
    if kind == "local":
        folder = _data_input(name, "uri_folder", doc)
        data["jobs"][finetune.name].setdefault("inputs", {})["base_model"] = folder
        if validate is not None and "base_model" in validate.component.inputs:
            data["jobs"][validate.name].setdefault("inputs", {})["base_model"] = dict(folder)
    elif kind == "azureml":
        data["jobs"][finetune.name].setdefault("inputs", {})["base_mlflow_model"] = {
            "type": "mlflow_model", "path": name}
    elif kind == "hub":
        doc.notes.append(f"the base model {name} is downloaded from the Hugging Face hub by each step")
    if kind in ("local", "azureml") and not recipe.method.trains_all_weights and not recipe.output.merge:
        # The base model input is mounted in the finetune step only; evaluate loads merged/ instead.
        data["jobs"][finetune.name]["inputs"]["merge"] = True
        doc.notes.append("finetune writes merged/ (merge: true) so that evaluate needs no base model input")


def _apply_maap(target, pipeline, data: dict, out: Path) -> None:
    data.setdefault("settings", {})["default_compute"] = f"azureml:{target.compute}"
    finetune = pipeline.node_for_component(FINETUNE)
    node = data["jobs"][finetune.name]
    resources = node.setdefault("resources", {})
    resources["instance_count"] = target.instance_count
    if target.instance_type:
        resources["instance_type"] = target.instance_type
    node["distribution"] = {"type": "pytorch", "process_count_per_instance": target.processes_per_instance}
    if target.environment:
        # azure-ai-ml drops `environment:` on a component node when it builds the REST body, so the
        # override goes into a copy of the component (same command, code and inputs).
        node["component"] = str(_component_with_environment(finetune.component, target.environment, out))
    if target.cpu_compute:  # every step but finetune runs in the CPU environment
        for name in data["jobs"]:
            if name != finetune.name:
                data["jobs"][name]["compute"] = f"azureml:{target.cpu_compute}"


def _component_with_environment(component, environment: str, out: Path) -> Path:
    import yaml

    data = copy.deepcopy(component.data)
    data["environment"] = environment
    data["code"] = str(component.code_dir)
    path = out / "components" / component.path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=120))
    return path


def missing_local_data(recipe) -> list[Problem]:
    """data.train / data.validation that are neither an Azure ML input location nor a local file."""
    return [Problem(field, f"{value} does not exist", "point it at a local file or an azureml: data URI")
            for field, value in (("data.train", recipe.data.train), ("data.validation", recipe.data.validation))
            if value and not value.startswith(AZURE_ML_INPUT_PREFIXES) and not Path(value).is_file()]
