"""Inference speed: PyTorch eager (KV cache on) vs ONNX Runtime (onnxruntime-genai) fp32 and int4.

For each model size, greedy generation of exactly --tokens new tokens (EOS suppressed on both sides via
min length) for the fixed parity prompt set, timed after one warm-up, several repeats; reports tokens/s
and the ONNX/PyTorch ratios. The ONNX models are made by `phitune export` itself, so each comes with its
own parity report (fp32 must match; int4 token agreement is shown).

    .venv/bin/python benchmarks/inference.py                      # tiny + 512x4
    .venv/bin/python benchmarks/inference.py --size 1024x8 --out benchmarks/results/inference-1024.json

Not a test: nothing is asserted. Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", default=None, metavar="HIDDENxLAYERS|tiny",
                        help="model sizes (repeatable; default: tiny and 512x4)")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per generation (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the prompt set (default 3)")
    parser.add_argument("--out", default="benchmarks/results/inference.json", help="where to write the JSON results")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for both PyTorch and ONNX Runtime (default 1: equal footing, and robust on a "
                             "shared machine where 2 spinning threads per framework oversubscribe the cores); 0 = "
                             "each library's default")
    parser.add_argument("--workdir", default=None, help="keep models and exports here (default: a temp dir)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sizes = args.size or ["tiny", "512x4"]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="phitune-bench-"))
    from phitune.export.layout import PARITY_PROMPTS

    results = {"machine": _machine(), "threads": args.threads or "library defaults", "tokens": args.tokens,
               "repeats": args.repeats,
               "prompts": len(PARITY_PROMPTS), "models": []}
    for size in sizes:
        print(f"== {size}", flush=True)
        results["models"].append(bench_size(size, work, args.tokens, args.repeats, args.threads or None))
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out}")
    return 0


def bench_size(size: str, work: Path, tokens: int, repeats: int, threads: int | None) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from phitune.export.layout import PARITY_PROMPTS, chat_messages
    from phitune.export.onnx_export import export_onnx
    from phitune.export.runtime import OnnxChatModel

    model_dir = _model(size, work)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tokenizer.apply_chat_template(chat_messages(p), add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"] for p in PARITY_PROMPTS]
    params = sum(p.numel() for p in model.parameters())
    row = {"size": size, "params_m": round(params / 1e6, 2), "config": {
        "hidden": model.config.hidden_size, "layers": model.config.num_hidden_layers,
        "intermediate": model.config.intermediate_size, "vocab": model.config.vocab_size}}
    row["pytorch_eager"] = _time(lambda ids: _torch_generate(model, ids, tokens), prompts, tokens, repeats)
    print(f"   pytorch eager: {row['pytorch_eager']['tokens_per_s']:.1f} tok/s", flush=True)
    for precision in ("fp32", "int4"):
        out = work / f"{size}-onnx-{precision}"
        if not (out / "export_report.json").is_file():
            export_onnx(model_dir, precision, out, progress=False)
        report = json.loads((out / "export_report.json").read_text())
        chat_model = OnnxChatModel(out, threads=threads)
        timing = _time(lambda ids: chat_model.greedy_tokens(ids, tokens, min_new_tokens=tokens), prompts, tokens, repeats)
        genai = report["parity"]["genai"]
        timing["parity"] = {"max_abs_diff": genai["max_abs_diff"], "token_agreement": genai["token_agreement"],
                            "sequences_identical": f"{genai['sequences_identical']}/{genai['prompts']}"}
        timing["speedup_vs_pytorch"] = round(timing["tokens_per_s"] / row["pytorch_eager"]["tokens_per_s"], 2)
        row[f"onnx_{precision}"] = timing
        print(f"   onnx {precision}: {timing['tokens_per_s']:.1f} tok/s ({timing['speedup_vs_pytorch']}x)", flush=True)
        del chat_model
    return row


def _torch_generate(model, ids: list[int], tokens: int) -> list[int]:
    import torch

    x = torch.tensor([ids])
    with torch.inference_mode():
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=tokens, min_new_tokens=tokens,
                             do_sample=False, use_cache=True, pad_token_id=model.config.pad_token_id)
    return out[0, len(ids):].tolist()


def _time(generate, prompts: list[list[int]], tokens: int, repeats: int) -> dict:
    got = generate(prompts[0])  # warm-up (allocations, kernels, caches)
    if len(got) != tokens:
        raise RuntimeError(f"expected {tokens} new tokens, got {len(got)}")
    latencies = []
    for _ in range(repeats):
        for ids in prompts:
            start = time.perf_counter()
            n = len(generate(ids))
            latencies.append((time.perf_counter() - start, n))
    total_s = sum(t for t, _ in latencies)
    total_tokens = sum(n for _, n in latencies)
    ms = sorted(t * 1000 for t, _ in latencies)
    return {"tokens_per_s": round(total_tokens / total_s, 1), "median_ms_per_generation": round(ms[len(ms) // 2], 1),
            "generations": len(latencies)}


def _model(size: str, work: Path) -> Path:
    from phitune.models.tiny import TinySpec, build_tiny_model, builtin_model_path

    if size == "tiny":
        return builtin_model_path("builtin:tiny-phi3")
    hidden, layers = (int(x) for x in size.lower().split("x"))
    path = work / f"model-{size}"
    if not (path / "config.json").is_file():
        build_tiny_model(path, TinySpec(hidden=hidden, layers=layers, heads=max(4, hidden // 128)))
    return path


def _machine() -> dict:
    import onnxruntime
    import onnxruntime_genai
    import torch

    return {"python": platform.python_version(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "onnxruntime": onnxruntime.__version__,
            "onnxruntime_genai": onnxruntime_genai.__version__, "platform": platform.platform(),
            "load_avg_at_start": list(os.getloadavg())}


def print_table(results: dict) -> None:
    print(f"\ngreedy {results['tokens']} new tokens, {results['repeats']} x {results['prompts']} prompts, "
          f"threads {results['threads']}, tokens/s")
    print(f"{'model':<10} {'params':>8} {'pytorch':>10} {'ort fp32':>10} {'ort int4':>10} {'fp32 x':>7} {'int4 x':>7}")
    for row in results["models"]:
        print(f"{row['size']:<10} {row['params_m']:>7}M {row['pytorch_eager']['tokens_per_s']:>10} "
              f"{row['onnx_fp32']['tokens_per_s']:>10} {row['onnx_int4']['tokens_per_s']:>10} "
              f"{row['onnx_fp32']['speedup_vs_pytorch']:>7} {row['onnx_int4']['speedup_vs_pytorch']:>7}")
    large = [r for r in results["models"] if r["size"] != "tiny"]
    for row in large:
        verdict = "meets" if row["onnx_int4"]["speedup_vs_pytorch"] >= TARGET_RATIO else "MISSES"
        print(f"{row['size']}: int4 {row['onnx_int4']['speedup_vs_pytorch']}x PyTorch eager ({verdict} the {TARGET_RATIO:g}x target)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
