"""A SAS signature planted in a recipe reaches Azure only as the data input itself: every printed,
written or logged copy (dry-run summaries, job.yml, request.json, resolved_recipe.json, error
messages, MLflow parameters) shows `sig=REDACTED`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

import phitune
from conftest import run_cli
from fake_azure import FakeAzure, ml_client
from phitune.recipe import load_recipe
from phitune.recipe.target import MaasTarget
from phitune.redact import redact, redact_params

SECRET = "PLANTEDsig0123456789abcdefSECRET"
DELEGATION = "PLANTEDskoidSECRET"
SAS = (f"?sv=2024-08-04&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&skoid={DELEGATION}&sktid=t-1&skt=2026-01-01"
       f"&ske=2030-01-01&sks=b&skv=2024-08-04&sig={SECRET}")
BLOB = "https://acct.blob.core.windows.net/data"
TRAIN_URL, HELD_OUT_URL = f"{BLOB}/train.jsonl{SAS}", f"{BLOB}/held-out.jsonl{SAS}"
PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"


def sas_recipe(folder: Path, **sections) -> Path:
    recipe = {"name": "sas-demo", "model": "builtin:tiny-phi3",
              "data": {"train": TRAIN_URL, "validation": HELD_OUT_URL}, "tracking": "none", **sections}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def assert_no_secret(text: str, where: str) -> None:
    assert SECRET not in text and DELEGATION not in text, f"secret leaked in {where}"


def assert_folder_clean(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    for file in files:
        assert_no_secret(file.read_bytes().decode("utf-8", "replace"), str(file))
    return files


@pytest.mark.slow  # loads azure-ai-ml in a subprocess (several seconds)
@pytest.mark.parametrize("target, extra", [("maap", []), ("maas", ["--set", "target.model=Phi-3-mini-4k-instruct"])])
def test_dry_run_artefacts_and_output_show_sig_redacted(tmp_path, target, extra):
    recipe = sas_recipe(tmp_path)
    out = tmp_path / "out"
    result = run_cli("submit", str(recipe), "--target", target, "--dry-run", "--output", str(out), *extra)
    assert result.returncode == 0, result.stderr
    assert_no_secret(result.stdout + result.stderr, "the dry-run's output")
    assert "sig=REDACTED" in result.stdout or target == "maap"  # maap prints uploads, not remote inputs
    files = {p.name: p for p in assert_folder_clean(out)}
    assert {"job.yml", "request.json"} <= set(files)
    request = files["request.json"].read_text()
    assert f"{BLOB}/train.jsonl?" in request and "sig=REDACTED" in request and "skoid=REDACTED" in request
    assert "se=REDACTED" in request and "sp=r" in request  # expiry is a signing field; permissions stay readable
    assert "sig=REDACTED" in files["job.yml"].read_text()
    if target == "maap":
        resolved = json.loads(files["resolved_recipe.json"].read_text())
        assert resolved["recipe"]["data"]["train"] == redact(TRAIN_URL)
        assert files["job.yml"].read_text().startswith("# SAS signatures are not written to disk")


def test_the_real_submit_sends_the_signature_only_as_the_data_inputs(tmp_path):
    recipe = load_recipe(sas_recipe(tmp_path))
    with FakeAzure() as az:
        phitune.submit(recipe, target=MaasTarget(model=PHI3), ml_client=ml_client(), output_dir=tmp_path / "out")
    (body,) = az.job_bodies()
    details = body["properties"]["fineTuningDetails"]
    assert details["trainingData"]["uri"] == TRAIN_URL and details["validationData"]["uri"] == HELD_OUT_URL
    assert json.dumps(body).count(SECRET) == 2  # those two inputs, nowhere else (tags, properties, ...)
    assert_folder_clean(tmp_path / "out")


@pytest.mark.slow  # two CLI runs that import torch
def test_validate_print_and_failing_commands_never_print_the_signature(tmp_path, mlflow_uri):
    recipe = sas_recipe(tmp_path, tracking={"backend": "mlflow"})
    printed = run_cli("validate", str(recipe), "--print")
    assert printed.returncode == 0, printed.stderr
    assert_no_secret(printed.stdout, "validate --print")
    assert json.loads(printed.stdout)["recipe"]["data"]["validation"].endswith("sig=REDACTED")

    out = tmp_path / "run"
    failing = [run_cli("train", str(recipe), "--output", str(out), "--no-progress"),
               run_cli("data", "check", "--recipe", str(recipe))]
    for result in failing:
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert_no_secret(result.stdout + result.stderr, " ".join(result.args[3:5]))
        assert "sig=REDACTED" in result.stderr  # the message still names the file (without its signature)
    if out.exists():
        assert_folder_clean(out)
    db = Path(mlflow_uri.removeprefix("sqlite:///"))
    if db.exists():
        assert_no_secret(db.read_bytes().decode("utf-8", "replace"), "the MLflow store")


@pytest.mark.slow  # imports mlflow and creates its store (seconds)
def test_mlflow_params_of_a_run_show_sig_redacted(tmp_path, mlflow_uri):
    """What a training run logs (`make_tracker(recipe).log_params(recipe.flat_params())`), in a real store."""
    from mlflow.tracking import MlflowClient

    from phitune.tracking import make_tracker

    recipe = load_recipe({
        "name": "sas-params", "description": f"copied from {TRAIN_URL}", "data": {"train": TRAIN_URL},
        "target": {"type": "maap", "tags": {"source": HELD_OUT_URL}}})
    tracker = make_tracker(recipe)
    tracker.log_params(recipe.flat_params())
    tracker.log_params({"data.train_sas_url": TRAIN_URL})  # a credential-named key is replaced whole
    tracker.close()
    params = MlflowClient(mlflow_uri).get_run(tracker.run_id).data.params
    assert params["data.train"] == params["description"].removeprefix("copied from ") == redact(TRAIN_URL)
    assert params["target.tags.source"].endswith("sig=REDACTED") and params["data.train_sas_url"] == "REDACTED"
    assert_no_secret(json.dumps(params), "MLflow params")
    assert_no_secret(Path(mlflow_uri.removeprefix("sqlite:///")).read_bytes().decode("utf-8", "replace"), "MLflow db")


def test_one_redaction_function_covers_every_secret_shape():
    text = (f"GET {TRAIN_URL} Authorization: Bearer abc.def-ghi; "
            "DefaultEndpointsProtocol=https;AccountKey=k3y==;SharedAccessSignature=sv=1&sig=s1; "
            "https://f.azurewebsites.net/api/x?code=FUNCKEY&x=1 https://h/p?api-key=K1&token=T1 "
            '{"accessToken": "AT1"} sqlite:///tmp/x.db postgresql://user:PW1@db:5432/mlflow eval.max_new_tokens=32')
    out = redact(text)
    for secret in (SECRET, DELEGATION, "abc.def-ghi", "k3y==", "s1", "FUNCKEY", "K1", "T1", "AT1", "PW1"):
        assert secret not in out, secret
    assert f"{BLOB}/train.jsonl?sv=2024-08-04" in out and "sig=REDACTED" in out
    assert "sqlite:///tmp/x.db" in out and "eval.max_new_tokens=32" in out and "x=1" in out
    params = redact_params({"train.lr": "0.001", "target.sas_token": "abc", "target.api_key": "k",
                            "data.train": TRAIN_URL, "eval.max_new_tokens": "8", "task.token_key": "tokens"})
    assert params["target.sas_token"] == params["target.api_key"] == "REDACTED"
    assert params["data.train"] == redact(TRAIN_URL) and params["eval.max_new_tokens"] == "8"
    assert params["task.token_key"] == "tokens"


def test_maap_job_sends_the_real_sas_inputs_while_job_yml_shows_them_redacted(tmp_path):
    from phitune.recipe.target import MaapTarget
    from phitune.targets.maap import MaapRunner

    recipe = load_recipe(sas_recipe(tmp_path))
    out = tmp_path / "out"
    job, job_file, _ = MaapRunner(MaapTarget(compute="gpu"), out).build(recipe, out)
    for name, url in (("train_data", TRAIN_URL), ("validation_data", HELD_OUT_URL), ("eval_data", HELD_OUT_URL)):
        assert job.inputs[name]._data.path == url  # what create_or_update sends
    text = job_file.read_text()
    assert redact(TRAIN_URL) in text and redact(HELD_OUT_URL) in text
    assert_folder_clean(out)
