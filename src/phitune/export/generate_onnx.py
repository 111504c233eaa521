"""`phitune generate EXPORT_DIR --onnx --prompt "..."`: stream a chat reply from an ONNX export
through onnxruntime-genai (greedy unless --temperature, as the PyTorch path), token pieces printed as they come."""

from __future__ import annotations

import sys
from typing import TextIO


def generate_onnx(export_dir: str, prompt: str, *, system: str | None = None, max_new_tokens: int = 64,
                  adapter: str | None = None, out: TextIO | None = None, temperature: float = 0.0,
                  seed: int | None = None):
    """Stream the reply to `out` (stdout) and return the finished `Generation`."""
    from phitune.export.runtime import OnnxChatModel

    out = out or sys.stdout
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    model = OnnxChatModel(export_dir)
    if adapter and model.adapters is None:
        from phitune.errors import ExportError, Problem

        raise ExportError("this export has no adapters", [Problem("--adapter", f"{export_dir} is a single merged model",
                                                                   "export with --multi-lora to keep adapters apart")])
    generation = model.chat(messages, max_new_tokens=max_new_tokens, temperature=temperature, adapter=adapter, seed=seed)
    for piece in generation:
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
    return generation
