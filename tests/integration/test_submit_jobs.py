"""`phitune status|download|cancel|deploy` against Azure faked at the HTTP level (in-process CLI)."""

from __future__ import annotations

import pytest

import phitune
from conftest import EXAMPLES
from fake_azure import RG, SUB, WS, FakeAzure, FakeCredential, ml_client
from phitune import cli
from phitune.recipe import load_recipe
from phitune.recipe.target import MaasTarget

WORKSPACE_FLAGS = ["--subscription", SUB, "--resource-group", RG, "--workspace", WS]


@pytest.fixture
def azure(tmp_path, monkeypatch):
    """A fake Azure holding one submitted serverless fine-tuning job; the CLI's credential is fake."""
    from phitune.targets import workspace

    monkeypatch.setattr(workspace, "make_credential", FakeCredential)
    monkeypatch.chdir(tmp_path)
    with FakeAzure() as az:
        recipe = load_recipe(EXAMPLES / "recipes" / "tiny-lora.yaml")
        handle = phitune.submit(recipe, target=MaasTarget(model="azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14",
                                                          output_model_name="phi3-ft"),
                                ml_client=ml_client(), output_dir=tmp_path / "out")
        az.job_name = handle.id
        yield az


def test_status_prints_the_jobs_status_and_studio_url(azure, capsys):
    azure.job_status = "Running"
    assert cli.main(["status", azure.job_name, *WORKSPACE_FLAGS]) == 0
    out = capsys.readouterr().out
    assert f"Running: {azure.job_name}" in out and "https://ml.azure.com/runs/" in out


def test_cancel_posts_a_cancel_for_the_job(azure, capsys):
    assert cli.main(["cancel", azure.job_name, *WORKSPACE_FLAGS]) == 0
    assert azure.requests_to("POST", f"/jobs/{azure.job_name}/cancel")


def test_deploy_creates_a_serverless_endpoint_for_the_registered_model(azure, capsys):
    assert cli.main(["deploy", azure.job_name, "--serverless", "reviews-ep", *WORKSPACE_FLAGS]) == 0
    (put,) = azure.requests_to("PUT", "/serverlessEndpoints/reviews-ep")
    body = put[2]
    assert body["sku"]["name"] == "Consumption"
    model_id = body["properties"]["modelSettings"]["modelId"]
    assert model_id == ("azureml://locations/eastus2/workspaces/11111111-2222-3333-4444-555555555555"
                        "/models/phi3-ft/versions/3")
    assert "deployed: serverless endpoint reviews-ep" in capsys.readouterr().out


def test_deploy_refuses_a_job_that_has_not_completed(azure, capsys):
    azure.job_status = "Running"
    assert cli.main(["deploy", azure.job_name, "--serverless", "ep", *WORKSPACE_FLAGS]) == 2
    assert "has not completed" in capsys.readouterr().err
    assert not azure.requests_to("PUT", "/serverlessEndpoints/")


def test_workspace_flags_must_come_together(capsys):
    assert cli.main(["status", "job-1", "--workspace", WS]) == 2
    assert "give all three" in capsys.readouterr().err
