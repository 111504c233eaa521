"""Azure failures: one clear message with Azure's error code (exit 2, no traceback), transient 429/5xx
retried by azure-core's RetryPolicy, and no token, key or SAS URL ever printed or logged."""

from __future__ import annotations

import logging

import pytest

import phitune
from conftest import EXAMPLES
from fake_azure import RG, SAS_SECRET, SUB, WS, FakeAzure, FakeCredential, ml_client
from phitune.errors import SubmitError
from phitune.recipe import load_recipe
from phitune.recipe.target import MaasTarget

RECIPE = EXAMPLES / "recipes" / "tiny-lora.yaml"
# A pinned version: a short name means /labels/latest, which a real submit first resolves in the registry.
PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"
TARGET = MaasTarget(model=PHI3)
JOB_PUT = r"/jobs/[^/?]+\?"


def _submit(tmp_path, az_setup, credential=None):
    with FakeAzure() as az:
        az_setup(az)
        try:
            return az, phitune.submit(load_recipe(RECIPE), target=TARGET, ml_client=ml_client(credential),
                                      output_dir=tmp_path / "out")
        except SubmitError as exc:
            return az, exc


def test_transient_503_and_429_are_retried_by_azure_core_then_the_job_is_submitted(tmp_path):
    with FakeAzure() as az:
        az.fail("PUT", JOB_PUT, 503, code="ServiceUnavailable", times=1)
        az.fail("PUT", JOB_PUT, 429, code="TooManyRequests", times=1, headers={"Retry-After": "0"})
        az.fail("GET", JOB_PUT, 502, code="BadGateway", times=1)
        handle = phitune.submit(load_recipe(RECIPE), target=TARGET, ml_client=ml_client(), output_dir=tmp_path / "out")
        assert len(az.requests_to("PUT", "/jobs/")) == 3  # 503, 429, then 201
        assert handle.status() == "Completed"  # after one 502 on the GET
        assert [f.times for f in az.failures] == [0, 0, 0]  # each injected failure was served, then retried


def test_persistent_503_gives_up_after_the_retry_policy_with_azures_code(tmp_path):
    az, err = _submit(tmp_path, lambda az: az.fail("PUT", JOB_PUT, 503, code="ServiceUnavailable"))
    assert isinstance(err, SubmitError)
    assert "ServiceUnavailable" in str(err) and "try again later" in str(err)
    assert len(az.requests_to("PUT", "/jobs/")) == 6  # 1 + retry_total (5)


@pytest.mark.parametrize("status, code, fix_words", [
    (401, "InvalidAuthenticationToken", "az login"),
    (403, "AuthorizationFailed", "AzureML Data Scientist"),
    (404, "WorkspaceNotFound", "target.workspace"),
])
def test_4xx_becomes_one_message_with_azures_code_and_is_not_retried(tmp_path, status, code, fix_words):
    az, err = _submit(tmp_path, lambda az: az.fail("PUT", JOB_PUT, status, code=code, message=f"denied ({status})"))
    assert isinstance(err, SubmitError)
    (problem,) = err.problems
    assert code in err.summary and code in problem.message and fix_words in problem.fix
    assert problem.location == f"HTTP {status}"
    assert len(az.requests_to("PUT", "/jobs/")) == 1


def test_quota_errors_name_the_inner_azure_code_and_what_to_do(tmp_path):
    details = [{"code": "QuotaExceeded", "message": "Not enough quota for Standard_NC24ads_A100_v4 in eastus"}]
    az, err = _submit(tmp_path, lambda az: az.fail("PUT", JOB_PUT, 400, code="UserError", message="bad", details=details))
    assert "QuotaExceeded" in str(err) and "quota" in err.problems[0].fix


def test_credential_failure_is_an_authentication_message_not_a_traceback(tmp_path):
    from azure.core.exceptions import ClientAuthenticationError

    class NoLogin(FakeCredential):
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the included credentials.")

        get_token_info = get_token

    _, err = _submit(tmp_path, lambda az: None, credential=NoLogin())
    assert isinstance(err, SubmitError)
    assert "authentication failed" in err.summary and "az login" in err.problems[0].fix


def test_secrets_in_azure_errors_are_never_printed_or_logged(tmp_path, capsys, caplog):
    jwt = FakeCredential().get_token("https://management.azure.com/.default").token
    leaky = (f"upload to https://fakestore.blob.core.windows.net/data/x.jsonl?sv=2024&{SAS_SECRET} failed; "
             f"Authorization: Bearer {jwt}; AccountKey=abc123secretkey==")
    caplog.set_level(logging.DEBUG)
    _, err = _submit(tmp_path, lambda az: az.fail("PUT", JOB_PUT, 403, code="AuthorizationFailed", message=leaky))
    text = str(err) + capsys.readouterr().out + capsys.readouterr().err + caplog.text
    for secret in ("SUPERSECRETSASSIGNATURE", jwt.split(".")[1], "abc123secretkey"):
        assert secret not in text
    assert "AuthorizationFailed" in str(err) and "fakestore.blob.core.windows.net/data/x.jsonl" in str(err)


def test_cli_prints_one_error_with_the_code_and_exits_2(tmp_path, monkeypatch, capsys):
    from phitune import cli
    from phitune.targets import workspace

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(workspace, "make_credential", FakeCredential)
    for var, value in zip(workspace.ENV_VARS, (SUB, RG, WS)):
        monkeypatch.setenv(var, value)
    with FakeAzure() as az:
        az.fail("PUT", JOB_PUT, 403, code="AuthorizationFailed", message="no access")
        code = cli.main(["submit", str(RECIPE), "--target", "maas", "--set", f"target.model={PHI3}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "AuthorizationFailed" in err and "Traceback" not in err


def test_a_real_submit_without_any_workspace_says_where_to_put_one(tmp_path, monkeypatch):
    from phitune.targets import workspace

    monkeypatch.chdir(tmp_path)
    for var in workspace.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    with FakeAzure() as az, pytest.raises(SubmitError) as err:
        phitune.submit(load_recipe(RECIPE), target=TARGET, output_dir=tmp_path / "out")
    assert "no Azure ML workspace" in str(err.value) and "config.json" in str(err.value)
    assert az.calls == []
