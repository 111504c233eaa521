"""`phitune export RUN_DIR --onnx` on real runs (LoRA and full fine-tune, trained for a few steps):
files, parity against PyTorch, int4 reporting, the builder defect, and refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli, train_tiny_run
from phitune.errors import ExportError
from phitune.export.layout import PARITY_PROMPTS, chat_messages
from phitune.export.onnx_export import export_onnx
from phitune.export.runtime import OnnxChatModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("runs") / "lora-run", "lora")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("runs") / "full-run", "full")


def _prompt_logits(chat_model: OnnxChatModel, prompt: str) -> np.ndarray:
    ids = chat_model.prompt_ids(chat_messages(prompt))
    return chat_model.teacher_forced_logits(ids, [])


def test_cli_exports_a_lora_run_with_fp32_parity(lora_run, tiny_model_dir, tmp_path):
    out = tmp_path / "lora-fp32"
    result = run_cli("export", str(lora_run), "--onnx", "--output", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "genai" in result.stdout and "ok" in result.stdout

    for rel in ("genai/model.onnx", "genai/model.onnx.data", "genai/genai_config.json", "genai/tokenizer.json",
                "genai/chat_template.jinja", "logits/model.onnx", "tokenizer/tokenizer.json", "export_report.json"):
        assert (out / rel).is_file(), rel
    report = json.loads((out / "export_report.json").read_text())
    assert report["source"]["kind"] == "adapter" and report["source"]["method"] == "lora"
    assert report["precision"] == "fp32" and report["passed"] is True
    genai, graph = report["parity"]["genai"], report["parity"]["logits_graph"]
    assert genai["enforced"] and genai["max_abs_diff"] <= 1e-4
    assert genai["sequences_identical"] == len(PARITY_PROMPTS) == genai["prompts"] and genai["tokenizer_match"]
    assert graph["enforced"] and graph["max_abs_diff"] <= 1e-4
    assert all(p["reference_tokens"] == p["onnx_tokens"] for p in genai["per_prompt"])

    # The export is the fine-tuned model, not the base: the trained adapter moved the logits.
    from transformers import AutoModelForCausalLM

    chat_model = OnnxChatModel(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = chat_model.prompt_ids(chat_messages(PARITY_PROMPTS[0]))
    with torch.no_grad():
        base_logits = base(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(_prompt_logits(chat_model, PARITY_PROMPTS[0]) - base_logits).max() > 1e-2


def test_full_finetune_exports_int4_and_reports_agreement(full_run, tmp_path):
    out, report = export_onnx(full_run, "int4", tmp_path / "full-int4", progress=False)
    assert report["source"]["kind"] == "full"
    genai = report["parity"]["genai"]
    assert genai["precision"] == "int4" and genai["enforced"] is False and genai["passed"] is None
    assert 0.0 <= genai["token_agreement"] <= 1.0 and len(genai["per_prompt"]) == len(PARITY_PROMPTS)
    assert 0.0 < genai["max_abs_diff"] < 5.0  # 4-bit weights change the logits, but not into noise
    assert report["parity"]["logits_graph"]["passed"] is True  # the plain graph stays fp32
    # in words: int4 is not comparable by design (and why), the fp32 graph passed
    assert genai["verdict"] == "not comparable" and "by design" in genai["why"]
    assert report["parity"]["logits_graph"]["verdict"] == "passed"
    card = (out / "README.md").read_text()  # the export travels with its model card
    assert "library_name: onnxruntime-genai" in card and "ONNX export (int4)" in card and "**not comparable**" in card
    import onnx

    graph = onnx.load(str(out / "genai" / "model.onnx"), load_external_data=False)
    assert "MatMulNBits" in {node.op_type for node in graph.graph.node}  # really 4-bit weights
    assert report["passed"] is True


def test_builder_defect_is_detected_and_avoided(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoTokenizer, Phi3ForCausalLM

    # A Phi-3 whose MLP width equals its vocabulary: the builder would take gate_proj for the LM head.
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.intermediate_size = config.vocab_size
    torch.manual_seed(0)
    model = Phi3ForCausalLM(config).eval()
    colliding = tmp_path / "colliding"
    model.save_pretrained(colliding)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(colliding)
    ids = AutoTokenizer.from_pretrained(tiny_model_dir)("The sea was calm today.")["input_ids"]
    with torch.no_grad():
        reference = model(torch.tensor([ids])).logits[0].numpy()

    # Unprotected, the builder's model is wrong (this is the defect phitune guards against)...
    raw = tmp_path / "raw-builder"
    subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(colliding), "-o", str(raw),
                    "-p", "fp32", "-e", "cpu", "-c", str(tmp_path / "cache")], check=True, capture_output=True)
    raw_logits = OnnxChatModel(raw).teacher_forced_logits(ids, [])
    assert np.abs(raw_logits - reference).max() > 1e-2

    # ...through phitune the collision is reported, the MLP widened, and parity holds.
    out, report = export_onnx(colliding, "fp32", tmp_path / "export", progress=False)
    defect = report["builder_defect"]
    assert defect["collisions"] and all(c["mlp_width"] for c in defect["collisions"])
    assert defect["exported_intermediate_size"] not in (config.vocab_size, config.vocab_size // 2)
    assert report["model"]["vocab_size"] == config.vocab_size  # the vocabulary itself is untouched
    assert report["parity"]["genai"]["passed"] and report["parity"]["genai"]["max_abs_diff"] <= 1e-4
    fixed_logits = OnnxChatModel(out).teacher_forced_logits(ids, [])
    assert np.abs(fixed_logits - reference).max() <= 1e-4


def test_fp32_parity_is_enforced(tiny_model_dir, tmp_path):
    with pytest.raises(ExportError) as err:
        export_onnx(tiny_model_dir, "fp32", tmp_path / "strict", atol=1e-12, progress=False)
    assert "parity check failed" in str(err.value) and "logits max abs diff" in str(err.value)
    report = json.loads((tmp_path / "strict" / "export_report.json").read_text())
    assert report["passed"] is False and report["parity"]["genai"]["passed"] is False


def test_cli_refuses_bad_input_without_a_traceback(tmp_path):
    missing = run_cli("export", str(tmp_path / "nope"), "--onnx")
    assert missing.returncode == 2 and "no such run or model folder" in missing.stderr
    no_format = run_cli("export", str(tmp_path), "--precision", "int4")
    assert no_format.returncode == 2 and "--onnx" in no_format.stderr
    assert "Traceback" not in missing.stderr + no_format.stderr
