"""The layout of an export folder written by `phitune export RUN_DIR --onnx`.

EXPORT_DIR/
  genai/                 onnxruntime-genai model: model.onnx (+ .data), genai_config.json, tokenizer
                         files and chat template (the builder's output; `og.Model(EXPORT_DIR/genai)`)
  logits/model.onnx      plain `torch.onnx` graph: (input_ids, attention_mask) -> logits, fp32
  tokenizer/             the run's Hugging Face tokenizer with its chat template
  adapters/NAME.onnx_adapter   multi-LoRA exports only: one file per fine-tune, sharing genai/
  export_report.json     what was exported, the builder-defect check and the parity results (written last)
"""

from __future__ import annotations

from pathlib import Path

GENAI = "genai"
LOGITS = "logits"
TOKENIZER = "tokenizer"
ADAPTERS = "adapters"
REPORT = "export_report.json"
ADAPTER_SUFFIX = ".onnx_adapter"
PRECISIONS = ("fp32", "int8", "int4")

# Fixed chat prompts for the parity check and the benchmark: the same prompts every time, so reports
# from two exports (or two machines) are comparable.
PARITY_PROMPTS = (
    "What is ONNX Runtime?",
    "Review: 'The battery died after two days.' Is this review positive or negative?",
    "Write one sentence about the sea.",
)


def genai_dir(export_dir: str | Path) -> Path:
    """The onnxruntime-genai model folder of an export (or the folder itself if it is one)."""
    path = Path(export_dir)
    if (path / "genai_config.json").is_file():
        return path
    return path / GENAI


def is_export_dir(path: str | Path) -> bool:
    return (genai_dir(path) / "genai_config.json").is_file()


def chat_messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]
