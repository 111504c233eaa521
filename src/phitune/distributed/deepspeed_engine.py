"""The DeepSpeed engine for a recipe: build it, save and load its own checkpoint files, and gather
its weights. What a training run does with them (steps, phitune's checkpoint folders, outputs) is
phitune.training.deepspeed_backend; this module knows nothing about training.

- Config: `phitune.distributed.ds_config.deepspeed_config` (the same one `phitune estimate` reads),
  plus `managed_gradient_accumulation: false`: phitune owns the accumulation window (the last one of
  an epoch may be short), so each `engine.step()` is exactly one optimizer step. A multi-process run
  whose recipe has no `train.deepspeed` runs ZeRO stage 0 (plain data parallel).
- Optimizer: the config's AdamW (torch implementation, no JIT build), over the parameter groups and
  with the lr schedule the caller passes (phitune.training.optim, phitune.training.schedule); the
  engine steps the schedule on every applied step and saves it in its checkpoints.
- Engine files: every rank writes its ZeRO partition under `<folder>/deepspeed/` (frozen base
  weights are left out). Like DeepSpeed itself these files are torch pickles: they are only ever
  read back from the run's own folder.
- ZeRO-3 partitions the weights: `consolidated_state_dict` gathers the trainable ones on rank 0.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from phitune.distributed.world import World, use_gpu
from phitune.errors import Problem, TrainError

DS_TAG = "deepspeed"
DIGEST_ENV = "PHITUNE_DEBUG_RANK_DIGESTS"


def engine_config(recipe, world_size: int) -> dict:
    from phitune.distributed.ds_config import deepspeed_config

    if recipe.train.deepspeed is None:
        from phitune.recipe.sections import DeepSpeedSpec

        recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"deepspeed": DeepSpeedSpec(stage=0)})})
    config = deepspeed_config(recipe, world_size=world_size, device="gpu" if use_gpu() else "cpu")
    config["managed_gradient_accumulation"] = False
    zero = config.setdefault("zero_optimization", {})
    if int(zero.get("stage", 0)) < 2:
        zero["overlap_comm"] = False  # DeepSpeed allows it only with stage >= 2 when phitune owns accumulation
    return config


def make_engine(model, recipe, world_size: int, param_groups: list[dict], lr_scheduler: Callable):
    """deepspeed.initialize with the recipe's config, the optimizer's `param_groups` and
    `lr_scheduler(optimizer)` as the lr schedule."""
    try:
        import deepspeed
    except ImportError:
        raise TrainError("train.deepspeed needs the deepspeed package", [Problem(
            "train.deepspeed", "deepspeed is not installed", "pip install 'phitune[deepspeed]'")]) from None
    config = engine_config(recipe, world_size)
    if int(config.get("zero_optimization", {}).get("stage", 0)) == 3:
        register_container_parameters(model)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=param_groups, config=config,
                                           lr_scheduler=lr_scheduler)
    return engine


def register_container_parameters(model) -> int:
    """ZeRO-3 gathers a partitioned parameter just before the forward of the module that owns it. A
    parameter held in an nn.ParameterDict / ParameterList is owned by that container, whose forward
    never runs: its parent reads it directly (PEFT's LoRA on an embedding keeps lora_embedding_A/B
    so, IA3 its scaling vectors). Unregistered, the parent sees an empty partition (LoRA on
    embed_tokens: "Padding_idx must be within num_embeddings"). Registering each such parameter as
    an external parameter of the parent makes ZeRO-3 gather it for the parent's forward. Returns how
    many were registered."""
    import deepspeed
    import torch

    count = 0
    for parent in model.modules():
        for child in parent.children():
            if isinstance(child, (torch.nn.ParameterDict, torch.nn.ParameterList)):
                for param in child.parameters(recurse=False):
                    deepspeed.zero.register_external_parameter(parent, param)
                    count += 1
    return count


def zero_stage(engine) -> int:
    return int(engine.zero_optimization_stage())


def save_engine_files(engine, folder: Path) -> None:
    """Collective: weights, ZeRO optimizer partitions and the lr schedule into `folder`/deepspeed/."""
    engine.save_checkpoint(str(folder), tag=DS_TAG, save_latest=False, exclude_frozen_parameters=True)


def has_engine_files(folder: Path) -> bool:
    return (Path(folder) / DS_TAG).is_dir()


def load_engine_files(engine, folder: Path) -> None:
    """Load what `save_engine_files` wrote into `engine`; TrainError when DeepSpeed finds nothing there."""
    folder = Path(folder)
    load_path, _ = engine.load_checkpoint(str(folder), tag=DS_TAG, load_module_strict=False)
    if load_path is None:
        raise TrainError(f"cannot resume from {folder}", [Problem(str(folder / DS_TAG), "DeepSpeed found no checkpoint there",
                                                                   "start a new run in another --output folder")])


def consolidated_state_dict(engine) -> dict:
    """Collective under ZeRO-3: every trainable weight, gathered from the ranks' partitions, on
    rank 0 (other ranks get an empty dict)."""
    from phitune.compat import deepspeed_zero3_state_dict

    return deepspeed_zero3_state_dict(engine)


def write_rank_digest(engine, world: World) -> Path | None:
    """Diagnostic (only when $PHITUNE_DEBUG_RANK_DIGESTS names a folder): this rank's sha256 of every
    trainable parameter, full ZeRO-3 weights gathered, so tests can check all ranks agree. Collective."""
    folder = os.environ.get(DIGEST_ENV)
    if not folder:
        return None
    import contextlib

    import deepspeed

    named = [(n, p) for n, p in engine.module.named_parameters() if p.requires_grad]
    gather = deepspeed.zero.GatheredParameters([p for _, p in named]) if zero_stage(engine) == 3 else contextlib.nullcontext()
    with gather:
        digests = {n: hashlib.sha256(p.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest() for n, p in named}
    path = Path(folder) / f"rank-{world.rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rank": world.rank, "world_size": world.size, "zero_stage": zero_stage(engine),
                                "params": digests}, indent=1))
    return path
