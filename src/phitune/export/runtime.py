"""Chat with an export through onnxruntime-genai (no torch): `phitune generate --onnx`, `phitune serve`
and the benchmark all go through `OnnxChatModel`.

A multi-LoRA export loads every `adapters/*.onnx_adapter` once; each generation picks one (or none,
for the shared base model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from phitune.errors import ExportError, Problem
from phitune.export import layout

BASE = "base"  # adapter name meaning "no adapter: the shared base model"


@dataclass
class Generation:
    """One streamed completion: iterate for text pieces; counts are final once iteration ends."""

    pieces: Iterator[str]
    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    text: str = ""

    def __iter__(self) -> Iterator[str]:
        for piece in self.pieces:
            self.text += piece
            yield piece

    def complete(self) -> "Generation":
        for _ in self:
            pass
        return self

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


class OnnxChatModel:
    def __init__(self, export_dir: str | Path, threads: int | None = None):
        """threads: ONNX Runtime intra-op threads (default: ONNX Runtime's choice, one per core)."""
        import onnxruntime_genai as og

        self._og = og
        root = Path(export_dir)
        from phitune.models.run_dir import require_finished_run

        require_finished_run(root, ExportError)  # a run folder given here must at least be finished
        folder = layout.genai_dir(root)
        if not (folder / "genai_config.json").is_file():
            raise ExportError(
                f"{root} is not an ONNX export",
                [Problem(str(root), "no genai/genai_config.json", "create one with `phitune export RUN_DIR --onnx`")],
            )
        report_path = (folder.parent if folder.name == layout.GENAI else folder) / layout.REPORT
        self.report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        self.name = self.report.get("name") or root.resolve().name
        config = og.Config(str(folder))
        if threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": int(threads), "inter_op_num_threads": 1}}}}))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        self.eos = {int(t) for t in self.tokenizer.eos_token_ids}
        self.context_length = json.loads((folder / "genai_config.json").read_text())["model"]["context_length"]
        adapter_dir = folder.parent / layout.ADAPTERS
        self.adapter_names = sorted(p.name.removesuffix(layout.ADAPTER_SUFFIX)
                                    for p in adapter_dir.glob(f"*{layout.ADAPTER_SUFFIX}")) if adapter_dir.is_dir() else []
        self.adapters = None
        if self.adapter_names:
            self.adapters = og.Adapters(self.model)
            for name in self.adapter_names:
                self.adapters.load(str(adapter_dir / f"{name}{layout.ADAPTER_SUFFIX}"), name)
        self.default_adapter = self.report.get("multi_lora", {}).get("default_adapter") if self.adapters else None

    def resolve_adapter(self, adapter: str | None) -> str | None:
        """The adapter to activate for a requested name. A single-model export is the model whatever the
        name (as an Azure serverless endpoint ignores `model`). Multi-LoRA: None or the export's name -> its
        default adapter, `base` -> no adapter, else one of its adapters."""
        if self.adapters is None:
            return None
        if adapter is None or adapter == self.name:
            return self.default_adapter
        if adapter == BASE:
            return None
        if adapter in self.adapter_names:
            return adapter
        raise ExportError(f"no adapter {adapter!r} in this export",
                          [Problem("adapter", f"available: {', '.join([BASE, *self.adapter_names])}")])

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        return [int(t) for t in self.tokenizer.encode(text)]

    def generator(self, prompt_len: int, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                  adapter: str | None = None, seed: int | None = None, min_new_tokens: int = 0):
        """A fresh og.Generator (greedy when temperature is 0), with the adapter made active."""
        og = self._og
        limit = prompt_len + max_new_tokens
        if limit > self.context_length:
            raise ExportError("prompt too long", [Problem("messages", f"{prompt_len} prompt tokens + {max_new_tokens} new "
                                                                     f"exceed the context length {self.context_length}")])
        options: dict = {"max_length": limit, "min_length": prompt_len + min_new_tokens}
        if temperature > 0:
            options.update(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0)
            if seed is not None:
                options["random_seed"] = int(seed)
        else:
            options["do_sample"] = False
        params = og.GeneratorParams(self.model)
        params.set_search_options(**options)
        gen = og.Generator(self.model, params)
        if adapter is not None:
            gen.set_active_adapter(self.adapters, adapter)
        return gen

    def chat(self, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
             adapter: str | None = None, seed: int | None = None) -> Generation:
        ids = self.prompt_ids(messages)
        active = self.resolve_adapter(adapter)
        gen = self.generator(len(ids), max_new_tokens, temperature, top_p, active, seed)
        result = Generation(iter(()), prompt_tokens=len(ids))
        result.pieces = self._pieces(gen, ids, result)
        return result

    def _pieces(self, gen, ids: list[int], result: Generation) -> Iterator[str]:
        stream = self.tokenizer.create_stream()
        gen.append_tokens(ids)
        while not gen.is_done():
            gen.generate_next_token()
            token = int(gen.get_next_tokens()[0])
            result.tokens.append(token)
            if token in self.eos:
                break
            piece = stream.decode(token)
            if piece:
                yield piece
        result.finish_reason = "stop" if result.tokens and result.tokens[-1] in self.eos else "length"

    def greedy_tokens(self, ids: list[int], max_new_tokens: int, adapter: str | None = None,
                      min_new_tokens: int = 0) -> list[int]:
        """Greedy continuation of raw token ids (for parity and benchmarks); includes a final EOS."""
        gen = self.generator(len(ids), max_new_tokens, adapter=adapter, min_new_tokens=min_new_tokens)
        gen.append_tokens(ids)
        out: list[int] = []
        while not gen.is_done():
            gen.generate_next_token()
            out.append(int(gen.get_next_tokens()[0]))
        return out

    def teacher_forced_logits(self, ids: list[int], continuation: list[int], adapter: str | None = None):
        """Logits for every position of ids + continuation[:-1], fed through the KV cache the way
        generation feeds it: the prompt at once, then one token at a time. Shape (positions, vocab)."""
        import numpy as np

        gen = self.generator(len(ids), max(1, len(continuation)) + 1, adapter=adapter)
        gen.append_tokens(ids)
        rows = [gen.get_output("logits")[0]]
        for token in continuation[:-1]:
            gen.append_tokens([token])
            rows.append(gen.get_output("logits")[0])
        return np.concatenate(rows, axis=0)
