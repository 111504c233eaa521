"""Every YAML in components/, environments/ and aml/ loads with azure-ai-ml and validates offline
(what `az ml job create -f` / `az ml job validate` do first), and `phitune lint` finds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from fake_azure import FakeAzure, ml_client
from phitune.lint import kind_of, lint_paths
from phitune.lint.source import read_doc

AML_DIRS = ("components", "environments", "aml")


def _yaml_files() -> list[Path]:
    return sorted(p for d in AML_DIRS for p in (REPO / d).rglob("*.yml"))


def _of_kind(kind: str) -> list[Path]:
    return [p for p in _yaml_files() if kind_of(read_doc(p).data) == kind]


def test_every_azure_ml_yaml_is_recognised_and_only_conda_files_are_not():
    unrecognised = [p.relative_to(REPO) for p in _yaml_files() if kind_of(read_doc(p).data) is None]
    assert [str(p) for p in unrecognised] == ["environments/cpu/conda.yml"]
    names = {read_doc(p).data["name"] for p in _of_kind("component")}
    assert {"phitune_validate_data", "phitune_finetune", "phitune_evaluate"} <= names
    assert len(_of_kind("environment")) == 2
    assert len(_of_kind("pipeline")) == 1 and len(_of_kind("finetuning")) == 1 and len(_of_kind("compute")) == 1


@pytest.mark.parametrize("path", _of_kind("component"), ids=lambda p: p.name)
def test_components_load_and_validate(path):
    from azure.ai.ml import load_component

    component = load_component(path)
    result = component._validate()
    assert result.passed, result.error_messages
    assert component.type == "command" and component.inputs and component.outputs
    assert str(component.code).endswith("src") or Path(component.code).name == "src"
    assert component.command.startswith("python -m phitune.cli ")


@pytest.mark.parametrize("path", _of_kind("environment"), ids=lambda p: p.parent.name)
def test_environments_load(path):
    from azure.ai.ml import load_environment

    env = load_environment(path)
    assert env.name.startswith("phitune-")
    assert env.image or (env.build and (path.parent / env.build.path / "Dockerfile").is_file())


def test_train_gpu_image_builds_on_an_azure_ml_cuda_base_with_its_own_python():
    dockerfile = (REPO / "environments" / "train-gpu" / "Dockerfile").read_text()
    assert "mcr.microsoft.com/azureml/openmpi5.0-cuda13" in dockerfile and "requirements.txt" in dockerfile
    assert "ARG PYTHON_VERSION=3.11" in dockerfile and 'python=${PYTHON_VERSION}' in dockerfile


def test_pipeline_loads_validates_and_passes_job_validate(monkeypatch):
    from azure.ai.ml import load_job

    (path,) = _of_kind("pipeline")
    job = load_job(path)
    assert job._validate().passed
    assert [n for n in job.jobs][:3] == ["validate_data", "finetune", "evaluate"]
    assert job.jobs["finetune"].distribution.type == "pytorch"
    with FakeAzure():  # `jobs.validate` resolves the compute name with one GET
        result = ml_client().jobs.validate(job)
    assert result.passed, result.error_messages


def test_serverless_job_loads_from_the_repo_root_and_validates(monkeypatch):
    from azure.ai.ml import load_job

    monkeypatch.chdir(REPO)  # a finetuning YAML resolves paths against the working directory
    (path,) = _of_kind("finetuning")
    job = load_job(path.relative_to(REPO))
    assert job.model_provider.lower() == "custom" and "Phi-3-mini" in job.model.path
    assert job.validation_data is not None and Path(job.training_data.path).is_file()
    with FakeAzure():
        assert ml_client().jobs.validate(job).passed


def test_compute_cluster_loads():
    from azure.ai.ml import load_compute

    (path,) = _of_kind("compute")
    compute = load_compute(path)
    assert compute.type == "amlcompute" and compute.min_instances == 0 and compute.size.startswith("Standard_NC")


def test_phitune_lint_finds_nothing_in_the_repo_yamls():
    checked, problems = lint_paths([REPO / d for d in AML_DIRS])
    assert problems == []
    assert len(checked) == len(_yaml_files()) - 1  # all but conda.yml
