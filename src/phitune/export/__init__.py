"""Export a fine-tuned run to ONNX Runtime, verified against PyTorch.

- `phitune.export.onnx_export.export_onnx(run_dir, precision, output)`: merge, build with
  onnxruntime-genai's model builder (generation with KV cache), export a plain logits graph with
  `torch.onnx`, check parity, write `export_report.json`.
- `phitune.export.runtime.OnnxChatModel`: chat with an export (used by `generate --onnx` and `serve`).

Nothing here imports torch, onnxruntime or azure at import time.
"""
