"""phitune's rules for standalone jobs (command, sweep, spark, parallel, serverless fine-tuning).

azure-ai-ml's job schemas read the keys and types (see `schema_walk`). What they leave to Azure:
- a command's `${{inputs.x}}` / `${{outputs.x}}` / `${{search_space.x}}` naming nothing: `load_job`
  accepts it (checked by loading such jobs offline with azure-ai-ml 1.35); Azure fails the job at start.
- a local input `path:` or `code:` that does not exist: reported by the SDK only while uploading.
- a standalone `type: parallel` or `type: data_transfer` job: the schemas read it, but `load_job` (so
  `az ml job create -f`) raises "Unsupported job type" (tried offline with azure-ai-ml 1.35): these
  run only as nodes of a pipeline.
- fine-tuning: a `type: finetuning` YAML resolves relative data paths against the working directory,
  not the file (unlike every other job kind; seen by loading one offline with azure-ai-ml 1.35), and
  `create_finetuning_job` without `validation_data` raised `UnboundLocalError` in azure-ai-ml 1.32.
"""

from __future__ import annotations

from pathlib import Path

from phitune.errors import Problem
from phitune.lint.component_rules import command_strings, is_local, path_problems, reference_problems
from phitune.lint.source import KeyPath, YamlDoc


def _names(section) -> set[str]:
    return {str(k) for k in section} if isinstance(section, dict) else set()


def input_path_problems(doc: YamlDoc, base: KeyPath, section) -> list[Problem]:
    """Local `path:` of job inputs (relative to the YAML file, as azure-ai-ml resolves them)."""
    problems = []
    if not isinstance(section, dict):
        return problems
    for name, value in section.items():
        path = value.get("path") if isinstance(value, dict) else None
        if is_local(path) and not (doc.path.parent / path).exists() and not Path(path).is_absolute():
            problems.append(doc.problem(base + (str(name), "path"), f"local path {path} does not exist "
                                        f"(relative to {doc.path.parent})"))
        elif is_local(path) and Path(path).is_absolute() and not Path(path).exists():
            problems.append(doc.problem(base + (str(name), "path"), f"local path {path} does not exist"))
    return problems


def check_command_job(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    scopes = {"inputs": _names(data.get("inputs")), "outputs": _names(data.get("outputs"))}
    problems = []
    for key, text in command_strings(data):
        problems += reference_problems(doc, key, text, scopes)
    problems += reference_problems(doc, ("outputs",), data.get("outputs"), {})
    return problems + path_problems(doc, data) + input_path_problems(doc, ("inputs",), data.get("inputs"))


check_code_job = check_command_job  # spark `args` bind the same way


def check_node_only_job(doc: YamlDoc) -> list[Problem]:
    kind = doc.data.get("type")
    return [doc.problem(("type",), f"a standalone `type: {kind}` job is not accepted: azure-ai-ml's load_job "
                        "(and so `az ml job create -f`) raises 'Unsupported job type'",
                        f"make it a node under `jobs:` of a pipeline job (type: {kind} there)")]


def check_sweep_job(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = input_path_problems(doc, ("inputs",), data.get("inputs"))
    trial = data.get("trial")
    if isinstance(trial, dict):
        scopes = {"inputs": _names(data.get("inputs")), "outputs": _names(data.get("outputs")),
                  "search_space": _names(data.get("search_space"))}
        for key, text in command_strings(trial, ("trial",)):
            problems += reference_problems(doc, key, text, scopes)
        problems += path_problems(doc, trial, ("trial",))
    return problems


def check_finetuning(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = []
    for field in ("training_data", "validation_data"):
        value = data.get(field)
        path = value.get("path") if isinstance(value, dict) else value
        # Present beside the file but not here: valid when submitted from the file's folder, so not flagged.
        if is_local(path) and not Path(path).is_absolute() and not Path(path).exists() \
                and not (doc.path.parent / path).exists():
            key = (field, "path") if isinstance(value, dict) else (field,)
            problems.append(doc.problem(key, f"{path} does not exist relative to the working directory "
                                        f"({Path.cwd()}) nor to the file: a finetuning job resolves paths against "
                                        "the working directory it is submitted from",
                                        "write the path relative to the folder you run `az ml job create` in"))
    if "validation_data" not in data:
        problems.append(doc.problem((), "no validation_data: azure-ai-ml's create_finetuning_job fails without it",
                                    "add validation_data (a held-out JSONL file)"))
    return problems
