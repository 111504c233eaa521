"""The DeepSpeed engine for a recipe: build it, checkpoint it, and get a normal model back out of it.

- Config: `phitune.distributed.ds_config.deepspeed_config` (the same one `phitune estimate` reads),
  plus `managed_gradient_accumulation: false`: phitune owns the accumulation window (the last one of
  an epoch may be short), so each `engine.step()` is exactly one optimizer step. A multi-process run
  whose recipe has no `train.deepspeed` runs ZeRO stage 0 (plain data parallel).
- Optimizer: the config's AdamW (torch implementation, no JIT build), with phitune's parameter groups
  (no weight decay on biases and norms); lr schedule: phitune's LambdaLR, stepped by the engine on
  every applied step and saved in its checkpoints.
- Checkpoints: checkpoints/step-N/ holds deepspeed/ (the engine's files: every rank writes its ZeRO
  partition; frozen base weights are left out), rng/rank-R.* (each rank's RNG state, since dropout
  draws differ per rank) and trainer_state.json (rank 0, written last). It is assembled in a hidden
  folder and renamed into place, so `--resume` never sees half of one. Like DeepSpeed itself these
  files are torch pickles: they are only ever read back from the run's own folder.
- Outputs: with ZeRO-3 the weights are partitioned, so rank 0 gathers the trainable ones, loads them
  into a freshly built (unpartitioned) model and saves that exactly like a single-process run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

from phitune.errors import Problem, TrainError
from phitune.models.run_dir import CHECKPOINTS
from phitune.distributed import world as dist
from phitune.training.checkpoint import STATE_FILE
from phitune.files import follow_umask, replace_dir

DS_TAG = "deepspeed"
DIGEST_ENV = "PHITUNE_DEBUG_RANK_DIGESTS"


def engine_config(recipe, world_size: int) -> dict:
    from phitune.distributed.ds_config import deepspeed_config

    if recipe.train.deepspeed is None:
        from phitune.recipe.sections import DeepSpeedSpec

        recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"deepspeed": DeepSpeedSpec(stage=0)})})
    config = deepspeed_config(recipe, world_size=world_size, device="gpu" if dist.use_gpu() else "cpu")
    config["managed_gradient_accumulation"] = False
    zero = config.setdefault("zero_optimization", {})
    if int(zero.get("stage", 0)) < 2:
        zero["overlap_comm"] = False  # DeepSpeed allows it only with stage >= 2 when phitune owns accumulation
    return config


def make_engine(model, recipe, world_size: int, total_steps: int):
    """deepspeed.initialize with the recipe's config, optimizer groups and lr schedule."""
    try:
        import deepspeed
    except ImportError:
        raise TrainError("train.deepspeed needs the deepspeed package", [Problem(
            "train.deepspeed", "deepspeed is not installed", "pip install 'phitune[deepspeed]'")]) from None
    from phitune.training.schedule import make_scheduler

    spec = recipe.train
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    config = engine_config(recipe, world_size)
    if int(config.get("zero_optimization", {}).get("stage", 0)) == 3:
        register_container_parameters(model)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=groups, config=config,
                                           lr_scheduler=lambda opt: make_scheduler(opt, spec, total_steps))
    return engine


def register_container_parameters(model) -> int:
    """ZeRO-3 gathers a partitioned parameter just before the forward of the module that owns it. A
    parameter held in an nn.ParameterDict / ParameterList is owned by that container, whose forward
    never runs: its parent reads it directly (PEFT's LoRA on an embedding keeps lora_embedding_A/B
    so, IA3 its scaling vectors). Unregistered, the parent sees an empty partition (LoRA on
    embed_tokens: "Padding_idx must be within num_embeddings"). Registering each such parameter as
    an external parameter of the parent makes ZeRO-3 gather it for the parent's forward. Returns how
    many were registered."""
    import torch
    from deepspeed.runtime.zero.partition_parameters import register_external_parameter

    count = 0
    for parent in model.modules():
        for child in parent.children():
            if isinstance(child, (torch.nn.ParameterDict, torch.nn.ParameterList)):
                for param in child.parameters(recurse=False):
                    register_external_parameter(parent, param)
                    count += 1
    return count


def zero_stage(engine) -> int:
    return int(engine.zero_optimization_stage())


# --- checkpoints -----------------------------------------------------------------------------------


def save_checkpoint(engine, run_dir: Path, step: int, state: dict, rng: dict, world: dist.World) -> Path:
    """Collective: every rank must call it at the same step."""
    root = Path(run_dir) / CHECKPOINTS
    final, partial = root / f"step-{step}", root / f".step-{step}.partial"
    if world.is_main:
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "rng").mkdir(parents=True)
    dist.barrier()
    engine.save_checkpoint(str(partial), tag=DS_TAG, save_latest=False, exclude_frozen_parameters=True)
    _save_rng(partial / "rng", world.rank, rng)
    dist.barrier()
    if world.is_main:
        (partial / STATE_FILE).write_text(json.dumps(state, indent=1))
        follow_umask(partial)
        replace_dir(partial, final)
    dist.barrier()
    return final


def read_checkpoint_state(path: Path, world: dist.World) -> dict:
    """trainer_state.json of a checkpoint this run can resume (written by DeepSpeed on as many ranks)."""
    path = Path(path)
    state = json.loads((path / STATE_FILE).read_text())
    saved_world = state.get("extra", {}).get("world_size")
    if not (path / DS_TAG).is_dir():
        raise TrainError(f"cannot resume {path} with DeepSpeed", [Problem(
            str(path), "it was written by a single-process run without train.deepspeed",
            "resume with the recipe and process count that wrote it")])
    if saved_world != world.size:
        raise TrainError(f"cannot resume {path} with {world.size} process(es)", [Problem(
            str(path), f"it was written by {saved_world} process(es) (ZeRO partitions and the data split depend on it)",
            f"resume with --nproc {saved_world}")])
    return state


def restore_checkpoint(engine, path: Path, world: dist.World) -> dict:
    """Load weights, ZeRO optimizer partitions and the lr schedule into `engine`; return this rank's RNG."""
    path = Path(path)
    load_path, _ = engine.load_checkpoint(str(path), tag=DS_TAG, load_module_strict=False)
    if load_path is None:
        raise TrainError(f"cannot resume from {path}", [Problem(str(path / DS_TAG), "DeepSpeed found no checkpoint there",
                                                                 "start a new run in another --output folder")])
    return _load_rng(path / "rng", world.rank)


def _save_rng(folder: Path, rank: int, rng: dict) -> None:
    """Same content as phitune.training.checkpoint's rng.json + rng_torch.safetensors, one pair per rank."""
    from safetensors.torch import save_file

    cuda = {f"cuda.{i}": t.contiguous() for i, t in enumerate(rng.get("cuda", []))}
    save_file({"torch": rng["torch"].contiguous(), **cuda}, str(folder / f"rank-{rank}.safetensors"))
    py_version, py_state, py_gauss = rng["python"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = rng["numpy"]
    (folder / f"rank-{rank}.json").write_text(json.dumps({
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)]}))


def _load_rng(folder: Path, rank: int) -> dict:
    import numpy as np
    from safetensors.torch import load_file

    raw = json.loads((folder / f"rank-{rank}.json").read_text())
    py_version, py_state, py_gauss = raw["python"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = raw["numpy"]
    tensors = load_file(str(folder / f"rank-{rank}.safetensors"))
    return {"python": (py_version, tuple(py_state), py_gauss),
            "numpy": (np_name, np.array(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_gauss),
            "torch": tensors["torch"],
            "cuda": [tensors[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in tensors))]}


# --- outputs ---------------------------------------------------------------------------------------


def consolidated_model(engine, recipe, world: dist.World):
    """Collective. On rank 0: a plain model holding the trained weights (engine.module itself below
    ZeRO-3); None on other ranks."""
    if zero_stage(engine) < 3:
        return engine.module if world.is_main else None
    state = engine._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=True)
    if not world.is_main:
        return None
    import torch

    from phitune.models.build import load_trainable_model

    rng = random.getstate(), torch.get_rng_state()  # building a model reseeds; keep the run's RNG as it was
    model = load_trainable_model(recipe)
    random.setstate(rng[0])
    torch.set_rng_state(rng[1])
    params = dict(model.named_parameters())
    missing = sorted(n for n, p in params.items() if p.requires_grad and n not in state)
    unknown = sorted(n for n in state if n not in params and n not in dict(model.named_buffers()))
    if missing or unknown:
        raise TrainError("cannot consolidate the ZeRO-3 weights", [Problem(
            "train.deepspeed.stage", f"gathered weights do not match the model (missing {missing[:3]}, unknown {unknown[:3]})",
            "report this; meanwhile train with stage 2")])
    with torch.no_grad():
        for name, tensor in state.items():
            if name in params:
                params[name].copy_(tensor)
    return model


def write_rank_digest(engine, world: dist.World) -> Path | None:
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
