"""How far `phitune estimate` is from measured peaks: CPU training runs on small Phi-3 models.

Each case trains a few steps in a fresh process (phitune.estimate.measure) and compares its peak RSS
with the estimate for the same recipe on a "cpu" device whose runtime term is that process's own
measured baseline (so the comparison is about the training memory, not about how heavy the Python
imports happen to be). Prints a markdown table and the mean / worst absolute error.

    .venv/bin/python benchmarks/estimate_accuracy.py [--quick] [--out benchmarks/results/estimate_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# (hidden, layers, method, batch, seq, gradient_checkpointing)
CASES = [
    (512, 4, "full", 4, 256, False),
    (512, 4, "lora", 4, 256, False),
    (512, 4, "lora", 8, 512, False),
    (512, 4, "lora", 8, 512, True),
    (512, 4, "qlora", 4, 256, False),
    (512, 4, "dora", 4, 256, False),
    (512, 4, "ia3", 4, 256, False),
    (512, 4, "prompt_tuning", 4, 256, False),
    (512, 4, "prefix_tuning", 4, 256, False),
    (512, 4, "loha", 4, 256, False),
    (512, 4, "lokr", 4, 256, False),
    (1024, 8, "full", 2, 256, False),
    (1024, 8, "lora", 4, 512, False),
    (1024, 8, "qlora", 4, 512, False),
]
QUICK = [CASES[0], CASES[1], CASES[4]]


def run_case(hidden: int, layers: int, method: str, batch: int, seq: int, checkpointing: bool,
             loop_allocator: bool = True) -> dict:
    from phitune.estimate.measure import measure_training_peak
    from phitune.estimate.memory import Hardware, estimate
    from phitune.estimate.shapes import model_shape
    from phitune.models.tiny import TinySpec, build_tiny_model, cache_dir
    from phitune.recipe import load_recipe

    path = cache_dir() / "bench" / f"phi3-h{hidden}-l{layers}"
    if not (path / "phitune_tiny.json").is_file():
        build_tiny_model(path, TinySpec(hidden=hidden, layers=layers, heads=max(4, hidden // 128)))
    recipe = load_recipe({"data": {"train": "unused.jsonl"}, "model": str(path), "tracking": "none",
                          "method": {"type": method},
                          "train": {"batch_size": batch, "max_seq_len": seq, "gradient_checkpointing": checkpointing}})
    measured = measure_training_peak(recipe, batch, seq, steps=2, loop_allocator=loop_allocator)
    hardware = Hardware("cpu", memory_bytes=1e12, runtime_bytes=measured["baseline_rss"])
    est = estimate(recipe, model_shape(recipe), hardware)
    error = (est.total - measured["peak_rss"]) / measured["peak_rss"]
    train_error = (est.total - est.runtime - (measured["peak_rss"] - measured["baseline_rss"])) / \
        (measured["peak_rss"] - measured["baseline_rss"])
    return {"model": f"h{hidden}xL{layers}", "method": method, "batch": batch, "seq": seq,
            "gradient_checkpointing": checkpointing, "estimated_gb": est.total / 1e9,
            "measured_gb": measured["peak_rss"] / 1e9, "error": error, "error_above_runtime": train_error,
            "parts_gb": {"weights": est.weights / 1e9, "gradients": est.gradients / 1e9,
                         "optimizer": est.optimizer / 1e9, "activations": (est.activations or 0) / 1e9,
                         "runtime": est.runtime / 1e9, "overlap": -est.overlap / 1e9}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three cases only")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    parser.add_argument("--allocator", choices=["loop", "returned"], default="loop",
                        help="loop: as TrainLoop trains (training_allocator); returned: freed memory goes back to the OS")
    args = parser.parse_args(argv)
    rows = []
    print("| model | method | batch x seq | ckpt | estimated GB | measured GB | error | error above runtime |")
    print("|---|---|---|---|---|---|---|---|")
    for case in QUICK if args.quick else CASES:
        row = run_case(*case, loop_allocator=args.allocator == "loop")
        row["allocator"] = args.allocator
        rows.append(row)
        print(f"| {row['model']} | {row['method']} | {row['batch']} x {row['seq']} | "
              f"{'yes' if row['gradient_checkpointing'] else 'no'} | {row['estimated_gb']:.3f} | "
              f"{row['measured_gb']:.3f} | {row['error']:+.1%} | {row['error_above_runtime']:+.1%} |", flush=True)
    errors = [abs(r["error"]) for r in rows]
    print(f"\nmean |error| {sum(errors) / len(errors):.1%}, worst {max(errors):.1%} over {len(rows)} cases")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
