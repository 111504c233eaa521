"""Load a base model quantized by bitsandbytes (QLoRA) without ever holding its full-precision weights.

Why not `from_pretrained(path, quantization_config=...)`: transformers 5 memory-maps each safetensors
file and keeps that mapping until loading ends (and, through unquantized tensors that are views of
it, after). Quantizing reads every page of the file, so the whole fp32 checkpoint becomes resident:
on an 814 M-param model QLoRA nf4 peaked at 4.7 GB, above LoRA's 4.1 GB.

Here transformers gets a state dict of lazy slices from `safe_open(..., backend="pread")`: each
tensor is read with pread(2) into its own buffer when transformers loads it, quantized, and freed.
Nothing is mapped, so the resident set holds only the quantized model plus the tensors in flight
(benchmarks/qlora_memory.py measures it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from phitune.compat import set_model_source
from phitune.errors import ModelError, Problem

if TYPE_CHECKING:
    from phitune.recipe.method import QloraMethod
    from phitune.recipe.sections import ModelSpec

WEIGHT_INDEX = "model.safetensors.index.json"
SPEC_ATTRIBUTE = "_phitune_model_spec"  # the ModelSpec a quantized model was loaded from


def loaded_in_kbit(model) -> bool:
    """transformers loaded `model`'s weights in 4 or 8 bits through bitsandbytes."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def quantization_config(method: "QloraMethod", model_dtype: str):
    """The bitsandbytes config for a QLoRA method (compute dtype defaults to model.dtype)."""
    import torch
    from transformers import BitsAndBytesConfig

    if method.bits == 8:
        _log_once("bitsandbytes.autograd._functions", "MatMul8bitLt: inputs will be cast")
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=method.quant_type or "nf4",
        bnb_4bit_use_double_quant=bool(method.double_quant),
        bnb_4bit_compute_dtype=getattr(torch, method.compute_dtype or model_dtype),
    )


def load_quantized_model(spec: "ModelSpec", quantization_config):
    """The causal LM named by `spec`, its linear layers quantized as `quantization_config` says."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, GenerationConfig

    folder = local_model_folder(spec)
    files = safetensors_files(folder)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)
    model_class = causal_lm_class(config, folder, spec.trust_remote_code)
    handles = [safe_open(str(f), framework="pt", device="cpu", backend="pread") for f in files]
    state: dict = {}
    try:
        for handle in handles:
            for key in handle.keys():
                state[key] = handle.get_slice(key)  # lazy: read when transformers asks for it
        model = model_class.from_pretrained(None, config=config, state_dict=state,
                                            dtype=getattr(torch, spec.dtype), quantization_config=quantization_config)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load a quantized model from {folder}",
                         [Problem("model.name", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                                  "check that the folder holds a complete safetensors checkpoint")]) from None
    finally:
        state.clear()
        for handle in handles:
            handle.__exit__(None, None, None)
    set_model_source(model.config, folder)  # where the tokenizer is (prompt tuning init: text)
    setattr(model, SPEC_ATTRIBUTE, spec)  # merging (qlora_model.py) reloads the base in full precision from it
    try:
        model.generation_config = GenerationConfig.from_pretrained(folder)
    except OSError:
        pass  # no generation_config.json: keep the default derived from the config
    return model


def keep_trainable_layout(model) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for its CPU inference kernel.

    On CPUs with AVX512-BF16, a Linear4bit that runs in eval mode without grad (an evaluation during
    training) converts its weight to a packed layout for good, and later training forwards go
    through `gemv_4bit`, which has no autograd kernel: gradients of every earlier layer come out
    wrong (measured: LoRA gradients off by 0.1 after one evaluation). Returns the layers changed.
    """
    import bitsandbytes as bnb

    changed = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def local_model_folder(spec: "ModelSpec") -> Path:
    """A folder with config.json and the safetensors files: built-in, local, or a hub snapshot."""
    from phitune.models.loader import resolve_model_path

    source = resolve_model_path(spec)
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors"] + (["*.py"] if spec.trust_remote_code else [])
        return Path(snapshot_download(repo_id=source, revision=spec.revision, allow_patterns=patterns))
    except Exception as exc:  # hub errors have many types (offline, gated, not found)
        raise ModelError(f"cannot fetch {source} from the Hugging Face hub", [Problem(
            "model.name", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            "offline, use builtin:tiny-phi3 or a local folder")]) from None


def safetensors_files(folder: Path) -> list[Path]:
    """The checkpoint's safetensors shards (from the index when there is one)."""
    folder = Path(folder)
    index = folder / WEIGHT_INDEX
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / n for n in names]
    else:
        files = sorted(folder.glob("*.safetensors"))
    missing = [f.name for f in files if not f.is_file()]
    if not files or missing:
        raise ModelError(f"no safetensors weights in {folder}", [Problem(
            "model.name", f"missing {', '.join(missing)}" if missing else "no *.safetensors file",
            "phitune loads safetensors only: save the model with save_pretrained(safe_serialization=True)")])
    return files


def causal_lm_class(config, folder: Path, trust_remote_code: bool):
    """The concrete `*ForCausalLM` class AutoModelForCausalLM would pick for this config."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    auto_map = getattr(config, "auto_map", None) or {}
    if trust_remote_code and "AutoModelForCausalLM" in auto_map:
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        return get_class_from_dynamic_module(auto_map["AutoModelForCausalLM"], str(folder))
    try:
        found = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:
        raise ModelError(f"{config.model_type} is not a causal language model transformers knows", [Problem(
            "model.name", f"no AutoModelForCausalLM class for model_type {config.model_type!r}",
            "if the model ships its own code, set model.trust_remote_code: true (only for code you trust)")]) from None
    if isinstance(found, (tuple, list)):
        wanted = set(getattr(config, "architectures", None) or [])
        return next((c for c in found if c.__name__ in wanted), found[0])
    return found


class _OnceFilter(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix, self.seen = prefix, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        first, self.seen = not self.seen, True
        return first


def _log_once(logger_name: str, prefix: str) -> None:
    """bitsandbytes logs the same 8-bit cast warning on every forward pass: show it once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _OnceFilter) and f.prefix == prefix for f in logger.filters):
        logger.addFilter(_OnceFilter(prefix))
