"""Run onnxruntime-genai's model builder (ONNX decoder with KV cache + genai_config.json + tokenizer).

The builder runs as `python -m onnxruntime_genai.models.builder` in a child process: it is a script
(it edits sys.path and prints a lot), and a child returns its memory when it finishes. Its output goes
to a log file next to the export; a failure shows the log's tail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from phitune.errors import ExportError, Problem

BUILDER_MODULE = "onnxruntime_genai.models.builder"


def run_builder(
    model_dir: Path,
    out_dir: Path,
    precision: str,
    cache_dir: Path,
    log_path: Path,
    adapter_dir: Path | None = None,
    exclude_nodes: list[str] | None = None,
) -> Path:
    """Build `out_dir` from a Hugging Face model folder; `precision` is fp32, int8 or int4 (CPU)."""
    extra = []
    if adapter_dir is not None:
        extra.append(f"adapter_path={adapter_dir}")
    if exclude_nodes:
        # Keep these MatMuls in float: LoRA weights must stay replaceable by adapter files.
        extra.append("nodes_to_exclude=" + ",".join(exclude_nodes))
    cmd = [sys.executable, "-m", BUILDER_MODULE, "-i", str(model_dir), "-o", str(out_dir),
           "-p", precision, "-e", "cpu", "-c", str(cache_dir)]
    if extra:
        cmd += ["--extra_options", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0 or not (out_dir / "genai_config.json").is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-12:]
        raise ExportError(
            f"onnxruntime-genai's model builder failed (exit {proc.returncode})",
            [Problem(str(log_path), " | ".join(line.strip() for line in tail if line.strip())[-1500:],
                     "see the full builder log; the builder supports Phi, Llama, Mistral, Qwen, Gemma... decoders")],
        )
    return out_dir


def lora_exclude_nodes(initializer_names: list[str]) -> list[str]:
    """Builder node names of the LoRA MatMuls whose weights are `initializer_names`
    (`model.layers.0.attn.q_proj.lora_A.MatMul.weight` -> `/model/layers.0/attn/q_proj/lora_A/MatMul`)."""
    nodes = []
    for name in initializer_names:
        parts = name.removesuffix(".MatMul.weight").split(".")
        # parts: model, layers, N, block, proj, lora_X
        nodes.append(f"/{parts[0]}/{parts[1]}.{parts[2]}/" + "/".join(parts[3:]) + "/MatMul")
    return nodes
