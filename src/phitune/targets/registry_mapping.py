"""Recipe -> the inputs of Azure ML's registry fine-tuning pipeline component for its task
(`target.type: maap`, `target.trainer: azureml`). Pure: no Azure call, no file written.

Every value is checked against the component's interface (shipped copy offline, the registry's at
submit). What these components cannot do is a problem naming the recipe field; what they do not take
but does not change what is learned is a note. Each input remembers where its value came from (the
recipe, phitune's default, the model's `model_specific_defaults`, or the target) for the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phitune.errors import Problem
from phitune.recipe.method import (PHI3_LORA_TARGETS, DoraMethod, FullMethod, Ia3Method, LohaMethod, LokrMethod,
                                   LoraMethod, PrefixTuningMethod, PromptTuningMethod, QloraMethod)
from phitune.recipe.azure_names import recipe_default
from phitune.targets.pipeline_plan import REGISTRY_MODEL
from phitune.targets.registry_interfaces import ComponentInterface, check_value

REGISTRY = "azureml"
TASK_COMPONENTS = {
    "chat": "chat_completion_pipeline", "completion": "text_generation_pipeline",
    "classification": "text_classification_pipeline", "ner": "token_classification_pipeline",
    "qa": "question_answering_pipeline", "summarization": "summarization_pipeline",
    "translation": "translation_pipeline",
}
METHODS = (LoraMethod, FullMethod)  # what the registry components train
UNSUPPORTED_METHODS = {  # what the others would need, for the message
    DoraMethod: "DoRA's magnitude vectors", QloraMethod: "a quantized (bitsandbytes) base model",
    Ia3Method: "(IA)3 scaling vectors", PromptTuningMethod: "prompt tuning", PrefixTuningMethod: "prefix tuning",
    LohaMethod: "LoHa", LokrMethod: "LoKr",
}
PHITUNE_DEFAULT, RECIPE, MODEL_DEFAULT, TARGET = "phitune default", "recipe", "model default", "target"


@dataclass
class Mapped:
    value: Any
    field: str  # where the value comes from: a recipe field, target.*, or model_specific_defaults
    source: str  # RECIPE | PHITUNE_DEFAULT | MODEL_DEFAULT | TARGET


@dataclass
class RegistryPlan:
    component: str
    version: str | None  # None: the registry's latest, resolved at submit
    inputs: dict[str, Mapped] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def component_uri(self) -> str:
        tail = f"versions/{self.version}" if self.version else "labels/latest"
        return f"azureml://registries/{REGISTRY}/components/{self.component}/{tail}"


def method_problems(recipe) -> list[Problem]:
    """What the registry components cannot train, reported before anything else."""
    method, problems = recipe.method, []
    if not isinstance(method, METHODS):
        problems.append(Problem("method.type", f"Azure ML's registry fine-tuning components train LoRA or full "
                                f"fine-tuning, not {UNSUPPORTED_METHODS.get(type(method), method.type)} ({method.type})",
                                "use method.type: lora or full, or target.trainer: phitune"))
    if isinstance(method, LoraMethod):
        if method.target_modules is not None and list(method.target_modules) != list(PHI3_LORA_TARGETS):
            problems.append(Problem("method.target_modules", "the registry components choose the LoRA target modules "
                                    "themselves; a custom list cannot be sent", "remove method.target_modules, or "
                                    "use target.trainer: phitune"))
        if method.bias != "none":
            problems.append(Problem("method.bias", "the registry components train no bias terms",
                                    "use method.bias: none, or target.trainer: phitune"))
    return problems


def plan(recipe, spec, data_inputs: dict[str, dict], interface: ComponentInterface) -> tuple[RegistryPlan, list[Problem]]:
    """The component inputs for `recipe` on `spec` (a MaapTarget), every value checked against `interface`.
    `data_inputs` holds the file inputs ({"type": "uri_file", "path": ...}) already prepared by the caller."""
    component = TASK_COMPONENTS[recipe.task.type]
    result = RegistryPlan(component, spec.component_version)
    problems = method_problems(recipe)
    inputs = result.inputs
    model, model_problems = model_input(recipe.model.name)
    problems += model_problems
    if model:
        inputs.update(model)
        if "huggingface_id" in model:
            result.notes.append(f"{recipe.model.name} is imported from the Hugging Face hub by the component (its "
                                "registry tags, allow-list and model defaults exist for registry models only)")
    for name, value in data_inputs.items():
        inputs[name] = Mapped(value, "data.train" if name.startswith("train") else "data.validation", RECIPE)
    _target_inputs(spec, inputs)
    problems += _hyperparameters(recipe, inputs, result.notes)
    problems += _task_keys(recipe.task, inputs, result.notes)
    problems += check_inputs(inputs, interface)
    return result, problems


def model_input(name: str) -> tuple[dict[str, Mapped], list[Problem]]:
    if REGISTRY_MODEL.match(name) or name.startswith("azureml:"):
        return {"mlflow_model_path": Mapped({"type": "mlflow_model", "path": name}, "model.name", RECIPE)}, []
    if name.startswith("builtin:") or "/" not in name or name.startswith(("/", ".", "~")):
        return {}, [Problem("model.name", f"{name} is not a model the registry pipeline can import",
                            "use a registry model, e.g. azureml://registries/azureml/models/Phi-3-mini-4k-instruct/"
                            "labels/latest, a workspace model (azureml:<name>:<version>) or a Hugging Face id")]
    return {"huggingface_id": Mapped(name, "model.name", RECIPE)}, []


def check_inputs(inputs: dict[str, Mapped], interface: ComponentInterface) -> list[Problem]:
    problems = [check_value(interface, name, m.value, m.field) for name, m in inputs.items()]
    required = [n for n, spec in interface.inputs.items() if not spec.optional and spec.default is None and n not in inputs]
    problems += [Problem(f"{interface.name} {interface.version}", f"required input {n} has no value",
                         "the registry component changed: pin target.component_version") for n in required]
    return [p for p in problems if p is not None]


def apply_model_defaults(inputs: dict[str, Mapped], defaults: dict[str, Any], interface: ComponentInterface,
                         model: str) -> list[str]:
    """A model's `model_specific_defaults` replace phitune's defaults, never the recipe's explicit values.
    Returns notes for defaults that could not apply."""
    notes = []
    for name, value in defaults.items():
        current = inputs.get(name)
        if current is not None and current.source != PHITUNE_DEFAULT:
            continue
        value = _typed(value, interface.inputs.get(name))
        where = f"model_specific_defaults of {model}"
        if check_value(interface, name, value, where) is not None:
            notes.append(f"{where}: {name}={value!r} does not fit {interface.name} {interface.version}; not applied")
            continue
        inputs[name] = Mapped(value, current.field if current else where, MODEL_DEFAULT)
    return notes


def plain(value: Any) -> Any:
    """A value as written into job.yml: floats as plain decimals ('0.00002', as Microsoft's samples write them)."""
    if isinstance(value, float):
        from decimal import Decimal

        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    return value


# --- the mapping ---------------------------------------------------------------------------------


def _target_inputs(spec, inputs: dict[str, Mapped]) -> None:
    cpu = spec.cpu_compute or spec.compute
    for name, value, where in (("compute_model_import", cpu, "target.cpu_compute" if spec.cpu_compute else "target.compute"),
                               ("compute_preprocess", cpu, "target.cpu_compute" if spec.cpu_compute else "target.compute"),
                               ("compute_finetune", spec.compute, "target.compute"),
                               ("compute_model_evaluation", spec.compute, "target.compute"),
                               ("number_of_gpu_to_use_finetuning", spec.processes_per_instance, "target.processes_per_instance"),
                               ("num_nodes_finetune", spec.instance_count, "target.instance_count")):
        inputs[name] = Mapped(value, where, TARGET)
    if spec.instance_type:
        inputs["instance_type_finetune"] = Mapped(spec.instance_type, "target.instance_type", TARGET)


def _hyperparameters(recipe, inputs: dict[str, Mapped], notes: list[str]) -> list[Problem]:
    train, method, problems = recipe.train, recipe.method, []
    lora = isinstance(method, LoraMethod)
    values: dict[str, tuple[str, Any]] = {
        "num_train_epochs": ("train.epochs", _whole(train.epochs)),
        "per_device_train_batch_size": ("train.batch_size", train.batch_size),
        "gradient_accumulation_steps": ("train.grad_accum", train.grad_accum),
        "learning_rate": ("train.lr", train.lr),
        "lr_scheduler_type": ("train.scheduler", train.scheduler),
        "warmup_steps": ("train.warmup_steps", train.warmup_steps),
        "weight_decay": ("train.weight_decay", train.weight_decay),
        "max_seq_length": ("train.max_seq_len", train.max_seq_len),
        "seed": ("train.seed", train.seed),
        "logging_steps": ("train.log_every", train.log_every),
        "precision": ("model.dtype", "32" if recipe.model.dtype == "float32" else "16"),
        "apply_lora": ("method.type", "true" if lora else "false"),
        "apply_deepspeed": ("train.deepspeed", "true" if train.deepspeed is not None else "false"),
    }
    if train.max_steps is not None:
        values["max_steps"] = ("train.max_steps", train.max_steps)
    if train.max_grad_norm is not None:
        values["max_grad_norm"] = ("train.max_grad_norm", train.max_grad_norm)
    if train.eval_every is not None:
        values["eval_steps"] = ("train.eval_every", train.eval_every)
        inputs["evaluation_strategy"] = Mapped("steps", "train.eval_every", RECIPE)
    if lora:
        values.update({"lora_r": ("method.r", method.r), "lora_alpha": ("method.alpha", _whole(method.alpha)),
                       "lora_dropout": ("method.dropout", method.dropout),
                       "merge_lora_weights": ("output.merge", "true" if recipe.output.merge else "false")})
    deepspeed = train.deepspeed
    if deepspeed is not None and deepspeed.config:
        inputs["deepspeed"] = Mapped({"type": "uri_file", "path": deepspeed.config}, "train.deepspeed.config", RECIPE)
    elif deepspeed is not None:
        values["deepspeed_stage"] = ("train.deepspeed.stage", str(deepspeed.stage))
        if deepspeed.offload_optimizer or deepspeed.offload_params:
            notes.append("train.deepspeed.offload_*: the registry components' own DeepSpeed configs decide offloading "
                         "(ZeRO-2 offloads the optimizer); give train.deepspeed.config to control it")
    for name, (where, value) in values.items():
        inputs[name] = Mapped(value, where, RECIPE if _explicit(recipe, where) else PHITUNE_DEFAULT)
    if train.warmup_ratio:
        problems.append(Problem("train.warmup_ratio", "the registry components take warmup_steps, not a ratio",
                                "set train.warmup_steps instead"))
    if recipe.data.validation_split and not recipe.data.validation:
        notes.append("data.validation_split: the held-out part is split off here and sent as validation_file_path")
    ignored = [f for f, on in (("train.packing", train.packing), ("train.gradient_checkpointing", train.gradient_checkpointing),
                               ("train.group_by_length", train.group_by_length), ("train.save_every", train.save_every))
               if on]
    if ignored:
        notes.append(f"the registry components have no input for {', '.join(ignored)}: their own behaviour applies")
    return problems


def _task_keys(task, inputs: dict[str, Mapped], notes: list[str]) -> list[Problem]:
    def key(name: str, value: str | None, where: str) -> None:
        if value is not None:
            inputs[name] = Mapped(value, where, RECIPE)

    if task.type == "chat":
        if task.messages_key != "messages":
            return [Problem("task.messages_key", "chat_completion_pipeline reads the `messages` key only",
                            "rename the key in the data to `messages`")]
    elif task.type == "completion":
        azure = task.text_key is not None
        key("text_key", task.input_key or task.text_key, "task.text_key" if azure else "task.prompt_key")
        if task.input_key is not None:
            key("ground_truth_key", task.target_key, "task.ground_truth_key" if azure else "task.completion_key")
        if task.learn == "all":
            notes.append("task.learn: all is not sent: text_generation_pipeline has no setting for which tokens are learned")
    elif task.type in ("classification", "ner"):
        if task.head != "classifier":
            return [Problem("task.head", f"{TASK_COMPONENTS[task.type]} trains a classification head",
                            "set task.head: classifier, or target.trainer: phitune for generated labels")]
        for name, value in task.keys().items():
            key(name, value, f"task.{name}")
        if task.labels:
            notes.append("task.labels is not sent: the registry component takes the label set from the data")
    elif task.type == "qa":
        key("question_key", task.question_key, "task.question_key")
        key("context_key", task.context_key, "task.context_key")
        key("answers_key", task.answer_key, "task.answer_key")
        key("answer_start_key", "answer_start", "task.answer_key")
        key("answer_text_key", "text", "task.answer_key")
        notes.append(f"question_answering_pipeline reads SQuAD answers: {task.answer_key} = "
                     '{"text": [...], "answer_start": [...]}')
    else:  # summarization, translation: the keys are named as the component names them
        for name, value in task.keys().items():
            key(name, value, f"task.{name}")
    if getattr(task, "instruction", None):
        notes.append("task.instruction is not sent: the registry components take no instruction")
    return []


def _whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _typed(value: Any, spec) -> Any:
    """model_specific_defaults are written loosely ('3', 2, '2e-5'): convert to the input's type."""
    if spec is None:
        return value
    try:
        if spec.type == "integer" and not isinstance(value, bool):
            return int(float(value))
        if spec.type == "number" and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        return value
    return str(value).lower() if isinstance(value, bool) else (str(value) if spec.type == "string" else value)


def _explicit(recipe, field: str) -> bool:
    """Was `field` written in the recipe (set, or different from phitune's default)?"""
    node, parts = recipe, field.split(".")
    for part in parts:
        if part not in getattr(node, "model_fields_set", ()):
            break
        node = getattr(node, part)
    else:
        return True
    value = recipe
    for part in parts:
        value = getattr(value, part, None)
    if field == "train.deepspeed":
        return value is not None
    if field == "method.type":
        return not isinstance(recipe.method, LoraMethod)
    return value != recipe_default(field)

