"""Start-up latency of the commands a new user runs first, each next to the floor: a bare
`python -c "import torch, transformers"` (no phitune command that touches a model can be faster).

Measured (wall time of the whole process, median of --repeats runs, after one untimed warm-up; also
its CPU time, user + system, which a busy machine inflates far less than wall time):
- `phitune --help`, `phitune validate` (targets: under 0.5 s; neither imports torch)
- `phitune generate` on the demo run, `phitune estimate` (targets: within 1.5 s of the floor)
- time from starting `phitune train examples/recipes/tiny-lora.yaml` (the demo, held-out evaluation
  before training included) to the end of its first optimizer step (target: within 3 s of the floor).
- the named peer for `generate`: a plain transformers script doing the same job (load the demo's
  merged model and tokenizer, apply the chat template, greedy-generate the same 64 tokens). Using a
  model class makes transformers import much more than `import transformers` does (its weight loading,
  attention and loss registries pull in torch.distributed.tensor, torch._dynamo and scipy), so this
  peer, not the floor, is what any tool built on transformers pays; `generate` is reported as a ratio
  to it.

    .venv/bin/python benchmarks/cli_latency.py                       # writes benchmarks/results/cli_latency.json
    .venv/bin/python benchmarks/cli_latency.py --baseline-src OLD/src   # and an older checkout, alternating

Not a test: nothing is asserted. Timings depend on the machine and on what else runs on it (the
load average before and after is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "recipes" / "tiny-lora.yaml"
TARGETS = {"help": ("absolute", 0.5), "validate": ("absolute", 0.5), "generate": ("over_floor", 1.5),
           "estimate": ("over_floor", 1.5), "first_step": ("over_floor", 3.0)}

# The peer of `phitune generate`: what a user would write with transformers alone.
TRANSFORMERS_GENERATE = """
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
run = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(run + "/merged")
tokenizer = AutoTokenizer.from_pretrained(run + "/tokenizer")
ids = tokenizer.apply_chat_template([{"role": "user", "content": sys.argv[2]}], add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)["input_ids"]
out = model.generate(ids, max_new_tokens=64, do_sample=False)
print(tokenizer.decode(out[0][ids.shape[1]:], skip_special_tokens=True))
"""

# Runs `phitune train` as the CLI does, and ends the process when the first optimizer step is done,
# writing the wall-clock time of that moment (the parent started its clock before launching).
FIRST_STEP = """
import os, sys, time
try:
    import phitune.training.run as run
except ImportError:  # a checkout from before the training core moved to phitune/training
    import phitune.train.run as run
from phitune.cli import main

class FirstStep:
    def on_step_end(self, info):
        with open(os.environ["FIRST_STEP_FILE"], "w") as fh:
            fh.write(repr(time.time()))
        os._exit(0)

train = run.train
run.train = lambda *a, **k: train(*a, **{**k, "callbacks": [FirstStep()]})
sys.exit(main(sys.argv[1:]))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per command (default 5; the median is reported)")
    parser.add_argument("--baseline-src", default=None, metavar="SRC",
                        help="also measure phitune imported from this src/ folder (e.g. an older checkout), each run "
                             "alternating with this checkout's, so both see the same machine load")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cli_latency.json"))
    args = parser.parse_args()
    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    base_env.pop("MLFLOW_TRACKING_URI", None)
    variants = {"this checkout": {**base_env, "PYTHONPATH": str(REPO / "src")}}
    if args.baseline_src:
        variants["baseline"] = {**base_env, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
    py = sys.executable
    phitune = [py, "-m", "phitune.cli"]
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict]] = {v: {} for v in variants}
    with tempfile.TemporaryDirectory(prefix="phitune-latency-") as tmp:
        tmp = Path(tmp)
        run_dir = tmp / "demo"
        print("training the demo run once (for generate) ...", flush=True)
        subprocess.run([*phitune, "train", str(DEMO), "--output", str(run_dir), "--no-progress", "--set", "tracking=none"],
                       cwd=tmp, env=variants["this checkout"], check=True, capture_output=True)
        commands = {
            "floor": [py, "-c", "import torch, transformers"],
            "help": [*phitune, "--help"],
            "validate": [*phitune, "validate", str(DEMO)],
            "generate": [*phitune, "generate", str(run_dir), "--prompt", "great value for money"],
            "transformers_generate": [py, "-c", TRANSFORMERS_GENERATE, str(run_dir), "great value for money"],
            "estimate": [*phitune, "estimate", str(DEMO)],
            "first_step": [py, "-c", FIRST_STEP, "train", str(DEMO), "--output", str(tmp / "first-step"), "--no-progress"],
        }
        for name, cmd in commands.items():
            once = _first_step if name == "first_step" else _wall
            measured = _measure({v: (lambda env=env: once(cmd, tmp, env)) for v, env in variants.items()}, args.repeats)
            for variant, summary in measured.items():
                results[variant][name] = summary
                print(f"{variant:<14} {name:<10} median {summary['median_s']:.2f} s (CPU {summary['median_cpu_s']:.2f} s)"
                      f"  runs {summary['runs_s']}", flush=True)
    for variant in results.values():
        floor = variant["floor"]["median_s"]
        for name, (kind, limit) in TARGETS.items():
            value = variant[name]["median_s"]
            variant[name]["over_floor_s"] = round(value - floor, 2)
            variant[name]["target"] = f"< {limit} s" if kind == "absolute" else f"<= floor + {limit} s"
            variant[name]["meets_target"] = (value if kind == "absolute" else value - floor) <= limit
        peer = variant["transformers_generate"]
        variant["generate"]["vs_transformers_generate"] = round(variant["generate"]["median_s"] / peer["median_s"], 2)
        variant["generate"]["cpu_vs_transformers_generate"] = round(
            variant["generate"]["median_cpu_s"] / peer["median_cpu_s"], 2)
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_before": [round(x, 2) for x in load_before],
                          "load_after": [round(x, 2) for x in os.getloadavg()]},
              "baseline_src": args.baseline_src, "repeats": args.repeats, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for variant, variant_results in results.items():
        print(f"\n{variant}:\n{markdown(variant_results)}")
    print(f"wrote {args.out}")
    return 0


def _wall(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and its children)."""
    before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return took, _children_cpu() - before


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _first_step(cmd: list[str], cwd: Path, env: dict) -> float:
    import shutil

    marker = cwd / "first-step.time"
    marker.unlink(missing_ok=True)
    for left in cwd.iterdir():  # the run folder (and any work folder beside it) of the previous, cut-short run
        if "first-step" in left.name and left.is_dir():
            shutil.rmtree(left, ignore_errors=True)
    before = _children_cpu()
    start = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env={**env, "FIRST_STEP_FILE": str(marker)}, capture_output=True, text=True)
    if not marker.is_file():
        raise SystemExit(f"no first step (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return float(marker.read_text()) - start, _children_cpu() - before


def _measure(runners: dict, repeats: int) -> dict[str, dict]:
    """Each runner once untimed (warm-up: file-system cache, bytecode), then `repeats` rounds in which
    every runner runs once, alternating, so all see the same machine load."""
    for once in runners.values():
        once()
    runs: dict[str, list] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, once in runners.items():
            runs[name].append(once())
    out = {}
    for name, pairs in runs.items():
        wall, cpu = [w for w, _ in pairs], [c for _, c in pairs]
        out[name] = {"median_s": round(statistics.median(wall), 2), "runs_s": [round(r, 2) for r in wall],
                     "median_cpu_s": round(statistics.median(cpu), 2)}
    return out


def markdown(results: dict) -> str:
    floor = results["floor"]["median_s"]
    lines = ["| command | median wall (s) | over the floor (s) | CPU (s) | target (wall) | met |",
             "|---|---:|---:|---:|---|---|",
             f"| `python -c \"import torch, transformers\"` (floor) | {floor:.2f} | - | {results['floor']['median_cpu_s']:.2f} | - | - |"]
    labels = {"help": "`phitune --help`", "validate": "`phitune validate`", "generate": "`phitune generate` (demo run)",
              "estimate": "`phitune estimate`", "first_step": "`phitune train` demo: first optimizer step"}
    for name, label in labels.items():
        r = results[name]
        lines.append(f"| {label} | {r['median_s']:.2f} | {r['over_floor_s']:+.2f} | {r['median_cpu_s']:.2f} | {r['target']} | "
                     f"{'yes' if r['meets_target'] else 'no'} |")
    peer, gen = results["transformers_generate"], results["generate"]
    lines.append(f"| peer: the same reply with transformers alone | {peer['median_s']:.2f} | "
                 f"{peer['median_s'] - floor:+.2f} | {peer['median_cpu_s']:.2f} | - | - |")
    lines.append(f"\n`phitune generate` / transformers alone: {gen['vs_transformers_generate']:.2f}x wall, "
                 f"{gen['cpu_vs_transformers_generate']:.2f}x CPU")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
