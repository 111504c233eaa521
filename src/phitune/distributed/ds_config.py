"""Recipe -> DeepSpeed config dict, and the ZeRO settings the memory estimator reads.

`train.deepspeed` either names the ZeRO stage and offloads (we write the whole config), or points at
a DeepSpeed JSON of the user's (we fill its "auto" values from the recipe and refuse values that
contradict it). Both paths give the same `ZeroSettings`, so `phitune estimate` and the launcher can
never disagree about what runs.

Choices, from measurements on this stack (docs/stack-notes.md):
- optimizer AdamW with `torch_adam: true`: no JIT build of fused_adam (~40 s) or cpu_adam (~45 s);
  with offload that needs `zero_force_ds_cpu_optimizer: false`;
- bf16/fp16 only on GPU: DeepSpeed's CPU accelerator trains in fp32;
- explicit bucket sizes (50 M elements instead of DeepSpeed's 500 M): the buckets are per-device
  memory, and the estimator counts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from phitune.errors import Problem, RecipeError

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe

Device = Literal["cpu", "gpu"]
BUCKET_ELEMENTS = 50_000_000
PREFETCH_ELEMENTS = 50_000_000
PERSISTENCE_THRESHOLD = 100_000
MAX_LIVE_PARAMETERS = 1_000_000_000
# DeepSpeed's own defaults, for a user's JSON that leaves them out.
DS_DEFAULT_BUCKET = 500_000_000
DS_DEFAULT_PREFETCH = 50_000_000
WHERE = "train.deepspeed.config"


@dataclass(frozen=True)
class ZeroSettings:
    stage: int
    offload_optimizer: bool
    offload_params: bool
    precision: Literal["fp32", "bf16", "fp16"]
    reduce_bucket: int
    allgather_bucket: int
    prefetch_bucket: int
    max_live_parameters: int


def deepspeed_config(recipe: "Recipe", world_size: int | None = None, device: Device = "cpu") -> dict:
    """The DeepSpeed config for `recipe` (None-free, JSON-serialisable). Raises RecipeError when the
    recipe has no `train.deepspeed` or the user's JSON contradicts the recipe."""
    spec = recipe.train.deepspeed
    if spec is None:
        raise RecipeError("the recipe does not use DeepSpeed", [Problem(
            "train.deepspeed", "is not set", "add `train.deepspeed: {stage: 2}` (or a config: file)")])
    if spec.config is not None:
        return _fill_user_config(load_user_config(spec.config), recipe, world_size, device)
    train = recipe.train
    zero: dict = {"stage": spec.stage, "contiguous_gradients": True, "overlap_comm": False,
                  "reduce_bucket_size": BUCKET_ELEMENTS, "allgather_bucket_size": BUCKET_ELEMENTS}
    if spec.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": device == "gpu"}
    if spec.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": device == "gpu"}
    if spec.stage == 3:
        zero.update({"stage3_prefetch_bucket_size": PREFETCH_ELEMENTS,
                     "stage3_param_persistence_threshold": PERSISTENCE_THRESHOLD,
                     "stage3_max_live_parameters": MAX_LIVE_PARAMETERS,
                     # save_16bit_model / the consolidated save gathers full weights on rank 0
                     "stage3_gather_16bit_weights_on_model_save": True})
    precision = _precision(recipe, device)
    config = {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "gradient_clipping": train.max_grad_norm or 0.0,
        "zero_optimization": zero,
        "optimizer": _optimizer(recipe),
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0},
        "steps_per_print": 10**9,  # phitune logs; DeepSpeed's own progress lines would duplicate it
        "wall_clock_breakdown": False,
    }
    if spec.offload_optimizer or spec.offload_params:
        config["zero_force_ds_cpu_optimizer"] = False  # torch AdamW on the offloaded states
    if world_size is not None:
        config["train_batch_size"] = train.batch_size * train.grad_accum * world_size
    return config


def zero_settings(recipe: "Recipe", device: Device = "cpu") -> ZeroSettings | None:
    """The ZeRO stage, offloads, precision and buffer sizes that will run; None without DeepSpeed."""
    if recipe.train.deepspeed is None:
        return None
    config = deepspeed_config(recipe, device=device)
    zero = config.get("zero_optimization") or {}
    precision = "bf16" if _enabled(config, "bf16") else "fp16" if _enabled(config, "fp16") else "fp32"
    return ZeroSettings(
        stage=int(zero.get("stage", 0)),
        offload_optimizer=_offloaded(zero.get("offload_optimizer")),
        offload_params=_offloaded(zero.get("offload_param")),
        precision=precision,
        reduce_bucket=int(float(zero.get("reduce_bucket_size", DS_DEFAULT_BUCKET))),
        allgather_bucket=int(float(zero.get("allgather_bucket_size", DS_DEFAULT_BUCKET))),
        prefetch_bucket=int(float(zero.get("stage3_prefetch_bucket_size", DS_DEFAULT_PREFETCH))),
        max_live_parameters=int(float(zero.get("stage3_max_live_parameters", MAX_LIVE_PARAMETERS))),
    )


def load_user_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"DeepSpeed config not found: {path}", [Problem(WHERE, f"no such file {path}",
                                                                          "check the path (relative to the recipe)")])
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise RecipeError(f"invalid DeepSpeed JSON {path}", [Problem(f"{path}:{line}" if line else str(path),
                                                                     str(exc))]) from None
    if not isinstance(config, dict):
        raise RecipeError(f"invalid DeepSpeed JSON {path}", [Problem(str(path), "the top level must be an object")])
    return config


# --- helpers ---------------------------------------------------------------------------------------


def _precision(recipe: "Recipe", device: Device) -> str:
    if device == "cpu":
        return "fp32"
    return {"bfloat16": "bf16", "float16": "fp16"}.get(recipe.model.dtype, "fp32")


def _optimizer(recipe: "Recipe") -> dict:
    train = recipe.train
    return {"type": "AdamW", "params": {"lr": train.lr, "betas": [0.9, 0.999], "eps": 1e-8,
                                        "weight_decay": train.weight_decay, "torch_adam": True}}


def _enabled(config: dict, key: str) -> bool:
    section = config.get(key) or {}
    return bool(section.get("enabled")) if isinstance(section, dict) else False


def _offloaded(section) -> bool:
    return isinstance(section, dict) and str(section.get("device", "none")).lower() not in ("none", "")


def _fill_user_config(config: dict, recipe: "Recipe", world_size: int | None, device: Device) -> dict:
    """The user's JSON with "auto" values filled from the recipe; explicit values must agree with it."""
    train, problems = recipe.train, []
    config = json.loads(json.dumps(config))
    wanted = {"train_micro_batch_size_per_gpu": (train.batch_size, "train.batch_size"),
              "gradient_accumulation_steps": (train.grad_accum, "train.grad_accum"),
              "gradient_clipping": (train.max_grad_norm or 0.0, "train.max_grad_norm")}
    if world_size is not None:
        wanted["train_batch_size"] = (train.batch_size * train.grad_accum * world_size,
                                      "train.batch_size x train.grad_accum x processes")
    for key, (value, field) in wanted.items():
        given = config.get(key, "auto")
        if given == "auto":
            config[key] = value
        elif float(given) != float(value):
            problems.append(Problem(f"{WHERE}: {key}", f"is {given} but {field} gives {value}",
                                    f'set it to "auto" (or {value}), or change {field}'))
    if "optimizer" not in config:
        config["optimizer"] = _optimizer(recipe)
    else:
        params = config["optimizer"].setdefault("params", {})
        for key, value in _optimizer(recipe)["params"].items():
            if params.get(key) == "auto":
                params[key] = value
    precision = _precision(recipe, device)
    for key in ("bf16", "fp16"):
        section = config.setdefault(key, {"enabled": "auto"})
        if section.get("enabled") == "auto":
            section["enabled"] = precision == key
        elif section.get("enabled") and device == "cpu":
            problems.append(Problem(f"{WHERE}: {key}.enabled", "DeepSpeed trains in fp32 on CPU",
                                    f'set {key}.enabled to false or "auto"'))
    zero = config.setdefault("zero_optimization", {"stage": 0})
    if not recipe.method.zero3_allowed and int(zero.get("stage", 0)) == 3:
        problems.append(Problem(f"{WHERE}: zero_optimization.stage", "ZeRO-3 cannot partition bitsandbytes weights",
                                f"use stage 2 with method.type: {recipe.method.type}, or method.type: lora"))
    if (_offloaded(zero.get("offload_optimizer")) or _offloaded(zero.get("offload_param"))) \
            and config["optimizer"].get("params", {}).get("torch_adam"):
        config.setdefault("zero_force_ds_cpu_optimizer", False)
    if problems:
        raise RecipeError(f"{WHERE} does not agree with the recipe", problems)
    return config
