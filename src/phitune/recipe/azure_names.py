"""Azure ML fine-tuning component and Hugging Face `TrainingArguments` names -> the recipe field to use.

One table, used three ways: `phitune validate` answers an unknown key that is one of these names with
the field to use (phitune.recipe.load), `target.trainer: azureml` maps the same recipe fields back to the
registry components' inputs (phitune.targets.registry_pipeline; a test checks they agree), and the
README's migration table is generated from it (`markdown_table`; a test checks the README matches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AzureName:
    name: str  # the Azure component input / TrainingArguments name
    field: str | None  # recipe field to use; None: no equivalent yet
    note: str = ""  # how values translate, or why there is no equivalent
    hf_default: Any = None  # default where the name is TrainingArguments-only (not a registry component input)


AZURE_NAMES: tuple[AzureName, ...] = (
    AzureName("num_train_epochs", "train.epochs"),
    AzureName("max_steps", "train.max_steps", "Azure's -1 (off) is phitune's null"),
    AzureName("per_device_train_batch_size", "train.batch_size"),
    AzureName("gradient_accumulation_steps", "train.grad_accum"),
    AzureName("learning_rate", "train.lr"),
    AzureName("lr_scheduler_type", "train.scheduler", "phitune offers cosine, linear, constant"),
    AzureName("warmup_steps", "train.warmup_steps"),
    AzureName("warmup_ratio", "train.warmup_ratio", "TrainingArguments only", hf_default=0.0),
    AzureName("weight_decay", "train.weight_decay"),
    AzureName("max_grad_norm", "train.max_grad_norm"),
    AzureName("max_seq_length", "train.max_seq_len", "Azure's -1 means the model's maximum"),
    AzureName("seed", "train.seed"),
    AzureName("logging_steps", "train.log_every"),
    AzureName("eval_steps", "train.eval_every"),
    AzureName("save_steps", "train.save_every", "TrainingArguments only", hf_default=500),
    AzureName("gradient_checkpointing", "train.gradient_checkpointing", "TrainingArguments only", hf_default=False),
    AzureName("group_by_length", "train.group_by_length", "TrainingArguments only", hf_default=False),
    AzureName("apply_lora", "method.type", '"true" is method.type: lora, "false" is method.type: full'),
    AzureName("lora_r", "method.r"),
    AzureName("lora_alpha", "method.alpha"),
    AzureName("lora_dropout", "method.dropout"),
    AzureName("merge_lora_weights", "output.merge"),
    AzureName("apply_deepspeed", "train.deepspeed", '"true" is a train.deepspeed section'),
    AzureName("deepspeed_stage", "train.deepspeed.stage"),
    AzureName("deepspeed", "train.deepspeed.config", "a DeepSpeed JSON file"),
    AzureName("precision", "model.dtype", '"32" is float32; "16" is float16 or bfloat16'),
    AzureName("number_of_gpu_to_use_finetuning", "target.processes_per_instance", "target.type: maap"),
    AzureName("num_nodes_finetune", "target.instance_count", "target.type: maap"),
    AzureName("compute_finetune", "target.compute", "target.type: maap; every compute_* input"),
    AzureName("instance_type_finetune", "target.instance_type", "target.type: maap"),
    AzureName("train_file_path", "data.train"),
    AzureName("validation_file_path", "data.validation"),
    AzureName("test_file_path", "data.validation", "phitune evaluates on the held-out file"),
    AzureName("per_device_eval_batch_size", None, "evaluation uses train.batch_size"),
    AzureName("optim", None, "phitune trains with AdamW (adamw_torch)"),
    AzureName("adam_beta1", None, "AdamW's betas and epsilon are torch's defaults"),
    AzureName("adam_beta2", None, "AdamW's betas and epsilon are torch's defaults"),
    AzureName("adam_epsilon", None, "AdamW's betas and epsilon are torch's defaults"),
    AzureName("apply_early_stopping", None, "no early stopping yet"),
    AzureName("save_total_limit", None, "every checkpoint is kept"),
    AzureName("apply_ort", None, "no ONNX Runtime training; `phitune export` writes ONNX after training"),
    AzureName("auto_find_batch_size", None, "`phitune estimate` predicts memory for a batch size instead"),
)
BY_NAME = {entry.name: entry for entry in AZURE_NAMES}
REFERENCE_COMPONENT = "chat_completion_pipeline"  # whose defaults the README table shows


def hint(key: str) -> str | None:
    """The fix for an unknown recipe key that is an Azure / TrainingArguments name, else None."""
    entry = BY_NAME.get(key)
    if entry is None:
        return None
    if entry.field is None:
        return f"'{key}' is an Azure ML / Hugging Face setting with no phitune equivalent yet: {entry.note}"
    note = f" ({entry.note})" if entry.note else ""
    return f"'{key}' is the Azure ML / Hugging Face name: use {entry.field}{note}"


def azure_default(entry: AzureName) -> Any:
    from phitune.targets.registry_interfaces import shipped

    spec = shipped(REFERENCE_COMPONENT).inputs.get(entry.name)
    return spec.default if spec is not None else entry.hf_default


def recipe_default(field: str) -> Any:
    """phitune's default for a recipe field (a method field: LoRA's; a deepspeed field: when enabled)."""
    from phitune.recipe.schema import Recipe

    if field == "data.train":
        return "required"
    recipe = Recipe.model_validate({"data": {"train": "train.jsonl"}, "target": {"type": "maap"},
                                    "train": {"deepspeed": {}} if field.startswith("train.deepspeed.") else {}})
    value: Any = recipe
    for part in field.split("."):
        value = getattr(value, part, None)
    if hasattr(value, "model_dump"):
        return "null (off)" if field == "train.deepspeed" else value.model_dump(mode="json")
    return value


def markdown_table() -> str:
    """The README's migration table: Azure knob, recipe field, both defaults, notes."""
    rows = ["| Azure ML / HF name | Recipe field | Azure default (HF where Azure has none) | phitune default | Notes |",
            "|---|---|---|---|---|"]
    for entry in AZURE_NAMES:
        field = f"`{entry.field}`" if entry.field else "no equivalent yet"
        ours = _cell(recipe_default(entry.field)) if entry.field else ""
        rows.append(f"| `{entry.name}` | {field} | {_cell(azure_default(entry))} | {ours} | {entry.note} |")
    return "\n".join(rows)


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        from decimal import Decimal

        value = format(Decimal(repr(value)), "f")
    return f"`{value}`" if not isinstance(value, str) or value else '`""`'
