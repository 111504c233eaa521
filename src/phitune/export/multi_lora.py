"""`phitune export RUN_DIR --onnx --multi-lora [--adapter-run OTHER_RUN ...]`: the base model once
(genai/, LoRA weights as inputs defaulting to zero) and `adapters/NAME.onnx_adapter` per LoRA run.

Each adapter is verified against PyTorch (base + that adapter, merged); the base alone (no adapter
active) is verified against the base model. The first run's adapter is the export's default.
"""

from __future__ import annotations

import json
from pathlib import Path

from phitune.errors import ExportError, Problem
from phitune.export import layout


def export_multi_lora(source, extra_sources, precision, out: Path, atol, max_new_tokens, prompts, progress) -> dict:
    from safetensors.torch import save_file

    from phitune.export import parity
    from phitune.export.builder_defect import check_collisions, pad_mlp_state_dict, padded_model
    from phitune.export.genai_build import lora_exclude_nodes, run_builder
    from phitune.export.lora_adapters import adapter_tensors, check_compatible, make_adapter_inputs, write_adapter
    from phitune.export.export_report import Steps, build_report, keep_builder_log
    from phitune.export.runtime import BASE, OnnxChatModel
    from phitune.export.source import load_base_and_adapter
    from phitune.export.torch_graph import export_logits_graph, logits_session
    from phitune.models.run_dir import TOKENIZER

    sources = [source, *extra_sources]
    names = [s.name for s in sources]
    if len(set(names)) != len(names) or BASE in names:
        raise ExportError("adapter names must be unique", [Problem("--adapter-run", f"run folder names {names}",
                                                                   f"give each run a distinct folder name (not {BASE!r})")])
    _check_same_base(sources)
    steps = Steps(["load", "builder", "adapters", "torch.onnx", "parity"], progress)
    try:
        steps.start("load")
        base, state, adapter_config = load_base_and_adapter(source)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source.path / TOKENIZER)
        collisions, padded = check_collisions(base)
        width = int(base.config.intermediate_size)
        wide = padded_model(base, padded) if padded else base
        work = out / ".work"
        wide.save_pretrained(work / "base", safe_serialization=True)
        tokenizer.save_pretrained(work / "base")
        tokenizer.save_pretrained(out / layout.TOKENIZER)
        (work / "adapter").mkdir(parents=True)
        (work / "adapter" / "adapter_config.json").write_text(json.dumps(adapter_config))
        primary_state = pad_mlp_state_dict(state, width, padded) if padded else state
        save_file(primary_state, str(work / "adapter" / "adapter_model.safetensors"))

        steps.start("builder")
        expected = adapter_tensors(primary_state, adapter_config, wide.config)
        exclude = lora_exclude_nodes(sorted(expected)) if precision != "fp32" else None
        run_builder(work / "base", out / layout.GENAI, precision, work / "hf-cache", work / "builder.log",
                    adapter_dir=work / "adapter", exclude_nodes=exclude)
        keep_builder_log(out)
        lora_inputs = make_adapter_inputs(out / layout.GENAI / "model.onnx", expected)

        steps.start("adapters")
        runs = {}  # name -> (adapter state dict (unpadded), adapter config)
        for src in sources:
            s, cfg = (state, adapter_config) if src is source else _adapter_of(src)
            check_compatible(adapter_config, cfg, src.name)
            runs[src.name] = (s, cfg)
            tensors = adapter_tensors(pad_mlp_state_dict(s, width, padded) if padded else s, cfg, wide.config)
            write_adapter(tensors, out / layout.ADAPTERS / f"{src.name}{layout.ADAPTER_SUFFIX}")
        del wide

        steps.start("torch.onnx")
        merged = _merged(base, *runs[source.name])
        example = tokenizer.apply_chat_template(layout.chat_messages(prompts[0]), add_generation_prompt=True,
                                                tokenize=True, return_dict=True)["input_ids"]
        graph_path = export_logits_graph(merged, list(example), out / layout.LOGITS)

        steps.start("parity")
        chat_model = OnnxChatModel(out)
        eos = sorted(chat_model.eos)
        enforce = precision == "fp32"
        refs = parity.pytorch_references(merged, tokenizer, prompts, max_new_tokens, eos)
        checks = {"logits_graph": {"precision": "fp32", **parity.compare_logits_graph(logits_session(graph_path), refs, atol)},
                  "genai": {"precision": precision, **parity.compare_genai(chat_model, refs, max_new_tokens, source.name,
                                                                            enforce, atol)},
                  "adapters": {}}
        del merged
        base_refs = parity.pytorch_references(base, tokenizer, prompts, max_new_tokens, eos)
        checks["adapters"][BASE] = parity.compare_genai(chat_model, base_refs, max_new_tokens, None, enforce, atol)
        for name, (s, cfg) in runs.items():
            if name == source.name:
                continue
            merged = _merged(base, s, cfg)
            refs = parity.pytorch_references(merged, tokenizer, prompts, max_new_tokens, eos)
            checks["adapters"][name] = parity.compare_genai(chat_model, refs, max_new_tokens, name, enforce, atol)
            del merged
        del chat_model
    finally:
        steps.close()
    extra = {"multi_lora": {
        "default_adapter": source.name,
        "adapters": {s.name: {"file": f"{layout.ADAPTERS}/{s.name}{layout.ADAPTER_SUFFIX}", "run": str(s.path),
                              "r": runs[s.name][1]["r"], "recipe_hash": s.recipe_hash} for s in sources},
        "lora_inputs": len(lora_inputs),
        "note": "no active adapter = the base model; select one per request (serve: model=NAME, generate: --adapter NAME)",
    }}
    return build_report(source, precision, checks, collisions, padded, base.config, steps.timings, max_new_tokens, extra)


def _adapter_of(src):
    from safetensors.torch import load_file

    if not src.has_separable_lora:
        raise ExportError("multi-LoRA export needs LoRA runs",
                          [Problem(str(src.path), f"method {src.method!r} has no separable LoRA adapter")])
    cfg = json.loads((src.adapter_dir / "adapter_config.json").read_text())
    return load_file(src.adapter_dir / "adapter_model.safetensors"), cfg


def _merged(base, state: dict, adapter_config: dict):
    """A copy of `base` with this LoRA folded in (the PyTorch reference for that adapter)."""
    import copy

    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    keys = {"r", "lora_alpha", "target_modules", "use_rslora", "bias", "fan_in_fan_out", "modules_to_save"}
    config = LoraConfig(**{k: v for k, v in adapter_config.items() if k in keys and v is not None}, lora_dropout=0.0)
    peft_model = get_peft_model(copy.deepcopy(base), config)
    result = set_peft_model_state_dict(peft_model, state)
    if result.unexpected_keys:
        raise ExportError("adapter weights do not fit the base model",
                          [Problem("adapter_model.safetensors", f"unexpected keys {result.unexpected_keys[:3]}")])
    return peft_model.merge_and_unload().eval()


def _check_same_base(sources) -> None:
    bases = {s.base_model for s in sources}
    if len(bases) > 1:
        raise ExportError("multi-LoRA runs must share one base model",
                          [Problem(str(s.path), f"model.name {s.base_model}") for s in sources])
