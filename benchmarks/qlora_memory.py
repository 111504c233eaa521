"""QLoRA must save memory for real: peak RSS of a QLoRA nf4 run vs a LoRA run on the same model.

Builds an ~814 M-parameter Phi-3-architecture model once (`phitune tiny-model --hidden 2048
--layers 12`, cached under $PHITUNE_CACHE/bench/ or ~/.cache/phitune/bench/), then trains a few steps
with each method in its own fresh process (phitune.estimate.measure: load_trainable_model + the
training loop's loss and optimizer) and prints both peaks and their ratio. Target: ratio <= 0.5.
Each pair runs twice: under the training loop's allocator policy (phitune/host_memory.py: a
full-precision model keeps freed memory in the heap for speed, a quantized one returns it) and with
freed blocks returned to the OS for both methods.

    .venv/bin/python benchmarks/qlora_memory.py [--hidden 2048 --layers 12 --batch 2 --seq 64 --steps 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--methods", default="lora,qlora", help="comma-separated method.type values")
    parser.add_argument("--allocator", choices=["loop", "returned", "both"], default="both",
                        help="loop: as TrainLoop trains (training_allocator); returned: freed memory goes back to the OS")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "qlora_memory.json"),
                        help="where the results are written as JSON")
    args = parser.parse_args(argv)

    from phitune.estimate.measure import measure_training_peak
    from phitune.models.tiny import TinySpec, build_tiny_model, cache_dir
    from phitune.recipe import load_recipe

    path = cache_dir() / "bench" / f"phi3-h{args.hidden}-l{args.layers}"
    if not (path / "phitune_tiny.json").is_file():
        print(f"building {path} (once) ...", flush=True)
        build_tiny_model(path, TinySpec(hidden=args.hidden, layers=args.layers, heads=max(4, args.hidden // 128)))
    results: dict = {}
    for allocator in (["loop", "returned"] if args.allocator == "both" else [args.allocator]):
        results[allocator] = {}
        for method in args.methods.split(","):
            recipe = load_recipe({"data": {"train": "unused.jsonl"}, "model": str(path), "tracking": "none",
                                  "method": {"type": method}})
            started = time.perf_counter()
            r = measure_training_peak(recipe, args.batch, args.seq, args.steps, loop_allocator=allocator == "loop")
            r["seconds"] = round(time.perf_counter() - started, 1)
            results[allocator][method] = r
            print(f"[{allocator:>8}] {method:>6}: peak RSS {r['peak_rss'] / 1e9:.2f} GB (runtime {r['baseline_rss'] / 1e9:.2f} GB, "
                  f"after load {r['loaded_rss'] / 1e9:.2f} GB), trainable {r['trainable_params']:,}, loss "
                  f"{r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}, {r['seconds']} s", flush=True)
        if "lora" in results[allocator] and "qlora" in results[allocator]:
            ratio = results[allocator]["qlora"]["peak_rss"] / results[allocator]["lora"]["peak_rss"]
            print(f"[{allocator:>8}] QLoRA nf4 / LoRA peak RSS: {ratio:.2f} "
                  f"(target <= 0.50: {'met' if ratio <= 0.5 else 'NOT met'})", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": path.name, "batch": args.batch, "seq": args.seq, "steps": args.steps,
                                          "results": results}, indent=2) + "\n")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
