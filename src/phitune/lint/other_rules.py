"""Lint rules for environments, compute clusters and serverless fine-tuning jobs."""

from __future__ import annotations

from pathlib import Path

from phitune.errors import Problem
from phitune.lint import schemas
from phitune.lint.component_rules import unknown_keys
from phitune.lint.source import YamlDoc


def check_environment(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = unknown_keys(doc, (), data, schemas.ENVIRONMENT, "an environment")
    build = data.get("build")
    if not data.get("image") and not isinstance(build, dict):
        problems.append(doc.problem((), "an environment needs `image:` or `build:`"))
    if isinstance(build, dict):
        problems += unknown_keys(doc, ("build",), build, schemas.ENVIRONMENT_BUILD, "build")
        context = doc.path.parent / str(build.get("path", "."))
        if not str(build.get("path", "")).startswith(("http", "azureml:")):
            if not context.is_dir():
                problems.append(doc.problem(("build", "path"), f"build context {build.get('path')} does not exist"))
            elif not (context / str(build.get("dockerfile_path", "Dockerfile"))).is_file():
                problems.append(doc.problem(("build", "dockerfile_path"),
                                            f"no {build.get('dockerfile_path', 'Dockerfile')} in {context}"))
    conda = data.get("conda_file")
    if isinstance(conda, str) and not (doc.path.parent / conda).is_file():
        problems.append(doc.problem(("conda_file",), f"conda file {conda} does not exist"))
    return problems


def check_compute(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = unknown_keys(doc, (), data, schemas.AML_COMPUTE, "an amlcompute cluster")
    low, high = data.get("min_instances", 0), data.get("max_instances", 1)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(doc.problem(("min_instances",), f"min_instances {low} is above max_instances {high}"))
    if not data.get("size"):
        problems.append(doc.problem((), "a cluster needs `size:` (a VM size such as Standard_NC24ads_A100_v4)"))
    return problems


def check_finetuning(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = unknown_keys(doc, (), data, schemas.FINETUNING_JOB, "a fine-tuning job")
    task = data.get("task")
    if task not in schemas.FINETUNING_TASKS:
        problems.append(doc.problem(("task",), f"unknown task {task!r}",
                                    f"use one of {', '.join(sorted(schemas.FINETUNING_TASKS))}"))
    for key, value in (data.get("hyperparameters") or {}).items():
        if not isinstance(value, str):
            problems.append(doc.problem(("hyperparameters", str(key)), f"hyperparameter values are strings (got {value!r})",
                                        f'quote it: {key}: "{value}"'))
    for field in ("training_data", "validation_data"):
        value = data.get(field)
        path = value.get("path") if isinstance(value, dict) else value
        if isinstance(path, str) and not path.startswith(("azureml:", "http", "abfss:", "wasbs:")) \
                and not Path(path).is_absolute() and not Path(path).exists():
            beside = (doc.path.parent / path).exists()
            problems.append(doc.problem((field,), f"{path} does not exist relative to the working directory "
                                        f"({Path.cwd()}): a finetuning job resolves paths against it, not the file",
                                        "run from the folder the path is relative to" + (
                                            f", or write it as {Path(doc.path.parent, path)}" if beside else "")))
    if "validation_data" not in data:
        problems.append(doc.problem((), "no validation_data: azure-ai-ml's create_finetuning_job fails without it",
                                    "add validation_data (a held-out JSONL file)"))
    return problems
