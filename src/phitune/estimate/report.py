"""The text (and JSON) `phitune estimate` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from phitune.estimate.zero import GB

if TYPE_CHECKING:
    from phitune.estimate.advice import Suggestion
    from phitune.estimate.memory import Estimate, Hardware
    from phitune.estimate.shapes import ModelShape
    from phitune.recipe.schema import Recipe


def as_dict(recipe: "Recipe", shape: "ModelShape", hardware: "Hardware", est: "Estimate", fits: bool,
            max_batch: int | None, suggestions: list["Suggestion"]) -> dict:
    return {
        "model": shape.name, "total_params": shape.total_params, "trainable_params": est.trainable_params,
        "method": recipe.method.type, "precision": est.precision, "zero_stage": est.stage, "devices": est.devices,
        "device": hardware.device, "memory_gb": hardware.memory_bytes / GB, "processes_per_node": hardware.gpus,
        "nodes": hardware.nodes, "micro_batch": est.micro_batch, "seq_len": recipe.train.max_seq_len,
        "per_device_gb": {"weights": est.weights / GB, "gradients": est.gradients / GB,
                          "optimizer": est.optimizer / GB,
                          "activations": None if est.activations is None else est.activations / GB,
                          "deepspeed_buffers": est.buffers / GB, "runtime": est.runtime / GB,
                          "overlap": -est.overlap / GB, "total": est.total / GB},
        "offloaded_to_cpu_gb": est.offloaded / GB, "fits": fits, "max_micro_batch": max_batch,
        "suggestions": [{"set": list(s.overrides), "why": s.why, "total_gb": s.total / GB} for s in suggestions],
        "notes": est.notes,
    }


def render(recipe: "Recipe", shape: "ModelShape", hardware: "Hardware", est: "Estimate", fits: bool,
           max_batch: int | None, suggestions: list["Suggestion"], source: str) -> str:
    lines = [f"phitune estimate: {source}"]
    arch = (f" ({shape.layers} layers, hidden {shape.hidden}, MLP {shape.intermediate}, vocab {shape.vocab})"
            if shape.has_architecture else " (--params: no architecture)")
    lines.append(f"  model        {shape.name}: {_count(shape.total_params)} params{arch}")
    trainable = est.trainable_params
    share = f" ({trainable / shape.total_params:.2%})" if trainable is not None and shape.total_params else ""
    lines.append(f"  method       {_method(recipe)}: {_count(trainable) if trainable is not None else 'unknown'} "
                 f"trainable{share}")
    lines.append(f"  precision    {est.precision}; " + (f"ZeRO stage {est.stage} over {est.devices} devices"
                                                        if recipe.train.deepspeed else "no DeepSpeed"))
    lines.append(f"  device       {_device(hardware)}")
    lines.append(f"  micro-batch  {est.micro_batch} x {recipe.train.max_seq_len} tokens"
                 + (", gradient checkpointing" if recipe.train.gradient_checkpointing else ""))
    lines.append("")
    lines.append("  per device                         GB")
    rows = [("weights", est.weights), ("gradients", est.gradients), ("optimizer states", est.optimizer),
            (f"activations (micro-batch {est.micro_batch})", est.activations)]
    if recipe.train.deepspeed:
        rows.append(("DeepSpeed buffers", est.buffers))
    rows.append(("runtime (framework, context)", est.runtime))
    if est.overlap:
        rows.append(("activations freed as grads fill", -est.overlap))
    for label, value in rows:
        lines.append(f"    {label:<30} {'n/a' if value is None else f'{value / GB:8.3f}'}")
    lines.append(f"    {'total':<30} {est.total / GB:8.3f}")
    if est.offloaded:
        lines.append(f"    {'offloaded to CPU RAM':<30} {est.offloaded / GB:8.3f}")
    lines.append("")
    budget = hardware.budget_per_process
    verdict = "fits" if fits else "does NOT fit"
    lines.append(f"  {verdict}: {est.total / GB:.2f} GB of {budget / GB:.2f} GB per "
                 f"{'process' if hardware.device == 'cpu' else 'GPU'}")
    if max_batch is not None:
        lines.append(f"  largest micro-batch that fits: {max_batch}" if max_batch else
                     "  even a micro-batch of 1 does not fit")
    for note in est.notes:
        lines.append(f"  note: {note}")
    if suggestions:
        lines.append("")
        lines.append("  to make it fit, any one of:" if not fits else "  other settings that fit:")
        for s in suggestions:
            lines.append(f"    {s.command:<70} {s.total / GB:7.2f} GB  {s.why}")
    elif not fits:
        lines.append("  no change found that fits: use more GPUs (--gpus/--nodes with ZeRO-3) or a smaller model")
    return "\n".join(lines)


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def _method(recipe: "Recipe") -> str:
    m = recipe.method
    if m.quantized_base:
        kind = f"{m.quant_type}{' double-quant' if m.double_quant else ''}" if m.bits == 4 else "int8"
        return f"qlora {kind} + {m.adapter} r={m.r}"
    return f"{m.type} r={m.r}" if hasattr(m, "r") else m.type


def _device(hw: "Hardware") -> str:
    if hw.device == "cpu":
        return f"CPU RAM {hw.memory_bytes / GB:.1f} GB shared by {hw.gpus} process{'es' if hw.gpus > 1 else ''}"
    return f"{hw.gpus} x {hw.memory_bytes / GB:g} GB GPU x {hw.nodes} node{'s' if hw.nodes > 1 else ''}"
