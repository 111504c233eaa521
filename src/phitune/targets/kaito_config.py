"""The recipe as KAITO's `training_config.yaml`, and what of a recipe KAITO cannot run.

KAITO's tuning image (presets/workspace/tuning/text-generation/) parses each section of
`training_config` into one class: ModelConfig and DatasetConfig (its own dataclasses), QuantizationConfig
(transformers BitsAndBytesConfig), LoraConfig (peft LoraConfig), TrainingArguments (TRL SFTConfig) and
DataCollator (transformers DataCollatorForLanguageModeling). It loads the one data file it is given
(`/mnt/` + DatasetConfig.dataset_path), splits off `1 - train_test_split` for evaluation, and passes the
records unchanged to TRL's SFTTrainer, which reads conversations from a `messages` column and
prompt/completion pairs from `prompt` and `completion`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from phitune.errors import Problem
from phitune.recipe.method import LoraMethod, Method, QloraMethod, method_class
from phitune.redact import redact

BASE_DIR = "/mnt"                 # KAITO resolves dataset_path and output_dir under this folder
DATA_DIR = "data"                 # where URLs are downloaded and an input claim is mounted: /mnt/data
OUTPUT_DIR = "/mnt/output"        # KAITO's default results mount (output image / output claim)
METHODS = (LoraMethod, QloraMethod)  # KAITO's two tuning methods
DATA_EXTENSIONS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}
# TRL's SFTTrainer reads these column names; KAITO does not rename columns.
TRL_COLUMNS = {"messages_key": "messages", "prompt_key": "prompt", "completion_key": "completion"}

# recipe field -> SFTConfig (TrainingArguments section) key, for the values copied as they are.
TRAINING_ARGUMENTS = {
    "train.epochs": "num_train_epochs",
    "train.max_steps": "max_steps",
    "train.lr": "learning_rate",
    "train.scheduler": "lr_scheduler_type",
    "train.weight_decay": "weight_decay",
    "train.batch_size": "per_device_train_batch_size",
    "train.grad_accum": "gradient_accumulation_steps",
    "train.seed": "seed",
    "train.max_seq_len": "max_length",
    "train.packing": "packing",
    "train.gradient_checkpointing": "gradient_checkpointing",
    "train.log_every": "logging_steps",
}
LORA_CONFIG = {"method.r": "r", "method.alpha": "lora_alpha", "method.dropout": "lora_dropout",
               "method.bias": "bias", "method.target_modules": "target_modules"}

# The keys, and the value types, of the sections KAITO's tuning image reads into its own classes, as
# defined by KAITO v0.12.0 in presets/workspace/tuning/text-generation/cli.py: ModelConfig and
# DatasetConfig, and ExtDataCollator (transformers' DataCollatorForLanguageModeling; the script supplies
# the tokenizer). The image parses each section with HfArgumentParser, which fails on any other key.
# The other sections are library classes (SFTConfig, peft LoraConfig, BitsAndBytesConfig):
# tests/unit/test_kaito_parser.py builds those from the generated file.
KAITO_SECTION_FIELDS: dict[str, dict[str, type]] = {
    "ModelConfig": {"pretrained_model_name_or_path": str, "state_dict": dict, "cache_dir": str,
                    "force_download": bool, "proxies": str, "output_loading_info": bool, "local_files_only": bool,
                    "revision": str, "trust_remote_code": bool, "torch_dtype": str, "device_map": str,
                    "chat_template": str},
    "DatasetConfig": {"dataset_path": str, "dataset_extension": str, "shuffle_dataset": bool, "shuffle_seed": int,
                      "context_column": str, "response_column": str, "messages_column": str,
                      "train_test_split": float},
    "DataCollator": {"mlm": bool, "whole_word_mask": bool, "mlm_probability": float, "mask_replace_prob": float,
                     "random_replace_prob": float, "pad_to_multiple_of": int, "return_tensors": str, "seed": int},
}


def field_value(recipe, dotted: str):
    value = recipe
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def is_url(path: str) -> bool:
    return path.startswith(("https://", "http://"))


def downloaded_name(url: str) -> str:
    """The file name KAITO's data-downloader gives a URL (`basename URL | sed 's/[?#].*//'`)."""
    return re.sub(r"[?#].*", "", url.rstrip("/").rsplit("/", 1)[-1])


def dataset_file(recipe) -> str:
    """data.train's file name on the cluster: a URL's downloaded name, or the file's name on the claim."""
    train = recipe.data.train
    return downloaded_name(train) if is_url(train) else PurePosixPath(train.replace("\\", "/")).name


def recipe_problems(recipe, spec) -> list[Problem]:
    """What in the recipe KAITO cannot run, each naming the field and the fix."""
    problems = (_method_problems(recipe) + _task_problems(recipe) + _data_problems(recipe, spec)
                + _output_problems(spec))
    if recipe.train.deepspeed is not None:
        problems.append(Problem("train.deepspeed", "KAITO launches training itself (accelerate, one node) and takes "
                                "no DeepSpeed config", "remove train.deepspeed"))
    if recipe.train.group_by_length:
        problems.append(Problem("train.group_by_length", "KAITO's trainer samples batches at random",
                                "set train.group_by_length: false"))
    if recipe.output.merge:
        problems.append(Problem("output.merge", "KAITO saves the adapter only (no merged model)",
                                "set output.merge: false, and merge the adapter you get back with phitune"))
    if recipe.eval.before_after:
        problems.append(Problem("eval.before_after", "KAITO's tuning job does not evaluate generations",
                                "set eval.before_after: false"))
    return problems


def _output_problems(spec) -> list[Problem]:
    if bool(spec.output_image) == bool(spec.output_volume):
        return [Problem("target.output_image", "the tuning output needs exactly one of an image or a volume "
                        f"({'both' if spec.output_image else 'neither'} given)",
                        "set target.output_image (with target.image_push_secret) or target.output_volume, not both")]
    if spec.output_image and not spec.image_push_secret:
        return [Problem("target.image_push_secret", "an output image needs the secret used to push it",
                        "create a docker-registry secret in the namespace and set target.image_push_secret")]
    if spec.image_push_secret and not spec.output_image:
        return [Problem("target.image_push_secret", "is only used to push target.output_image",
                        "remove target.image_push_secret, or set target.output_image")]
    return []


def kaito_method(name) -> type[Method] | None:
    """The method class of a KAITO tuning method name (a Workspace's tuning.method), None if KAITO has none."""
    method = method_class(str(name).lower())
    return method if method in METHODS else None


def _method_problems(recipe) -> list[Problem]:
    if not isinstance(recipe.method, METHODS):
        return [Problem("method.type", f"KAITO tunes with lora or qlora only, not {recipe.method.type}",
                        "set method.type: lora (or qlora), or use another target")]
    if not float(recipe.method.alpha).is_integer():
        return [Problem("method.alpha", f"KAITO reads lora_alpha as an integer (peft LoraConfig), not "
                        f"{recipe.method.alpha}", f"set method.alpha: {round(recipe.method.alpha)}")]
    return []


def _task_problems(recipe) -> list[Problem]:
    task = recipe.task
    if task.type not in ("chat", "completion"):
        return [Problem("task.type", f"KAITO passes records unchanged to TRL's SFTTrainer, which reads conversations "
                        f"or prompt/completion pairs, not {task.type} records",
                        "convert the data to chat records ({\"messages\": [...]}) and set task.type: chat, or use "
                        "another target")]
    if getattr(task, "text_key", None) is not None:
        return [Problem("task.text_key", "KAITO's tuning script clears SFTConfig.dataset_text_field, so plain-text "
                        "records cannot be read", "use prompt/completion or chat records")]
    problems = []
    for key, column in TRL_COLUMNS.items():
        if getattr(task, key, column) != column:
            problems.append(Problem(f"task.{key}", f"TRL's SFTTrainer reads the column {column!r}, and KAITO does "
                                    f"not rename {getattr(task, key)!r}",
                                    f"rename the key to {column!r} in the data and remove task.{key}"))
    return problems


def _data_problems(recipe, spec) -> list[Problem]:
    train, problems = recipe.data.train, []
    if recipe.data.validation is not None:
        problems.append(Problem("data.validation", "KAITO reads one data file and splits it itself "
                                "(DatasetConfig.train_test_split)",
                                "put the records in data.train and set data.validation_split instead"))
    if spec.input_volume is not None:
        if is_url(train):
            problems.append(Problem("target.input_volume", f"data.train is a URL ({redact(train)}) and "
                                    "target.input_volume is set: KAITO takes one data source", "remove one of them"))
    elif not train.startswith("https://"):
        where = "an http URL" if train.startswith("http://") else "a local file"
        problems.append(Problem("data.train", f"{redact(train)} is {where}, which a KAITO job on the cluster "
                                "cannot read",
                                "host the file at an https URL (data.train: https://...), or copy it to a "
                                "PersistentVolumeClaim and set target.input_volume: CLAIM (the file keeps its name)"))
    suffix = PurePosixPath(dataset_file(recipe)).suffix.lower()
    if suffix not in DATA_EXTENSIONS:
        problems.append(Problem("data.train", f"KAITO cannot tell the format of {dataset_file(recipe)!r}",
                                f"use a file named *{', *'.join(DATA_EXTENSIONS)}"))
    return problems


def training_config(recipe, preset, target_modules: list[str]) -> dict:
    """The whole `training_config.yaml` document for `recipe` on `preset`."""
    sections = {"ModelConfig": _model_config(recipe)}
    if recipe.method.quantized_base:
        sections["QuantizationConfig"] = _quantization_config(recipe)
    sections["LoraConfig"] = _lora_config(recipe, target_modules)
    sections["TrainingArguments"] = _training_arguments(recipe)
    sections["DatasetConfig"] = _dataset_config(recipe)
    sections["DataCollator"] = {"mlm": False}  # causal LM: labels are the inputs
    return {"training_config": sections}


def _model_config(recipe) -> dict:
    # The preset image holds the weights at KAITO's default path: never download.
    return {"torch_dtype": recipe.model.dtype, "local_files_only": True,
            "trust_remote_code": recipe.model.trust_remote_code}


def _quantization_config(recipe) -> dict:
    method = recipe.method
    out = {"load_in_4bit": method.bits == 4, "load_in_8bit": method.bits == 8}
    if method.bits == 4:
        out.update(bnb_4bit_quant_type=method.quant_type, bnb_4bit_use_double_quant=method.double_quant,
                   bnb_4bit_compute_dtype=method.compute_dtype or recipe.model.dtype)
    return out


def _lora_config(recipe, target_modules: list[str]) -> dict:
    out = {key: field_value(recipe, field) for field, key in LORA_CONFIG.items()}
    out["lora_alpha"] = int(recipe.method.alpha)  # peft's field is an int (KAITO parses it with int())
    out["target_modules"] = list(target_modules)
    if recipe.method.uses_dora:
        out["use_dora"] = True
    return out


def _training_arguments(recipe) -> dict:
    train = recipe.train
    out = {"output_dir": OUTPUT_DIR}
    out.update({key: field_value(recipe, field) for field, key in TRAINING_ARGUMENTS.items()
                if field_value(recipe, field) is not None})
    # transformers 5 folds warmup_ratio into warmup_steps (a value below 1 is a fraction of the steps).
    out["warmup_steps"] = train.warmup_ratio if train.warmup_ratio else train.warmup_steps
    out["max_grad_norm"] = train.max_grad_norm if train.max_grad_norm is not None else 0.0  # 0 = no clipping
    # SFTConfig defaults to bf16; say the recipe's precision explicitly.
    out["bf16"] = recipe.model.dtype == "bfloat16"
    out["fp16"] = recipe.model.dtype == "float16"
    if train.save_every:
        out.update(save_strategy="steps", save_steps=train.save_every)
    else:
        out["save_strategy"] = "no"  # the adapter is saved once, at the end
    if train.eval_every and recipe.data.validation_split:
        out.update(eval_strategy="steps", eval_steps=train.eval_every)
    else:
        out["eval_strategy"] = "no"
    return out


def _dataset_config(recipe) -> dict:
    name = dataset_file(recipe)
    out = {"dataset_path": f"{DATA_DIR}/{name}",
           "dataset_extension": DATA_EXTENSIONS.get(PurePosixPath(name).suffix.lower()),
           "shuffle_dataset": True, "shuffle_seed": recipe.train.seed,
           "train_test_split": round(1.0 - (recipe.data.validation_split or 0.0), 6)}
    if recipe.task.type == "chat":
        out["messages_column"] = recipe.task.messages_key
    else:
        out.update(context_column=recipe.task.prompt_key, response_column=recipe.task.completion_key)
    return out
