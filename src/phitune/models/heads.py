"""Classifier heads (`task.head: classifier`): a causal LM's body with a linear `score` head, from
`AutoModelForSequenceClassification` (classification) or `AutoModelForTokenClassification` (NER);
for Phi-3 these are Phi3ForSequenceClassification / Phi3ForTokenClassification.

The head is new (randomly initialised) and always trained: LoRA/DoRA wrap the body with the peft
task type SEQ_CLS / TOKEN_CLS and `modules_to_save=["score"]`, so adapter/ holds the trained head
too and a run reloads for evaluation from base + adapter/. Labels come from `task.labels` (filled
in from the training data by phitune.data.labels.with_task_labels) and are stored in the model
config as id2label, which is what evaluation maps predictions back with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from phitune.errors import ModelError, Problem
from phitune.models import base_of

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe

HEAD_MODULE = "score"
_AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification", "ner": "AutoModelForTokenClassification"}
_PEFT_TASK_TYPES = {"classification": "SEQ_CLS", "ner": "TOKEN_CLS"}


def head_auto_class(task_type: str):
    import transformers

    return getattr(transformers, _AUTO_CLASSES[task_type])


def load_head_base(recipe: "Recipe", **kwargs):
    """The base model with a fresh `score` head sized and labelled from `task.labels`."""
    import torch

    from phitune.models.loader import DTYPES, load_tokenizer, resolve_model_path

    labels = recipe.task.labels
    if not labels:
        raise ModelError("a classifier head needs its label set", [Problem(
            "task.labels", "no labels were given or read from the training data", "list them in task.labels")])
    source = resolve_model_path(recipe.model)
    pad_id = load_tokenizer(recipe.model).pad_token_id
    try:
        model = head_auto_class(recipe.task.type).from_pretrained(
            source, revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code,
            dtype=getattr(torch, DTYPES[recipe.model.dtype]), use_safetensors=True, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
            pad_token_id=pad_id, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load {source} with a classification head", [Problem(
            "task.head", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            "this model family may have no sequence/token-classification class: use task.head: generative")]) from None
    # The pooled position is the last non-padding token, so the model must know the padding id.
    model.config.pad_token_id = pad_id
    return model


def apply_head_method(model, recipe: "Recipe"):
    """`recipe.method` on a head model prepared for training (phitune.models.build), in train mode:
    LoRA/DoRA on the body with the head fully trained, or every weight for method full."""
    from phitune.models.adapters import check_targets, peft_config
    from phitune.models.default_modules import with_architecture_modules

    method = with_architecture_modules(recipe.method, getattr(model.config, "model_type", None))
    config = peft_config(method, tokenizer_path=getattr(model, "name_or_path", None) or None)
    if config is None:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        from peft import TaskType, get_peft_model

        check_targets(model, list(getattr(config, "target_modules", None) or []))
        config.task_type = getattr(TaskType, _PEFT_TASK_TYPES[recipe.task.type])
        config.modules_to_save = [HEAD_MODULE]
        model = get_peft_model(model, config)
    model.train()
    return model


def is_head_model(model) -> bool:
    base = base_of(model)
    name = type(base).__name__
    return name.endswith("ForSequenceClassification") or name.endswith("ForTokenClassification")


def auto_class_for_folder(folder: str | Path):
    """The Auto class that loads a saved model folder: by its config's architecture, so a merged
    classifier-head model loads with its head, anything else as a causal LM."""
    import transformers

    try:
        architectures = json.loads((Path(folder) / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        architectures = []
    name = architectures[0] if architectures else ""
    if name.endswith("ForSequenceClassification"):
        return transformers.AutoModelForSequenceClassification
    if name.endswith("ForTokenClassification"):
        return transformers.AutoModelForTokenClassification
    return transformers.AutoModelForCausalLM
