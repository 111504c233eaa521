"""Multi-LoRA export: one base graph, one .onnx_adapter per LoRA run, each verified; served per request."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import train_tiny_run
from phitune.errors import ExportError
from phitune.export.layout import PARITY_PROMPTS, chat_messages
from phitune.export.onnx_export import export_onnx
from phitune.export.runtime import OnnxChatModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def multi_export(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    first = train_tiny_run(runs / "reviews-r8", "lora", r=8, seed=1)
    second = train_tiny_run(runs / "reviews-r4", "lora", r=4, seed=2)  # a different rank shares the graph too
    out, _ = export_onnx(first, "fp32", runs / "multi", multi_lora=True, adapter_runs=[second], progress=False)
    return out


def test_base_once_and_one_verified_file_per_adapter(multi_export):
    assert sorted(p.name for p in (multi_export / "adapters").iterdir()) == \
        ["reviews-r4.onnx_adapter", "reviews-r8.onnx_adapter"]
    assert len(list(multi_export.glob("genai/*.onnx"))) == 1
    report = json.loads((multi_export / "export_report.json").read_text())
    assert report["passed"] is True and report["multi_lora"]["default_adapter"] == "reviews-r8"
    assert {name: a["r"] for name, a in report["multi_lora"]["adapters"].items()} == {"reviews-r8": 8, "reviews-r4": 4}
    checked = {"genai": report["parity"]["genai"], **report["parity"]["adapters"]}
    assert sorted(checked) == ["base", "genai", "reviews-r4"]
    for section in checked.values():
        assert section["enforced"] and section["passed"] and section["max_abs_diff"] <= 1e-4
        assert section["sequences_identical"] == len(PARITY_PROMPTS)


def test_each_adapter_changes_the_shared_base(multi_export):
    model = OnnxChatModel(multi_export)
    ids = model.prompt_ids(chat_messages(PARITY_PROMPTS[1]))
    logits = {name: model.teacher_forced_logits(ids, [], adapter=name) for name in (None, "reviews-r8", "reviews-r4")}
    assert np.abs(logits["reviews-r8"] - logits[None]).max() > 1e-3
    assert np.abs(logits["reviews-r4"] - logits[None]).max() > 1e-3
    assert np.abs(logits["reviews-r8"] - logits["reviews-r4"]).max() > 1e-3
    assert model.resolve_adapter(None) == "reviews-r8" and model.resolve_adapter("base") is None


def test_server_selects_the_adapter_named_by_model(multi_export):
    from phitune.serve.openai_http import make_server

    server = make_server(multi_export, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    try:
        def ask(model: str | None) -> dict:
            body = {"messages": chat_messages(PARITY_PROMPTS[0]), "max_tokens": 12, "temperature": 0}
            if model:
                body["model"] = model
            req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())

        direct = OnnxChatModel(multi_export)
        for name in ("reviews-r8", "reviews-r4", "base"):
            expected = direct.chat(chat_messages(PARITY_PROMPTS[0]), 12, adapter=name).complete().text
            answer = ask(name)
            assert answer["model"] == name and answer["choices"][0]["message"]["content"] == expected
        assert ask(None)["choices"][0]["message"]["content"] == ask("reviews-r8")["choices"][0]["message"]["content"]
        with pytest.raises(urllib.error.HTTPError) as err:
            ask("no-such-adapter")
        assert err.value.code == 404 and json.loads(err.value.read())["error"]["code"] == "model_not_found"
    finally:
        server.shutdown()
        server.server_close()


def test_multi_lora_needs_lora_runs(tiny_model_dir, tmp_path):
    with pytest.raises(ExportError) as err:
        export_onnx(tiny_model_dir, "fp32", tmp_path / "x", multi_lora=True, progress=False)
    assert "multi-LoRA export needs LoRA runs" in str(err.value)
