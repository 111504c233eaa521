"""Serving an ONNX export: `phitune serve` (OpenAI-compatible chat completions over HTTP)."""
