"""Recipe -> Azure ML registry pipeline inputs, per task, checked against the shipped interfaces; and the
one table of Azure / Hugging Face names behind `validate`'s hints, the mapping and the README."""

from __future__ import annotations

import pytest

from conftest import REPO
from phitune.recipe import load_recipe
from phitune.recipe.azure_names import AZURE_NAMES, BY_NAME, hint, markdown_table
from phitune.targets import registry_mapping as mapping
from phitune.targets.registry_interfaces import check_value, interface_changes, shipped, shipped_names, source

PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"
DATA = {"train_file_path": {"type": "uri_file", "path": "azureml:train:1"},
        "validation_file_path": {"type": "uri_file", "path": "azureml:val:1"},
        "test_file_path": {"type": "uri_file", "path": "azureml:val:1"}}
TASKS = {
    "chat_completion_pipeline": ({"type": "chat"}, {}),
    "text_generation_pipeline": ({"type": "completion", "text_key": "text", "ground_truth_key": "ground_truth"},
                                 {"text_key": "text", "ground_truth_key": "ground_truth"}),
    "text_classification_pipeline": ({"type": "classification", "head": "classifier", "sentence1_key": "premise",
                                      "sentence2_key": "hypothesis", "label_key": "gold"},
                                     {"sentence1_key": "premise", "sentence2_key": "hypothesis", "label_key": "gold"}),
    "token_classification_pipeline": ({"type": "ner", "head": "classifier", "token_key": "words", "tag_key": "bio"},
                                      {"token_key": "words", "tag_key": "bio"}),
    "question_answering_pipeline": ({"type": "qa", "answer_key": "answers"},
                                    {"question_key": "question", "context_key": "context", "answers_key": "answers",
                                     "answer_start_key": "answer_start", "answer_text_key": "text"}),
    "summarization_pipeline": ({"type": "summarization", "document_key": "dialogue"},
                               {"document_key": "dialogue", "summary_key": "summary"}),
    "translation_pipeline": ({"type": "translation", "source_lang": "en", "target_lang": "ro"},
                             {"source_lang": "en", "target_lang": "ro"}),
}


def _recipe(task: dict, **sections):
    return load_recipe({"name": "reg", "model": PHI3, "task": task, "data": {"train": "azureml:train:1"},
                        "target": {"type": "maap", "trainer": "azureml", "compute": "a100", "instance_count": 2,
                                   "processes_per_instance": 8}, **sections})


def test_every_task_pipeline_is_shipped_with_its_version_and_source():
    assert set(shipped_names()) == set(TASKS) == set(mapping.TASK_COMPONENTS.values())
    assert shipped("chat_completion_pipeline").version == "0.0.82"
    assert source().startswith("Azure/azureml-assets@")


@pytest.mark.parametrize("component", sorted(TASKS))
def test_each_task_pipeline_mapping_fits_its_shipped_interface(component):
    task, keys = TASKS[component]
    recipe = _recipe(task)
    interface = shipped(component)
    plan, problems = mapping.plan(recipe, recipe.target, DATA, interface)
    assert problems == [] and plan.component == component
    assert plan.component_uri == f"azureml://registries/azureml/components/{component}/labels/latest"
    for name, mapped in plan.inputs.items():
        assert name in interface.inputs, name
        assert check_value(interface, name, mapped.value, mapped.field) is None, name
    required = {n for n, s in interface.inputs.items() if not s.optional and s.default is None}
    assert required <= set(plan.inputs)
    assert {name: plan.inputs[name].value for name in keys} == keys
    assert plan.inputs["mlflow_model_path"].value == {"type": "mlflow_model", "path": PHI3}
    assert {plan.inputs[n].value for n in ("compute_model_import", "compute_preprocess", "compute_finetune",
                                           "compute_model_evaluation")} == {"a100"}
    assert plan.inputs["num_nodes_finetune"].value == 2 and plan.inputs["number_of_gpu_to_use_finetuning"].value == 8


def test_the_mapping_and_the_migration_table_name_the_same_recipe_fields():
    recipe = _recipe({"type": "chat"}, train={"max_steps": 10, "eval_every": 5, "deepspeed": {"stage": 3}})
    plan, problems = mapping.plan(recipe, recipe.target, DATA, shipped("chat_completion_pipeline"))
    assert problems == []
    compared = 0
    for name, mapped in plan.inputs.items():
        if name in BY_NAME and not name.startswith("compute_"):
            assert BY_NAME[name].field == mapped.field, name
            compared += 1
    assert compared >= 25


def test_model_specific_defaults_apply_beneath_explicit_recipe_values():
    recipe = _recipe({"type": "chat"}, train={"lr": 0.0001})
    interface = shipped("chat_completion_pipeline")
    plan, _ = mapping.plan(recipe, recipe.target, DATA, interface)
    notes = mapping.apply_model_defaults(plan.inputs, {"learning_rate": "2e-5", "num_train_epochs": "3",
                                                       "apply_deepspeed": "true", "deepspeed_stage": 1}, interface, "m")
    assert plan.inputs["learning_rate"].value == 0.0001 and plan.inputs["learning_rate"].source == mapping.RECIPE
    assert plan.inputs["num_train_epochs"].value == 3 and plan.inputs["num_train_epochs"].source == mapping.MODEL_DEFAULT
    assert plan.inputs["apply_deepspeed"].value == "true"
    assert notes and "deepspeed_stage" in notes[0]  # 1 is not one of 2, 3: not applied, and said so


def test_interface_changes_name_each_difference():
    old = shipped("text_generation_pipeline")
    assert interface_changes(old, old) == []
    changed = shipped("chat_completion_pipeline")
    lines = interface_changes(old, changed)
    assert "input text_key was removed" in lines
    assert any(line.startswith("input task_name: enum [TextGeneration] -> [ChatCompletion]") for line in lines)


@pytest.mark.parametrize("key, field", [("num_train_epochs", "train.epochs"), ("per_device_train_batch_size",
                                        "train.batch_size"), ("lora_r", "method.r"), ("gradient_accumulation_steps",
                                        "train.grad_accum"), ("apply_deepspeed", "train.deepspeed")])
def test_hint_names_the_recipe_field(key, field):
    assert f"use {field}" in hint(key)


def test_validate_answers_azure_names_with_the_recipe_field(tmp_path):
    from conftest import run_cli

    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {train: x.jsonl}\ntrain:\n  num_train_epochs: 3\n  per_device_train_batch_size: 2\n"
                      "method:\n  type: lora\n  lora_r: 16\noptim: adamw_torch\n")
    result = run_cli("validate", str(recipe))
    assert result.returncode == 2
    for text in ("use train.epochs", "use train.batch_size", "use method.r", "'optim' is an Azure ML / Hugging Face "
                 "setting with no phitune equivalent yet"):
        assert text in result.stderr + result.stdout, text


def test_the_readme_migration_table_is_the_generated_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme
    assert all(f"`{entry.name}`" in readme for entry in AZURE_NAMES)
