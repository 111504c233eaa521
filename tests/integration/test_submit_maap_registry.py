"""maap with target.trainer: azureml: Azure ML's registry fine-tuning pipeline components, dry run and a
real submit through azure-ai-ml (registry and workspace faked at the HTTP level)."""

from __future__ import annotations

import json

import pytest
import responses
import yaml

import phitune
from conftest import EXAMPLES, run_cli
from fake_azure import ml_client
from fake_registry import FakeRegistryAzure, component_spec
from phitune.errors import SubmitError
from phitune.recipe import load_recipe

RECIPE = EXAMPLES / "recipes" / "azure-phi3-chat.yaml"
PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/labels/latest"
ALLOWED = "['Standard_NC24ads_A100_v4', 'Standard_NC48ads_A100_v4', 'Standard_ND96asr_v4']"
CHAT = "chat_completion_pipeline"


def _node(request: dict, name: str = CHAT) -> dict:
    return request["body"]["properties"]["jobs"][name]


def _literal(node: dict, name: str) -> str:
    return node["inputs"][name]["value"]


def test_cli_dry_run_writes_the_registry_pipeline_job_with_the_mapped_inputs(tmp_path):
    out = tmp_path / "dry"
    result = run_cli("submit", str(RECIPE), "--target", "maap", "--set", "target.trainer=azureml", "--set",
                     "target.instance_count=2", "--set", "target.processes_per_instance=4", "--dry-run", "--output", str(out))
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load((out / "job.yml").read_text())
    assert job["settings"]["force_rerun"] is True and job["settings"]["continue_on_step_failure"] is False
    assert job["jobs"][CHAT]["component"] == f"azureml://registries/azureml/components/{CHAT}/labels/latest"
    request = json.loads((out / "request.json").read_text())
    node = _node(request)
    assert node["componentId"] == f"azureml://registries/azureml/components/{CHAT}/labels/latest"
    assert node["inputs"]["mlflow_model_path"] == {"uri": PHI3, "job_input_type": "mlflow_model"}
    for name in ("compute_model_import", "compute_preprocess", "compute_finetune", "compute_model_evaluation"):
        assert _literal(node, name) == "gpu-cluster-big"
    assert _literal(node, "number_of_gpu_to_use_finetuning") == "4" and _literal(node, "num_nodes_finetune") == "2"
    for name, filename in (("train_file_path", "reviews-train.jsonl"), ("validation_file_path", "reviews-heldout.jsonl"),
                           ("test_file_path", "reviews-heldout.jsonl")):
        assert node["inputs"][name]["uri"].endswith("/" + filename) and "/LocalUpload/" in node["inputs"][name]["uri"]
    expected = {"apply_lora": "true", "lora_r": "8", "lora_alpha": "16", "lora_dropout": "0.05",
                "merge_lora_weights": "false", "num_train_epochs": "3", "per_device_train_batch_size": "1",
                "gradient_accumulation_steps": "1", "learning_rate": "0.00002", "lr_scheduler_type": "cosine",
                "warmup_steps": "0", "weight_decay": "0.0", "max_seq_length": "2048", "apply_deepspeed": "false",
                "precision": "32", "seed": "42"}
    assert {name: _literal(node, name) for name in expected} == expected
    # The fine-tuned model: the component's mlflow_model_folder becomes the pipeline output, registered by name.
    assert node["outputs"]["mlflow_model_folder"]["value"] == "${{parent.outputs.trained_model}}"
    assert request["body"]["properties"]["outputs"]["trained_model"] == {"assetName": "phi3-reviews",
                                                                        "jobOutputType": "mlflow_model"}
    assert "resolved to a version at submit" in result.stdout and "from recipe:" in result.stdout


def test_python_api_dry_run_sends_nothing_and_pins_a_component_version(tmp_path):
    recipe = load_recipe(RECIPE, overrides=["target={type: local}"])  # the target comes from submit()
    target = {"type": "maap", "trainer": "azureml", "compute": "a100", "component_version": "0.0.82",
              "properties": {"my_property": "my_value"}}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:  # any HTTP call would raise
        handle = phitune.submit(recipe, target=target, dry_run=True, output_dir=tmp_path / "dry")
        assert len(mock.calls) == 0
    node = _node(handle.request)
    assert node["componentId"] == f"azureml://registries/azureml/components/{CHAT}/versions/0.0.82"
    assert _literal(node, "compute_finetune") == "a100"
    assert handle.request["body"]["properties"]["properties"]["my_property"] == "my_value"


@pytest.mark.parametrize("method, location", [
    ({"type": "dora"}, "method.type"), ({"type": "qlora"}, "method.type"), ({"type": "ia3"}, "method.type"),
    ({"type": "prompt_tuning"}, "method.type"), ({"type": "prefix_tuning"}, "method.type"),
    ({"type": "loha"}, "method.type"), ({"type": "lokr"}, "method.type"),
    ({"type": "lora", "target_modules": ["qkv_proj"]}, "method.target_modules"),
    ({"type": "lora", "bias": "all"}, "method.bias"),
])
def test_what_the_registry_components_cannot_train_is_refused_up_front(method, location):
    recipe = load_recipe(RECIPE, overrides=[f"method={json.dumps(method)}"])
    with pytest.raises(SubmitError) as err:
        phitune.submit(recipe, dry_run=True)
    assert [p.location for p in err.value.problems] == [location], err.value


@pytest.mark.parametrize("overrides, location, words", [
    (["train.deepspeed={stage: 1}"], "train.deepspeed.stage", "one of 2, 3"),
    (["method.alpha=16.5"], "method.alpha", "integer"),
    (["train.epochs=1.5"], "train.epochs", "integer"),
    (["train.warmup_steps=0", "train.warmup_ratio=0.1"], "train.warmup_ratio", "warmup_steps"),
    (["model.name=builtin:tiny-phi3"], "model.name", "registry pipeline can import"),
    (["task.messages_key=conversation"], "task.messages_key", "messages"),
    (["target.environment=azureml:my-env:1"], "target.environment", "Azure ML's own environments"),
])
def test_values_outside_the_shipped_interface_name_the_recipe_field(overrides, location, words):
    recipe = load_recipe(RECIPE, overrides=overrides)
    with pytest.raises(SubmitError) as err:
        phitune.submit(recipe, dry_run=True)
    assert any(p.location == location and words in p.message for p in err.value.problems), err.value


# --- a real submit ----------------------------------------------------------------------------------


def _registry(tags: dict | None = None, components: dict | None = None) -> FakeRegistryAzure:
    tags = {"finetune_compute_allow_list": ALLOWED, **(tags or {})}
    return FakeRegistryAzure(models={"azureml/Phi-3-mini-4k-instruct": {"version": 14, "tags": tags}},
                             components=components)


def _submit(az, tmp_path, *overrides):
    recipe = load_recipe(RECIPE, overrides=list(overrides))
    with az:
        return phitune.submit(recipe, ml_client=ml_client(), output_dir=tmp_path / "out", progress=print)


def test_submit_reads_the_registry_then_sends_the_job_with_versions_pinned_and_model_defaults_beneath(tmp_path, capsys):
    defaults = "{'apply_deepspeed': 'true', 'deepspeed_stage': '2', 'learning_rate': 5e-06, 'precision': '16'}"
    az = _registry({"model_specific_defaults": defaults})
    handle = _submit(az, tmp_path)
    registry_gets = [url for method, url, _ in az.calls if method == "GET" and "/registries/azureml/" in url]
    assert any(f"/components/{CHAT}/versions" in url for url in registry_gets)
    assert any("/models/Phi-3-mini-4k-instruct/versions" in url for url in registry_gets)
    job_puts = [i for i, (method, url, _) in enumerate(az.calls) if method == "PUT" and "/jobs/" in url]
    last_registry = max(i for i, (_, url, _) in enumerate(az.calls) if "/registries/azureml/" in url)
    assert len(job_puts) == 1 and job_puts[0] > last_registry  # lookups first, then the job
    node = az.job_bodies()[0]["properties"]["jobs"][CHAT]
    assert node["componentId"] == f"azureml://registries/azureml/components/{CHAT}/versions/0.0.82"
    assert node["inputs"]["mlflow_model_path"]["uri"] == "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"
    # model_specific_defaults replace phitune's defaults, never what the recipe wrote (train.lr).
    assert _literal(node, "apply_deepspeed") == "true" and _literal(node, "deepspeed_stage") == "2"
    assert _literal(node, "precision") == "16"
    assert _literal(node, "learning_rate") == "0.00002"
    out = capsys.readouterr().out
    assert "from model default: " in out and "apply_deepspeed=true" in out
    assert handle.url.startswith("https://ml.azure.com/runs/")


def test_an_instance_type_outside_the_models_allow_list_names_target_instance_type(tmp_path):
    az = _registry()
    with pytest.raises(SubmitError) as err:
        _submit(az, tmp_path, "target.instance_type=Standard_NC6s_v3")
    (problem,) = err.value.problems
    assert problem.location == "target.instance_type" and "finetune_compute_allow_list" in problem.message
    assert "Standard_NC24ads_A100_v4" in problem.fix and "Standard_ND96asr_v4" in problem.fix
    assert not az.job_bodies()


def test_a_changed_component_interface_says_what_changed(tmp_path):
    spec = component_spec(CHAT)
    spec["version"] = "0.0.90"
    del spec["inputs"]["lora_r"]
    spec["inputs"]["lr_scheduler_type"]["enum"] = ["linear", "constant"]
    spec["inputs"]["new_knob"] = {"type": "integer", "optional": True, "default": 1}
    az = _registry(components={CHAT: spec})
    with pytest.raises(SubmitError) as err:
        _submit(az, tmp_path)
    messages = [f"{p.location}: {p.message}" for p in err.value.problems]
    assert "0.0.90" in str(err.value) and "0.0.82" in str(err.value)
    assert any("input lora_r was removed" in m for m in messages)
    assert any("input lr_scheduler_type: enum [linear, cosine" in m and "-> [linear, constant]" in m for m in messages)
    assert any(m.startswith("method.r:") for m in messages) and any(m.startswith("train.scheduler:") for m in messages)
    assert not az.job_bodies()


def test_a_compatible_interface_change_is_submitted_with_a_note(tmp_path, capsys):
    spec = component_spec(CHAT)
    spec["version"] = "0.0.83"
    spec["inputs"]["new_knob"] = {"type": "integer", "optional": True, "default": 1}
    az = _registry(components={CHAT: spec})
    _submit(az, tmp_path)
    node = az.job_bodies()[0]["properties"]["jobs"][CHAT]
    assert node["componentId"].endswith("/versions/0.0.83")
    assert "input new_knob was added" in capsys.readouterr().out
