"""The offline checks of the KAITO manifests: phitune's description of KAITO's Workspace schema and
KAITO's admission rules, each with planted violations, each naming the recipe field to correct."""

from __future__ import annotations

import copy

import pytest
import yaml

from phitune.errors import RecipeError
from phitune.recipe.load import load_recipe
from phitune.targets.kaito import KaitoRunner
from phitune.targets.kaito_manifest import dump_manifests
from phitune.targets.kaito_presets import tuning_presets
from phitune.targets.kaito_schema import check_manifests, schema_errors, workspace_schema

URL = "https://data.example.com/chat.jsonl"
TARGET = {"type": "kaito", "output_image": "myregistry.azurecr.io/phi3-adapter:0.1", "image_push_secret": "acr-push"}


def recipe(method="qlora", **target):
    return load_recipe({"name": "phi3-support", "model": "microsoft/Phi-3-mini-128k-instruct",
                        "data": {"train": URL}, "method": {"type": method}, "target": {**TARGET, **target}})


def manifests(method="qlora", **target):
    r = recipe(method, **target)
    return KaitoRunner(r.target).manifests(r, "ml")


def locations(config_map, workspace) -> dict[str, str]:
    return {p.location: p.message for p in check_manifests(config_map, workspace, tuning_presets())}


def set_training_config(config_map, edit) -> dict:
    doc = yaml.safe_load(config_map["data"]["training_config.yaml"])
    edit(doc["training_config"])
    config_map["data"]["training_config.yaml"] = yaml.safe_dump(doc)
    return config_map


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_generated_manifests_pass_the_crd_schema_and_admission(method):
    config_map, workspace = manifests(method)
    assert schema_errors(workspace, workspace_schema()) == []
    assert check_manifests(config_map, workspace, tuning_presets()) == []


def test_volume_input_and_output_pass_too():
    config_map, workspace = manifests(input_volume="datasets", output_volume="adapters", output_image=None,
                                      image_push_secret=None, instance_type=None, label_selector={"gpu": "a100"})
    assert check_manifests(config_map, workspace, tuning_presets()) == []
    assert "instanceType" not in workspace["resource"]
    assert workspace["resource"]["labelSelector"] == {"matchLabels": {"gpu": "a100"}}


def test_the_multi_document_file_is_configmap_then_workspace():
    config_map, workspace = manifests()
    docs = list(yaml.safe_load_all(dump_manifests(config_map, workspace)))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Workspace"]
    assert docs == [config_map, workspace]
    assert set(docs[0]) == {"apiVersion", "kind", "metadata", "data"}  # a v1 ConfigMap's own fields
    assert all(isinstance(v, str) for v in docs[0]["data"].values())
    assert docs[1]["tuning"]["config"] == docs[0]["metadata"]["name"]


PLANTED_WORKSPACE = [
    # (path to change, new value, recipe field named)
    (("tuning", "epochs"), 3, "tuning.epochs"),                       # unknown field
    (("tuning", "input", "urls"), "https://x.example.com/a.jsonl", "data.train"),  # not an array
    (("tuning", "preset", "accessMode"), "secret", "model.name"),      # enum
    (("resource", "count"), "two", "target"),                          # type
    (("tuning", "method"), "full", "method.type"),
    (("tuning", "preset", "name"), "llama-3.1-8b-instruct", "model.name"),
    (("tuning", "input", "urls"), ["https://10.0.0.5/data.jsonl"], "data.train"),
    (("tuning", "input", "urls"), ["https://localhost/data.jsonl"], "data.train"),
    (("tuning", "output", "imagePushSecret"), None, "target.image_push_secret"),
    (("tuning", "output", "image"), "MyRegistry/Phi3:latest", "target.output_image"),
    (("tuning", "output", "volumeSource"), {"persistentVolumeClaim": {"claimName": "out"}}, "target.output_image"),
    (("metadata", "name"), "Phi3_Support", "target.name"),
    (("resource", "labelSelector"), None, "target.label_selector"),     # required
    (("resource", "labelSelector", "matchExpressions"), [{"key": "gpu"}], "target.label_selector"),  # operator required
    (("resource", "labelSelector", "matchLabels"), {"gpu": 100}, "target.label_selector"),  # map of strings
    (("resource", "instanceType"), ["Standard_NC24ads_A100_v4"], "target.instance_type"),  # type
    (("tuning", "output", "imagePushSecret"), {"name": "acr-push"}, "target.image_push_secret"),  # type
]


@pytest.mark.parametrize("path, value, field", PLANTED_WORKSPACE)
def test_planted_workspace_violation_names_the_recipe_field(path, value, field):
    config_map, workspace = manifests()
    target = workspace
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    found = locations(config_map, workspace)
    assert field in found, found


PLANTED_CONFIG = [
    ("lora", lambda c: c.update(Optimizer={"name": "adamw"}), "training_config.Optimizer", "section"),
    ("lora", lambda c: c.update(QuantizationConfig={"load_in_4bit": True}), "method.type", "lora"),
    ("qlora", lambda c: c.pop("QuantizationConfig"), "method.bits", "load_in_4bit"),
    ("qlora", lambda c: c["QuantizationConfig"].update(load_in_8bit=True), "method.bits", "both"),
    ("qlora", lambda c: c["QuantizationConfig"].update(load_in_4bit="yes"), "method.bits", "true or false"),
    ("lora", lambda c: c["TrainingArguments"].update(output_dir="/"), "training_config.TrainingArguments.output_dir", "directory"),
    ("lora", lambda c: c["TrainingArguments"].update(output_dir="../../etc"), "training_config.TrainingArguments.output_dir", "directory"),
    ("lora", lambda c: c["TrainingArguments"].update(output_dir=7), "training_config.TrainingArguments.output_dir", "string"),
    ("lora", lambda c: c["DatasetConfig"].update(message_column="messages"), "training_config.DatasetConfig.message_column", "reads no key"),
    ("lora", lambda c: c["ModelConfig"].update(dtype="bfloat16"), "training_config.ModelConfig.dtype", "reads no key"),
]


@pytest.mark.parametrize("method, edit, field, words", PLANTED_CONFIG)
def test_planted_training_config_violation_names_the_recipe_field(method, edit, field, words):
    config_map, workspace = manifests(method)
    found = locations(set_training_config(copy.deepcopy(config_map), edit), workspace)
    assert field in found and words in found[field], found


def test_output_rules_reach_the_user_through_check():
    def problems(**target):
        r = recipe(**target)
        return {p.location: p.message for p in KaitoRunner(r.target).check(r)}

    assert "push" in problems(image_push_secret=None)["target.image_push_secret"]
    assert "image reference" in problems(output_image="MyRegistry/Phi3:latest")["target.output_image"]
    assert "exactly one" in problems(output_image=None, image_push_secret=None)["target.output_image"]
    assert "exactly one" in problems(output_volume="adapters")["target.output_image"]


def test_target_names_must_be_kubernetes_names():
    with pytest.raises(RecipeError) as err:
        recipe(name="Phi3_Support")
    assert "target.name" in str(err.value)


def test_recipe_name_becomes_a_kubernetes_name():
    r = load_recipe({"name": "Phi3_Support.v2", "model": "phi-4", "data": {"train": URL}, "target": TARGET})
    _, workspace = KaitoRunner(r.target).manifests(r, None)
    assert workspace["metadata"]["name"] == "phi3-support-v2" and "namespace" not in workspace["metadata"]
