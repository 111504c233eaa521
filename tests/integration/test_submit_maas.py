"""maas (serverless fine-tuning) submissions through the real azure-ai-ml code path, HTTP faked."""

from __future__ import annotations

import json

import pytest
import responses

import phitune
from conftest import EXAMPLES
from fake_azure import BLOB, FakeAzure, ml_client
from fake_registry import FakeRegistryAzure
from phitune.errors import SubmitError
from phitune.recipe import load_recipe
from phitune.recipe.target import MaasTarget

RECIPE = EXAMPLES / "recipes" / "tiny-lora.yaml"
PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"


def _recipe(*overrides):
    return load_recipe(RECIPE, overrides=["train.epochs=2", "train.lr=5e-5", "train.batch_size=4", *overrides])


def test_maas_submit_sends_a_custom_finetuning_job_with_task_model_data_and_hyperparameters(tmp_path):
    target = MaasTarget(model=PHI3, output_model_name="phi3-reviews", experiment="exp-maas")
    with FakeAzure() as az:
        handle = phitune.submit(_recipe(), target=target, ml_client=ml_client(), output_dir=tmp_path / "out")
    (body,) = az.job_bodies()
    props = body["properties"]
    assert props["jobType"] == "FineTuning" and props["experimentName"] == "exp-maas"
    details = props["fineTuningDetails"]
    assert details["modelProvider"] == "Custom"
    assert details["taskType"] == "chatCompletion"
    assert details["model"] == {"uri": PHI3, "jobInputType": "mlflow_model"}
    assert details["trainingData"]["uri"].endswith("/reviews-train.jsonl")
    assert details["validationData"]["uri"].endswith("/reviews-heldout.jsonl")
    assert details["hyperParameters"] == {"num_train_epochs": "2", "learning_rate": "0.00005",
                                          "per_device_train_batch_size": "4"}
    assert props["outputs"]["registered_model"]["assetName"] == "phi3-reviews"
    uploaded = {url.split("?")[0].rsplit("/", 1)[-1] for m, url, _ in az.calls if m == "PUT" and url.startswith(BLOB)}
    assert {"reviews-train.jsonl", "reviews-heldout.jsonl"} <= uploaded
    assert f"/jobs/{handle.id}?" in az.requests_to("PUT", "/jobs/")[0][1]


def test_maas_without_validation_data_sends_a_seeded_split_of_the_training_file(tmp_path):
    recipe = _recipe("data.validation=null", "target.type=maas", "target.model=Phi-3.5-mini-instruct")
    with FakeRegistryAzure(models={"azureml/Phi-3.5-mini-instruct": {"version": 6}}) as az:
        phitune.submit(recipe, ml_client=ml_client(), output_dir=tmp_path / "out")
    details = az.job_bodies()[0]["properties"]["fineTuningDetails"]
    # The short name means /labels/latest, resolved to a version at submit (as the samples do).
    assert details["model"]["uri"] == "azureml://registries/azureml/models/Phi-3.5-mini-instruct/versions/6"
    train = (tmp_path / "out" / "maas-data" / "train.jsonl").read_text().splitlines()
    held = (tmp_path / "out" / "maas-data" / "validation.jsonl").read_text().splitlines()
    original = [line for line in (EXAMPLES / "data" / "reviews-train.jsonl").read_text().splitlines() if line.strip()]
    assert len(held) == round(len(original) * 0.1) and sorted(train + held) == sorted(original)
    assert details["validationData"]["uri"].endswith("/validation.jsonl")
    assert details["trainingData"]["uri"].endswith("/train.jsonl")


def test_maas_dry_run_makes_no_http_call_and_its_body_is_what_a_submit_sends(tmp_path):
    target = MaasTarget(model=PHI3)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        dry = phitune.submit(_recipe(), target=target, dry_run=True, output_dir=tmp_path / "dry")
        assert len(mock.calls) == 0
    with FakeAzure() as az:
        phitune.submit(_recipe(), target=target, ml_client=ml_client(), output_dir=tmp_path / "real")
    sent = az.job_bodies()[0]["properties"]
    expected = json.loads((tmp_path / "dry" / "request.json").read_text())["body"]["properties"]
    sent.pop("properties"), expected.pop("properties")  # git properties azure-ai-ml adds at send time
    sent["tags"].pop("phitune.recipe_hash"), expected["tags"].pop("phitune.recipe_hash")
    assert sent == expected and dry.status() == "DryRun"


def test_maas_job_yaml_loads_with_azure_ai_ml_into_the_same_job(tmp_path):
    from azure.ai.ml import load_job

    from phitune.targets.dry_run import finetuning_request

    phitune.submit(_recipe(), target=MaasTarget(model=PHI3), dry_run=True, output_dir=tmp_path / "dry")
    reloaded = finetuning_request(load_job(tmp_path / "dry" / "job.yml"), None)
    written = json.loads((tmp_path / "dry" / "request.json").read_text())
    assert reloaded["body"] == written["body"]


@pytest.mark.parametrize("overrides, location, words", [
    (["method={type: full}"], "method.type", "LoRA adapters only"),
    (["method.type=dora"], "method.type", "DoRA"),
    (["train.max_steps=10"], "train.max_steps", "whole epochs"),
    (["train.epochs=1.5"], "train.epochs", "whole epochs"),
    (["target.model=builtin:tiny-phi3"], "target.model", "not a model serverless fine-tuning accepts"),
    (["target.model=meta-llama/Llama-3.2-1B"], "target.model", "Hugging Face id"),
    (["target.model=azureml://registries/azureml/models/Phi-3-mini-4k-instruct/labels/default"], "target.model", "label"),
])
def test_maas_preflight_refuses_what_the_service_cannot_do_with_the_reason(overrides, location, words):
    recipe = _recipe("target.type=maas", "target.model=Phi-4-mini-instruct", *overrides)
    with pytest.raises(SubmitError) as err:
        phitune.submit(recipe, dry_run=True)
    assert any(p.location == location and words in p.message for p in err.value.problems), err.value


def test_maas_preflight_reports_bad_records_as_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    bad.write_text("\n".join([good, "{not json", json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
                              json.dumps({"messages": [{"role": "user", "content": "only a question"}]})]) + "\n")
    recipe = _recipe("target.type=maas", "target.model=Phi-4-mini-instruct", f"data.train={bad}")
    with pytest.raises(SubmitError) as err:
        phitune.submit(recipe, dry_run=True)
    locations = {p.location: p.message for p in err.value.problems}
    assert "not valid JSON" in locations[f"{bad}:2"]
    assert "role" in locations[f"{bad}:3"]
    assert "assistant" in locations[f"{bad}:4"]
    assert f"{bad}:1" not in locations


LLAMA = "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct/labels/latest"
TEXTGEN = EXAMPLES / "recipes" / "text-generation.yaml"


def test_maas_takes_a_llama_registry_uri_and_warns_about_a_model_outside_the_list(tmp_path, capsys):
    listed = _recipe("target.type=maas", f"target.model={LLAMA}")
    phitune.submit(listed, dry_run=True, output_dir=tmp_path / "listed", progress=print)
    out = capsys.readouterr().out
    assert "warning:" not in out and "resolved to a version at submit" in out
    request = json.loads((tmp_path / "listed" / "request.json").read_text())
    assert request["body"]["properties"]["fineTuningDetails"]["model"]["uri"] == LLAMA

    unlisted = "azureml://registries/azureml-meta/models/Llama-3.2-1B-Instruct/versions/2"
    handle = phitune.submit(_recipe("target.type=maas", f"target.model={unlisted}"), dry_run=True,
                            output_dir=tmp_path / "unlisted", progress=print)
    assert "warning: Llama-3.2-1B-Instruct (registry azureml-meta) is not in phitune's list" in capsys.readouterr().out
    assert handle.request["body"]["properties"]["fineTuningDetails"]["model"]["uri"] == unlisted


def test_maas_sends_properties_tags_and_decimal_hyperparameters_like_the_samples(tmp_path, capsys):
    recipe = _recipe("target.type=maas", "target.model=Phi-4-mini-instruct", "train.lr=0.00002",
                     "target.properties={my_property: my_value}", "target.tags={foo_tag: bar}")
    with FakeRegistryAzure(models={"azureml/Phi-4-mini-instruct": {"version": 3}}) as az:
        phitune.submit(recipe, ml_client=ml_client(), output_dir=tmp_path / "out", progress=print)
    props = az.job_bodies()[0]["properties"]
    assert props["properties"]["my_property"] == "my_value" and props["tags"]["foo_tag"] == "bar"
    assert props["fineTuningDetails"]["hyperParameters"]["learning_rate"] == "0.00002"
    assert props["fineTuningDetails"]["model"]["uri"].endswith("/Phi-4-mini-instruct/versions/3")
    # The resolved version is recorded in job.yml too (what `az ml job create -f` would resend).
    assert "Phi-4-mini-instruct/versions/3" in (tmp_path / "out" / "job.yml").read_text()
    assert "Phi-4-mini-instruct/labels/latest resolved to version 3" in capsys.readouterr().out


@pytest.mark.parametrize("value, text", [(2e-5, "0.00002"), (5e-6, "0.000005"), (3e-3, "0.003"), (0.1, "0.1"),
                                         (1e-4, "0.0001"), (2.0, "2.0"), (3, "3")])
def test_hyperparameters_are_plain_decimal_strings(value, text):
    from phitune.targets.maas import _as_string

    assert _as_string(value) == text


def test_the_serverless_text_generation_sample_shape_goes_as_text_completion(tmp_path):
    recipe = load_recipe(TEXTGEN, overrides=["target.type=maas", "target.model=Phi-3-mini-4k-instruct"])
    handle = phitune.submit(recipe, dry_run=True, output_dir=tmp_path / "dry")
    details = handle.request["body"]["properties"]["fineTuningDetails"]
    assert details["taskType"] == "textCompletion"
    assert details["trainingData"]["uri"].endswith("/textgen-train.jsonl")
    assert details["validationData"]["uri"].endswith("/textgen-heldout.jsonl")


@pytest.mark.parametrize("task, location", [
    ({"type": "completion", "text_key": "body", "learn": "all"}, "task.text_key"),
    ({"type": "completion", "text_key": "question", "ground_truth_key": "answer"}, "task.text_key"),
    ({"type": "completion", "text_key": "text", "ground_truth_key": "ground_truth", "learn": "all"}, "task.learn"),
])
def test_maas_names_the_completion_key_it_cannot_read(task, location):
    recipe = load_recipe({"data": {"train": str(EXAMPLES / "data" / "textgen-train.jsonl")}, "task": task,
                          "target": {"type": "maas", "model": "Phi-3-mini-4k-instruct"}})
    with pytest.raises(SubmitError) as err:
        phitune.submit(recipe, dry_run=True)
    assert [p.location for p in err.value.problems] == [location], err.value


def test_maas_reports_a_record_missing_the_ground_truth_as_file_and_line(tmp_path):
    data = tmp_path / "tg.jsonl"
    data.write_text(json.dumps({"text": "a", "ground_truth": "b"}) + "\n" + json.dumps({"text": "c"}) + "\n")
    recipe = load_recipe(TEXTGEN, overrides=["target.type=maas", "target.model=Phi-3-mini-4k-instruct",
                                             f"data.train={data}", f"data.validation={data}"])
    with pytest.raises(SubmitError) as err:
        phitune.submit(recipe, dry_run=True)
    assert any(p.location == f"{data}:2" and "ground_truth" in p.message for p in err.value.problems), err.value


@pytest.mark.parametrize("name, uri", [
    ("Meta-Llama-3.1-8B-Instruct", "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct/labels/latest"),
    ("meta-llama/Meta-Llama-3.1-70B-Instruct",
     "azureml://registries/azureml-meta/models/Meta-Llama-3.1-70B-Instruct/labels/latest"),
    ("mistral-nemo", "azureml://registries/azureml-mistral/models/Mistral-Nemo/labels/latest"),
    ("Phi-3.5-MoE-instruct", "azureml://registries/azureml/models/Phi-3.5-MoE-instruct/labels/latest"),
])
def test_short_names_of_the_serverless_families_resolve_to_their_registry(name, uri):
    from phitune.targets.maas_rules import model_warnings, resolve_model

    assert resolve_model(name, "target.model") == (uri, [])
    assert model_warnings(uri) == []
