"""Every private azure-ai-ml name phitune uses (all behind phitune/compat.py) still exists, and the
installed azure-ai-ml is the version compat.py was checked against: an upgrade fails here first and
points at compat.py."""

from __future__ import annotations

import importlib
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from phitune import compat

REPO = Path(__file__).resolve().parents[2]
UPGRADE = "azure-ai-ml changed: review every function in src/phitune/compat.py's azure-ai-ml section"


def _pinned(package: str) -> str:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for requirement in (r for group in extras.values() for r in group):
        match = re.fullmatch(rf"{re.escape(package)}==([\w.]+)", requirement)
        if match:
            return match.group(1)
    raise AssertionError(f"{package} is not pinned with == in pyproject.toml")


def test_installed_azure_ai_ml_is_the_pinned_version_compat_was_checked_against():
    assert version("azure-ai-ml") == _pinned("azure-ai-ml") == compat.AZURE_AI_ML_CHECKED, UPGRADE


@pytest.mark.parametrize("module, name", compat.AZURE_AI_ML_PRIVATE_IMPORTS)
def test_each_private_import_still_exists(module, name):
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone. {UPGRADE}"


def test_the_noisy_loggers_still_name_modules():
    for name in compat.AZURE_AI_ML_NOISY_LOGGERS:
        importlib.import_module(name)


def test_lint_schema_classes_and_field_internals_still_exist():
    from phitune.lint.sdk_schemas import SCHEMAS, schema_instance

    for names in SCHEMAS.values():
        for dotted in names:
            module, _, cls = dotted.rpartition(".")
            assert hasattr(importlib.import_module(module), cls), f"{dotted} is gone. {UPGRADE}"
    fields = compat.aml_schema_fields()
    with compat.aml_experimental_warnings_skipped():
        node = schema_instance(SCHEMAS["pipeline"][0]).fields["jobs"].value_field  # jobs: {name: node}
    assert isinstance(node, fields.TypeSensitiveUnionField)
    assert compat.aml_union_candidates_for_type(node, "command")


def test_entity_internals_used_by_dry_runs_still_exist(tmp_path):
    """A loaded pipeline job: its inputs' data, its node's component source, validation, and the
    whole offline request (upload hash, REST conversion and encoder)."""
    from azure.ai.ml import load_job

    from phitune.targets.dry_run import pipeline_request

    (tmp_path / "train.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "component.yml").write_text(
        "type: command\nname: echo_step\nversion: '1'\ninputs:\n  data: {type: uri_file}\n"
        "command: echo ${{inputs.data}}\nenvironment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest\n")
    (tmp_path / "job.yml").write_text(
        f"type: pipeline\nsettings: {{default_compute: azureml:cpu}}\n"
        f"inputs:\n  data: {{type: uri_file, path: {tmp_path / 'train.jsonl'}}}\n"
        "jobs:\n  step:\n    type: command\n    component: ./component.yml\n"
        "    inputs:\n      data: ${{parent.inputs.data}}\n")
    job = load_job(tmp_path / "job.yml")
    assert compat.aml_input_data(job.inputs["data"]) is not job.inputs["data"]  # the PipelineInput's data
    assert compat.aml_input_data(job.inputs["data"]).path == str(tmp_path / "train.jsonl")
    assert Path(compat.aml_component_source(job.jobs["step"].component)) == tmp_path / "component.yml"
    assert compat.aml_validate(job).passed
    request = pipeline_request(job, None)
    body = request["body"]["properties"]
    assert "/LocalUpload/" in body["inputs"]["data"]["uri"]
    assert body["jobs"]["step"]["componentId"].startswith("<anonymous component registered on submit from")


def test_workspace_id_and_client_credential_are_still_attributes():
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Workspace

    class NoCredential:
        def get_token(self, *scopes, **kwargs):
            raise AssertionError("no call is made")

    assert hasattr(Workspace(name="w"), "_workspace_id")
    credential = NoCredential()
    assert compat.aml_client_credential(MLClient(credential, "sub", "rg", "ws")) is credential
