"""`phitune export RUN_DIR --onnx`: merge, build, export, verify, report.

1. load the run in fp32 and fold any adapter in (multi-LoRA: keep base and adapters apart, see multi_lora.py)
2. check for the builder's LM-head collision and widen the MLP if needed (builder_defect.py)
3. onnxruntime-genai builder -> genai/ (KV cache, fp32/int8/int4 on CPU)
4. torch.onnx -> logits/model.onnx (fp32, no cache)
5. parity against PyTorch on fixed prompts; export_report.json is written last

Everything is built in a hidden temp folder inside the output folder (which may be an Azure ML output
mount, so it is never replaced) and moved into place at the end; export_report.json is written last,
so a folder without it is not a finished export.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from phitune.errors import ExportError, Problem
from phitune.export import layout
from phitune.export.export_report import Steps, build_report, keep_builder_log, labelled_sections

DEFAULT_ATOL = 1e-4
DEFAULT_NEW_TOKENS = 16


def export_onnx(run_dir: str | Path, precision: str = "fp32", output: str | Path | None = None, *,
                multi_lora: bool = False, adapter_runs: list[str | Path] = (), atol: float = DEFAULT_ATOL,
                max_new_tokens: int = DEFAULT_NEW_TOKENS, prompts: tuple[str, ...] = layout.PARITY_PROMPTS,
                progress: bool = True) -> tuple[Path, dict]:
    """Export a run (or model folder) to `output`; returns (export dir, report). Raises ExportError
    when an enforced parity check fails (the export and its report are kept for inspection)."""
    from phitune.export.source import describe

    if precision not in layout.PRECISIONS:
        raise ExportError("unsupported precision", [Problem("--precision", f"{precision!r}", f"use one of {', '.join(layout.PRECISIONS)}")])
    source = describe(run_dir)
    extra = [describe(p) for p in adapter_runs]
    multi_lora = multi_lora or bool(extra)
    final = Path(output) if output else _default_output(source.path, source.kind, precision)
    _check_output(final)
    final.mkdir(parents=True, exist_ok=True)  # may be an Azure ML output mount: write inside, never replace it
    (final / layout.REPORT).unlink(missing_ok=True)  # an earlier export (checked above) stops looking complete
    for old in final.iterdir():
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=final))
    try:
        if multi_lora:
            from phitune.export.multi_lora import export_multi_lora

            report = export_multi_lora(source, extra, precision, work, atol, max_new_tokens, prompts, progress)
        else:
            report = _export_single(source, precision, work, atol, max_new_tokens, prompts, progress)
        shutil.rmtree(work / ".work", ignore_errors=True)
        from phitune.files import follow_umask

        follow_umask(work)  # the umask's modes, not mkdtemp's 0700 / safetensors' 0600
        for child in work.iterdir():
            os.replace(child, final / child.name)
        report["output"] = str(final.resolve())
        write_export_card(final, source, report)
        (final / layout.REPORT).write_text(json.dumps(report, indent=2) + "\n")  # last: marks the export complete
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reasons = report_failures(report)
    if reasons:
        raise ExportError(f"parity check failed; the export and its report are in {final} for inspection",
                          [Problem(f"{final / layout.REPORT}", reason, "check the merge and the builder log; "
                                   "int8/int4 exports only report parity") for reason in reasons])
    return final, report


def _export_single(source, precision, out: Path, atol, max_new_tokens, prompts, progress) -> dict:
    from phitune.export import parity
    from phitune.export.builder_defect import check_collisions, padded_model
    from phitune.export.genai_build import run_builder
    from phitune.export.runtime import OnnxChatModel
    from phitune.export.source import load_merged
    from phitune.export.torch_graph import export_logits_graph, logits_session

    steps = Steps(["load", "builder", "torch.onnx", "reference", "parity"], progress)
    try:
        steps.start("load")
        model, tokenizer = load_merged(source)
        collisions, padded = check_collisions(model)
        builder_input = out / ".work" / "hf"
        (padded_model(model, padded) if padded else model).save_pretrained(builder_input, safe_serialization=True)
        tokenizer.save_pretrained(builder_input)
        tokenizer.save_pretrained(out / layout.TOKENIZER)

        steps.start("builder")
        run_builder(builder_input, out / layout.GENAI, precision, out / ".work" / "hf-cache", out / ".work" / "builder.log")
        keep_builder_log(out)

        steps.start("torch.onnx")
        example = tokenizer.apply_chat_template(layout.chat_messages(prompts[0]), add_generation_prompt=True,
                                                tokenize=True, return_dict=True)["input_ids"]
        graph_path = export_logits_graph(model, list(example), out / layout.LOGITS)

        steps.start("reference")
        chat_model = OnnxChatModel(out)
        refs = parity.pytorch_references(model, tokenizer, prompts, max_new_tokens, sorted(chat_model.eos))

        steps.start("parity")
        checks = {
            "genai": {"precision": precision, **parity.compare_genai(chat_model, refs, max_new_tokens, None,
                                                                      enforce=precision == "fp32", atol=atol)},
            "logits_graph": {"precision": "fp32", **parity.compare_logits_graph(logits_session(graph_path), refs, atol)},
        }
        del chat_model
    finally:
        steps.close()
    return build_report(source, precision, checks, collisions, padded, model.config, steps.timings, max_new_tokens)


def report_failures(report: dict) -> list[str]:
    from phitune.export.parity import failures

    reasons = []
    for label, section in labelled_sections(report["parity"]):
        reasons += failures(section, label)
    return reasons


def _default_output(path: Path, kind: str, precision: str) -> Path:
    if kind == "model":
        return path.parent / f"{path.name}-onnx-{precision}"
    return path / f"onnx-{precision}"


def _check_output(path: Path) -> None:
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / layout.REPORT).is_file())):
        raise ExportError("output folder is not empty", [Problem(str(path), "exists and is not an earlier export",
                                                                 "pass an empty or new --output folder")])


def write_export_card(folder: Path, source, report: dict) -> Path | None:
    """README.md (Hugging Face model card) for an export of a run folder: the run's card plus the
    precision, the files and every parity verdict. A plain model folder has no recipe to describe."""
    from phitune.model_card import write_card
    from phitune.models.run_dir import is_run_dir, run_recipe

    if not is_run_dir(source.path):
        return None
    metrics_file = Path(source.path) / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    from phitune.export.parity import verdict

    checks = [f"- {label}: **{verdict(s)['verdict']}** ({verdict(s)['why']}); {verdict(s)['conclusion']}"
              for label, s in labelled_sections(report["parity"])]
    body = [f"ONNX Runtime export, {report['precision']} weights: `{layout.GENAI}/` (onnxruntime-genai, KV cache) and "
            f"`{layout.LOGITS}/model.onnx` (plain logits graph), tokenizer in `{layout.TOKENIZER}/`.", "",
            "Parity against PyTorch:", *checks]
    return write_card(folder, run_recipe(source.path), "onnx", f"ONNX export ({report['precision']})", metrics,
                      extra_sections=[("Export", body)])
