"""Recipe -> DeepSpeed config: the fields DeepSpeed reads, the user's JSON with "auto" values, and
the ZeRO settings the estimator sees."""

from __future__ import annotations

import json
import os

import pytest

from phitune.distributed.ds_config import BUCKET_ELEMENTS, deepspeed_config, zero_settings
from phitune.errors import RecipeError
from phitune.recipe import load_recipe


def recipe(*overrides: str, model_dtype: str = "bfloat16"):
    return load_recipe({"data": {"train": "t.jsonl"}, "model": {"name": "builtin:tiny-phi3", "dtype": model_dtype},
                        "train": {"batch_size": 4, "grad_accum": 8, "lr": 1e-4, "weight_decay": 0.1}}, list(overrides))


def test_stage_and_offloads_become_the_zero_section_with_torch_adam():
    cfg = deepspeed_config(recipe("train.deepspeed.stage=2", "train.deepspeed.offload_optimizer=true"), world_size=4)
    assert cfg["train_micro_batch_size_per_gpu"] == 4 and cfg["gradient_accumulation_steps"] == 8
    assert cfg["train_batch_size"] == 4 * 8 * 4
    assert cfg["zero_optimization"]["stage"] == 2
    assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert "offload_param" not in cfg["zero_optimization"]
    assert cfg["optimizer"] == {"type": "AdamW", "params": {"lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8,
                                                            "weight_decay": 0.1, "torch_adam": True}}
    assert cfg["zero_force_ds_cpu_optimizer"] is False  # torch AdamW on offloaded states
    assert cfg["gradient_clipping"] == 1.0
    json.dumps(cfg)  # serialisable as the launcher's --deepspeed_config file


def test_precision_is_fp32_on_cpu_and_follows_model_dtype_on_gpu():
    r = recipe("train.deepspeed.stage=1")
    assert not deepspeed_config(r, device="cpu")["bf16"]["enabled"]
    assert not deepspeed_config(r, device="cpu")["fp16"]["enabled"]
    assert deepspeed_config(r, device="gpu")["bf16"]["enabled"]
    assert deepspeed_config(recipe("train.deepspeed.stage=1", model_dtype="float16"), device="gpu")["fp16"]["enabled"]
    assert zero_settings(r, device="gpu").precision == "bf16" and zero_settings(r).precision == "fp32"
    assert zero_settings(recipe()) is None


def test_stage_3_zero_section_is_valid_for_deepspeed():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    cfg = deepspeed_config(recipe("train.deepspeed.stage=3", "train.deepspeed.offload_params=true",
                                  "train.deepspeed.offload_optimizer=true"))
    zero = DeepSpeedZeroConfig(**cfg["zero_optimization"])  # rejects unknown or mistyped keys
    assert zero.stage == 3 and zero.offload_param.device == "cpu" and zero.offload_optimizer.device == "cpu"
    assert zero.reduce_bucket_size == BUCKET_ELEMENTS and zero.gather_16bit_weights_on_model_save


def test_user_json_auto_values_are_filled_and_contradictions_name_both_sides(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
                                "zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}},
                                "optimizer": {"type": "AdamW", "params": {"lr": "auto", "torch_adam": True}},
                                "bf16": {"enabled": "auto"}}))
    r = recipe(f"train.deepspeed.config={path}")
    cfg = deepspeed_config(r, world_size=2)
    assert cfg["train_micro_batch_size_per_gpu"] == 4 and cfg["gradient_accumulation_steps"] == 8
    assert cfg["optimizer"]["params"]["lr"] == 1e-4 and cfg["bf16"]["enabled"] is False
    assert cfg["zero_force_ds_cpu_optimizer"] is False
    settings = zero_settings(r)
    assert (settings.stage, settings.offload_params, settings.offload_optimizer) == (3, True, False)

    path.write_text(json.dumps({"train_micro_batch_size_per_gpu": 16, "bf16": {"enabled": True},
                                "zero_optimization": {"stage": 3}}))
    with pytest.raises(RecipeError) as info:
        deepspeed_config(recipe(f"train.deepspeed.config={path}"))
    text = str(info.value)
    assert "train.deepspeed.config: train_micro_batch_size_per_gpu: is 16 but train.batch_size gives 4" in text
    assert "train.deepspeed.config: bf16.enabled: DeepSpeed trains in fp32 on CPU" in text
    with pytest.raises(RecipeError, match="ZeRO-3 cannot partition bitsandbytes weights"):
        deepspeed_config(recipe(f"train.deepspeed.config={path}", "method.type=qlora"), device="gpu")


def test_missing_or_broken_user_json_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="train.deepspeed.config: no such file"):
        deepspeed_config(recipe(f"train.deepspeed.config={tmp_path / 'nope.json'}"))
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  'stage': 2\n}")
    with pytest.raises(RecipeError, match=r"bad.json:2"):
        deepspeed_config(recipe(f"train.deepspeed.config={bad}"))
    with pytest.raises(RecipeError, match="train.deepspeed: is not set"):
        deepspeed_config(recipe())
