"""`phitune export RUN_DIR --onnx`: a verified ONNX Runtime model (genai + plain logits graph)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("export", help="export a run to ONNX Runtime (merged; fp32 checked against PyTorch, int8/int4 agreement reported)")
    p.add_argument("run_dir", help="run folder written by `phitune train` (or a Hugging Face model folder)")
    p.add_argument("--onnx", action="store_true", help="export to ONNX Runtime (the only format today)")
    p.add_argument("--precision", choices=["fp32", "int8", "int4"], default="fp32",
                   help="weights of the genai model (CPU); fp32 (default) must match PyTorch, int8/int4 report agreement")
    p.add_argument("--output", help="export folder (default RUN_DIR/onnx-PRECISION)")
    p.add_argument("--multi-lora", action="store_true",
                   help="export the base once and the LoRA adapter as a separate .onnx_adapter file")
    p.add_argument("--adapter-run", action="append", default=[], metavar="RUN_DIR",
                   help="another LoRA run of the same base to add as an adapter (repeatable; implies --multi-lora)")
    p.add_argument("--atol", type=float, default=1e-4, help="fp32 logits tolerance (default 1e-4)")
    p.add_argument("--max-new-tokens", type=int, default=16, help="greedy tokens per parity prompt (default 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.errors import ExportError, Problem

    if not args.onnx:
        raise ExportError("nothing to export", [Problem("--onnx", "no export format chosen", "add --onnx")])
    if args.max_new_tokens < 1 or args.atol <= 0:
        raise ExportError("invalid parity settings", [Problem("--max-new-tokens/--atol", "must be positive")])
    from phitune.export.onnx_export import export_onnx, labelled_sections

    out, report = export_onnx(args.run_dir, args.precision, args.output, multi_lora=args.multi_lora,
                              adapter_runs=args.adapter_run, atol=args.atol, max_new_tokens=args.max_new_tokens,
                              progress=not args.no_progress)
    print(f"exported {report['name']} ({report['precision']}) to {out}")
    defect = report["builder_defect"]
    if defect["collisions"]:
        print(f"  builder LM-head collision avoided: {defect['action']} "
              f"(intermediate {report['model']['intermediate_size']} -> {defect['exported_intermediate_size']})")
    from phitune.export.parity import verdict

    for label, section in labelled_sections(report["parity"]):
        words = verdict(section)  # older reports lack the words: compute them
        print(f"  {label:<22} {words['verdict'].upper()}: {words['why']}")
        print(f"  {'':<22} -> {words['conclusion']}")
    print(f"  report: {out}/export_report.json")
    return 0
