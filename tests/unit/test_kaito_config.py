"""The recipe -> KAITO training_config.yaml mapping: golden files for lora and qlora on a Phi-3 preset,
every mapped recipe field landing where KAITO reads it, and what KAITO cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from phitune.recipe.load import load_recipe
from phitune.targets.kaito import KaitoRunner
from phitune.targets.kaito_config import LORA_CONFIG, TRAINING_ARGUMENTS, field_value

GOLDEN = Path(__file__).parent / "golden"
URL = "https://data.example.com/phi3/chat-train.jsonl?download=true"


def recipe(method: dict, **extra):
    body = {"name": "Phi3_Support.v2", "model": "microsoft/Phi-3-mini-4k-instruct",
            "data": {"train": URL, "validation_split": 0.1}, "method": method,
            "train": {"epochs": 3, "lr": 1.5e-4, "scheduler": "linear", "warmup_ratio": 0.05, "weight_decay": 0.01,
                      "batch_size": 2, "grad_accum": 4, "seed": 7, "max_seq_len": 2048, "save_every": 100,
                      "eval_every": 50, "log_every": 10},
            "target": {"type": "kaito", "output_image": "myregistry.azurecr.io/phi3-adapter:0.1",
                       "image_push_secret": "acr-push"}}
    for key, value in extra.items():
        merge = isinstance(value, dict) and isinstance(body.get(key), dict)
        body[key] = {**body[key], **value} if merge else value
    return load_recipe(body)


def training_config(r) -> dict:
    runner = KaitoRunner(r.target)
    assert runner.check(r) == []
    config_map, _ = runner.manifests(r, None)
    return yaml.safe_load(config_map["data"]["training_config.yaml"])


@pytest.mark.parametrize("name, method", [
    ("lora", {"type": "lora", "r": 16, "alpha": 32, "dropout": 0.1}),
    ("qlora", {"type": "qlora", "r": 16, "alpha": 32, "dropout": 0.1, "compute_dtype": "bfloat16"}),
])
def test_training_config_matches_golden_file(name, method):
    r = recipe(method, model={"name": "microsoft/Phi-3-mini-4k-instruct", "dtype": "bfloat16"})
    golden = yaml.safe_load((GOLDEN / f"kaito_training_config_{name}.yaml").read_text())
    assert training_config(r) == golden


def test_every_recipe_field_lands_where_kaito_reads_it():
    r = recipe({"type": "qlora", "r": 24, "alpha": 48, "dropout": 0.07, "bias": "lora_only", "bits": 4,
                "quant_type": "fp4", "double_quant": False, "compute_dtype": "float16",
                "target_modules": ["qkv_proj", "o_proj"]},
               model={"name": "phi-3.5-mini-instruct", "dtype": "float16", "trust_remote_code": True},
               train={"max_steps": 321, "packing": True, "gradient_checkpointing": True, "max_grad_norm": None})
    sections = training_config(r)["training_config"]
    args = sections["TrainingArguments"]
    for field, key in TRAINING_ARGUMENTS.items():
        assert args[key] == field_value(r, field), field
    lora = sections["LoraConfig"]
    for field, key in LORA_CONFIG.items():
        assert lora[key] == field_value(r, field), field
    assert args["warmup_steps"] == 0.05 and args["max_grad_norm"] == 0.0
    assert (args["fp16"], args["bf16"]) == (True, False)
    assert (args["save_strategy"], args["save_steps"], args["eval_strategy"], args["eval_steps"]) == ("steps", 100, "steps", 50)
    assert args["output_dir"] == "/mnt/output"
    assert sections["QuantizationConfig"] == {"load_in_4bit": True, "load_in_8bit": False, "bnb_4bit_quant_type": "fp4",
                                              "bnb_4bit_use_double_quant": False, "bnb_4bit_compute_dtype": "float16"}
    assert sections["ModelConfig"] == {"torch_dtype": "float16", "local_files_only": True, "trust_remote_code": True}
    assert sections["DatasetConfig"] == {"dataset_path": "data/chat-train.jsonl", "dataset_extension": "json",
                                         "shuffle_dataset": True, "shuffle_seed": 7, "train_test_split": 0.9,
                                         "messages_column": "messages"}
    assert sections["DataCollator"] == {"mlm": False}


def test_lora_has_no_quantization_and_8bit_qlora_only_its_flag():
    assert "QuantizationConfig" not in training_config(recipe({"type": "lora"}))["training_config"]
    eight = training_config(recipe({"type": "qlora", "bits": 8}))["training_config"]["QuantizationConfig"]
    assert eight == {"load_in_4bit": False, "load_in_8bit": True}


def test_completion_task_and_defaults_without_split_or_checkpoints():
    r = recipe({"type": "lora"}, task={"type": "completion"},
               data={"train": "https://data.example.com/pairs.parquet", "validation_split": None},
               train={"save_every": None, "eval_every": None})
    sections = training_config(r)["training_config"]
    assert sections["DatasetConfig"]["train_test_split"] == 1.0
    assert sections["DatasetConfig"]["dataset_extension"] == "parquet"
    assert (sections["DatasetConfig"]["context_column"], sections["DatasetConfig"]["response_column"]) == ("prompt", "completion")
    assert (sections["TrainingArguments"]["save_strategy"], sections["TrainingArguments"]["eval_strategy"]) == ("no", "no")


def test_phi3_keeps_fused_targets_and_qwen_gets_peft_default():
    phi3 = training_config(recipe({"type": "lora"}))["training_config"]["LoraConfig"]["target_modules"]
    assert phi3 == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    qwen = training_config(recipe({"type": "lora"}, model="Qwen/Qwen2.5-Coder-7B-Instruct"))
    assert qwen["training_config"]["LoraConfig"]["target_modules"] == ["q_proj", "v_proj"]


def problems_of(r) -> dict[str, str]:
    return {p.location: f"{p.message} | {p.fix}" for p in KaitoRunner(r.target).check(r)}


def test_local_data_file_is_refused_with_the_fix(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n')
    found = problems_of(recipe({"type": "lora"}, data={"train": str(data)}))
    assert "cannot read" in found["data.train"] and "https" in found["data.train"]
    assert "target.input_volume" in found["data.train"]


def test_input_volume_uses_the_file_name_on_the_claim(tmp_path):
    r = recipe({"type": "lora"}, data={"train": str(tmp_path / "support.jsonl")},
               target={"input_volume": "datasets"})
    runner = KaitoRunner(r.target)
    assert runner.check(r) == []
    config_map, workspace = runner.manifests(r, None)
    assert workspace["tuning"]["input"] == {"volumeSource": {"persistentVolumeClaim": {"claimName": "datasets"}}}
    assert "dataset_path: data/support.jsonl" in config_map["data"]["training_config.yaml"]


@pytest.mark.parametrize("change, field, words", [
    ({"method": {"type": "dora"}}, "method.type", "lora or qlora"),
    ({"method": {"type": "lora", "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}},
     "method.target_modules", "qkv_proj"),
    ({"method": {"type": "lora", "alpha": 12.5}}, "method.alpha", "integer"),
    ({"model": "builtin:tiny-phi3"}, "model.name", "phi-3-mini-4k-instruct"),
    ({"model": {"name": "microsoft/Phi-3-mini-4k-instruct", "revision": "main"}}, "model.revision", "0a67737"),
    ({"task": {"type": "classification"}}, "task.type", "chat"),
    ({"task": {"type": "chat", "messages_key": "conversation"}}, "task.messages_key", "messages"),
    ({"task": {"type": "completion", "prompt_key": "question"}}, "task.prompt_key", "'prompt'"),
    ({"data": {"train": URL, "validation": URL, "validation_split": None}}, "data.validation", "validation_split"),
    ({"data": {"train": "http://data.example.com/a.jsonl"}}, "data.train", "http URL"),
    ({"data": {"train": "https://data.example.com/a.txt"}}, "data.train", ".jsonl"),
    ({"train": {"deepspeed": {"stage": 2}}}, "train.deepspeed", "DeepSpeed"),
    ({"output": {"merge": True}}, "output.merge", "adapter only"),
    ({"eval": {"before_after": True}}, "eval.before_after", "evaluate"),
    ({"target": {"output_image": None, "output_volume": "adapters"}}, "target.image_push_secret", "only used"),
    ({"target": {"output_volume": "adapters"}}, "target.output_image", "both given"),
])
def test_what_kaito_cannot_run_names_the_recipe_field(change, field, words):
    method = change.pop("method", {"type": "lora"})
    found = problems_of(recipe(method, **change))
    assert field in found, found
    assert words in found[field]


def test_unknown_model_lists_the_supported_presets():
    found = problems_of(recipe({"type": "lora"}, model="meta-llama/Llama-3.1-8B-Instruct"))
    assert "no tuning preset" in found["model.name"]
    for preset in ("phi-3-mini-128k-instruct", "phi-3-medium-4k-instruct", "phi-4-mini-instruct", "phi-4 ("):
        assert preset in found["model.name"]
