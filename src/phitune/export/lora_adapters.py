"""Multi-LoRA: one base graph, one `.onnx_adapter` file per fine-tune (what Olive's adapter extraction
produces), so several fine-tunes of one base share it on a device.

The genai builder, given a PEFT adapter, writes each LoRA as two MatMuls beside the base MatMul
(`model.layers.N.attn.q_proj.lora_A.MatMul.weight`, `...lora_B...`, lora_B pre-scaled by alpha/r,
Phi-3's fused qkv_proj/gate_up_proj split like the base weights). Here those initializers become graph
inputs whose defaults are zeros (no adapter active = the base model), and each run's PEFT weights are
mapped to the same names and written with onnxruntime's AdapterFormat. The mapping is checked against
the builder's own initializers for the first adapter, and every adapter is then checked for parity.
"""

from __future__ import annotations

from pathlib import Path

from phitune.errors import ExportError, Problem

_BLOCKS = {"self_attn": "attn", "mlp": "mlp"}


def adapter_tensors(state: dict, adapter_config: dict, model_config) -> dict:
    """PEFT LoRA weights -> {onnx initializer name: float32 numpy array} in the builder's layout."""
    r = int(adapter_config["r"])
    alpha = float(adapter_config["lora_alpha"])
    scaling = alpha / (r ** 0.5) if adapter_config.get("use_rslora") else alpha / r
    if (adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern") or adapter_config.get("use_dora")
            or adapter_config.get("modules_to_save") or adapter_config.get("bias", "none") != "none"):
        raise ExportError("unsupported LoRA variant for multi-LoRA export",
                          [Problem("adapter_config.json", "rank_pattern, alpha_pattern, DoRA, biases and modules_to_save are not separable",
                                   "export without --multi-lora (the adapter is merged)")])
    heads = int(model_config.num_attention_heads)
    kv_heads = int(getattr(model_config, "num_key_value_heads", None) or heads)
    head_dim = getattr(model_config, "head_dim", None) or model_config.hidden_size // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    width = int(model_config.intermediate_size)
    out = {}
    for key, a in state.items():
        if ".lora_A." not in key:
            continue
        b = state[key.replace(".lora_A.", ".lora_B.")].float() * scaling
        layer, block, module = _locate(key)
        if module == "qkv_proj":
            parts = {"q_proj": b[:q], "k_proj": b[q:q + kv], "v_proj": b[q + kv:]}
        elif module == "gate_up_proj":
            parts = {"gate_proj": b[:width], "up_proj": b[width:]}
        else:
            parts = {module: b}
        for proj, part in parts.items():
            stem = f"model.layers.{layer}.{_BLOCKS[block]}.{proj}"
            out[f"{stem}.lora_A.MatMul.weight"] = a.float().T.contiguous().numpy()
            out[f"{stem}.lora_B.MatMul.weight"] = part.T.contiguous().numpy()
    if not out:
        raise ExportError("no LoRA weights found", [Problem("adapter_model.safetensors", "no lora_A tensors")])
    return out


def make_adapter_inputs(model_path: Path, expected: dict, atol: float = 1e-6) -> list[str]:
    """Turn the builder's LoRA initializers into graph inputs with zero defaults, after checking that
    `expected` (our mapping of the adapter the builder was given) equals what the builder wrote."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(model_path))
    graph = graph_model.graph
    lora = {init.name: init for init in graph.initializer if ".lora_A." in init.name or ".lora_B." in init.name}
    if sorted(lora) != sorted(expected):
        missing, extra = sorted(set(expected) - set(lora)), sorted(set(lora) - set(expected))
        raise ExportError("the built graph's LoRA weights do not match the adapter",
                          [Problem(str(model_path), f"missing {missing[:4]}, unexpected {extra[:4]}",
                                   "the builder may have quantized or renamed the LoRA MatMuls")])
    worst = 0.0
    for name, init in lora.items():
        built = numpy_helper.to_array(init, base_dir=str(model_path.parent))
        worst = max(worst, float(np.abs(built - expected[name]).max()))
        dims = [built.shape[0], "lora_rank"] if ".lora_A." in name else ["lora_rank", built.shape[1]]
        init.CopyFrom(numpy_helper.from_array(np.zeros_like(built), name))
        graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
    if worst > atol:
        raise ExportError("LoRA weight mapping disagrees with the builder",
                          [Problem(str(model_path), f"max abs difference {worst:.3g} > {atol}")])
    data = model_path.with_name(model_path.name + ".data")
    data.unlink(missing_ok=True)  # onnx appends to an existing external data file
    onnx.save_model(graph_model, str(model_path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)
    return sorted(lora)


def write_adapter(tensors: dict, path: Path) -> Path:
    import onnxruntime as ort

    path.parent.mkdir(parents=True, exist_ok=True)
    keep = {name: value for name, value in tensors.items()}  # OrtValues below do not own this memory
    fmt = ort.AdapterFormat()
    fmt.set_adapter_version(1)
    fmt.set_model_version(1)
    fmt.set_parameters({name: ort.OrtValue.ortvalue_from_numpy(value) for name, value in keep.items()})
    fmt.export_adapter(str(path))
    del keep
    return path


def check_compatible(primary: dict, other: dict, name: str) -> None:
    """Adapters sharing one graph need the same target modules (ranks may differ)."""
    want, got = set(primary["target_modules"]), set(other["target_modules"])
    if want != got:
        raise ExportError("adapters target different modules",
                          [Problem(f"{name}/adapter_config.json", f"targets {sorted(got)}, the first run targets {sorted(want)}",
                                   "multi-LoRA runs must adapt the same modules of the same base model")])


def _locate(key: str) -> tuple[int, str, str]:
    # base_model.model.model.layers.3.self_attn.qkv_proj.lora_A.weight
    parts = key.split(".")
    try:
        i = parts.index("layers")
        layer, block, module = int(parts[i + 1]), parts[i + 2], parts[i + 3]
    except (ValueError, IndexError):
        raise ExportError("unexpected LoRA weight name", [Problem(key, "expected ...layers.N.<block>.<module>.lora_A...")]) from None
    if block not in _BLOCKS:
        raise ExportError("unsupported LoRA target", [Problem(key, f"block {block!r} is not self_attn or mlp")])
    return layer, block, module
