"""Training throughput: phitune vs TRL's SFTTrainer on the same model, LoRA, data and settings (`make bench`).

Both train the same Phi-3 tiny model (hidden 256, 4 layers, ~5.6 M params) with LoRA (same r, alpha,
targets, no dropout) for one epoch over the same generated chat conversations (20-400 tokens, median
~160), same batch size, lr, linear schedule, clipping, seed, fp32, loss on assistant tokens only. Each
run is its own process; systems alternate (phitune, TRL, phitune, TRL, ...) so load on a shared machine
hits both alike, and the reported ratio is the median of the per-round ratios.

    .venv/bin/python benchmarks/train_throughput.py            # 3 rounds, 160 conversations, all rows
    .venv/bin/python benchmarks/train_throughput.py --quick    # 1 round, 96 conversations, phitune and TRL only

Rows: phitune (its defaults: random batches, each one padding-free row when that is cheaper), TRL,
phitune with packing, and a control: TRL
with the same glibc malloc thresholds phitune's loop sets (phitune/host_memory.py), given through
MALLOC_*_THRESHOLD_ environment variables, to show how much of the gap is that setting alone.

Not a test: nothing is asserted. Numbers depend on the machine and on what else runs on it.
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

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 2.0
TOKENS_DEFINITION = ("non-padding tokens/s = non-padding input tokens of the whole run, every epoch (identical for every system) / "
                     "wall time of the training loop (phitune: from train()'s tracker.log_params, right before the loop, to the "
                     "last step's on_step_end callback; TRL: on_train_begin to on_train_end callbacks), excluding model "
                     "load, templating and tokenization")
OMP_NOTE = ("Workers run with OMP_WAIT_POLICY=PASSIVE (both systems alike) unless --omp-spin: on a shared, "
            "oversubscribed CPU, OpenMP's default spin-waiting made every torch process here several times slower "
            "(a training step went from ~0.3 s to ~15 s at load 9 on 2 cores), which would measure the neighbours, "
            "not the trainers")
BATCHING_NOTE = ("phitune batches at random, like TRL, and sends a batch as one padding-free row when that costs "
                 "less than padded rows (the same loss, see tests/unit/test_data_batching.py). Length-grouped batches "
                 "(train.group_by_length: true) pad as little but are less random: over seeds 42-44 their held-out "
                 "loss was higher, by 0.01 after 1 epoch and 0.04 after 3")
LOSS_DEFINITION = ("held-out loss = mean token cross-entropy over the assistant tokens of the same held-out "
                   "conversations, from each trained model's full logits (one referee function for both)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 96 conversations, no packing or control row")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3, quick 1)")
    parser.add_argument("--conversations", type=int, default=None, help="training conversations (default 160, quick 96)")
    parser.add_argument("--heldout", type=int, default=48, help="held-out conversations for the loss (default 48)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the data (default 1)")
    parser.add_argument("--no-packing", action="store_true", help="skip the phitune packing row")
    parser.add_argument("--no-control", action="store_true", help="skip the TRL + malloc settings row")
    parser.add_argument("--workdir", default=None, help="keep model and data here (default: a temp dir)")
    parser.add_argument("--out", default=str(HERE / "results" / "train_throughput.md"),
                        help="markdown table (the JSON goes next to it)")
    parser.add_argument("--worker", choices=["phitune", "phitune-packing", "trl", "trl-malloc"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=42, help="seed of round 1; round r uses seed + r - 1")
    parser.add_argument("--omp-spin", action="store_true",
                        help="leave OpenMP's default spin-waiting on (see OMP_NOTE; default: OMP_WAIT_POLICY=PASSIVE)")
    args = parser.parse_args()
    for key, value in {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_OFFLINE": "1",
                       "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "1"}.items():
        os.environ.setdefault(key, value)
    if args.worker:
        return _worker(args.worker, Path(args.spec), Path(args.result), args.seed)
    if not args.omp_spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by every worker alike

    rounds = args.rounds or (1 if args.quick else 3)
    n_train = args.conversations or (96 if args.quick else 160)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="phitune-bench-train-"))
    spec = prepare(work, n_train, args.heldout, args.batch_size, args.lr, args.epochs)
    systems = (["phitune", "trl"] + ([] if args.no_packing or args.quick else ["phitune-packing"])
               + ([] if args.no_control or args.quick else ["trl-malloc"]))
    runs: list[dict] = []
    for r in range(rounds):
        order = systems if r % 2 == 0 else systems[::-1]  # neither system always runs first
        for system in order:
            print(f"== round {r + 1}/{rounds}: {system} (load {os.getloadavg()[0]:.1f})", flush=True)
            run = run_worker(system, work, r, args.seed + r)
            run["round"] = r + 1
            runs.append(run)
            print(f"   {run['tokens'] / run['loop_s']:,.0f} non-padding tokens/s, {run['tokens'] / run['cpu_s']:,.0f} "
                  f"per CPU-s, loop {run['loop_s']:.1f} s, "
                  f"held-out loss {run['heldout_loss']:.4f}", flush=True)
    summary = summarize(runs)
    results = {"machine": _machine(), "spec": {k: v for k, v in spec.items() if k not in ("model_dir", "train", "heldout")},
               "data": spec["data"], "rounds": rounds, "tokens_per_s": TOKENS_DEFINITION, "loss": LOSS_DEFINITION,
               "summary": summary, "runs": runs}
    table = markdown(results)
    print("\n" + table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out} and {out.with_suffix('.json')}")
    return 0


def prepare(work: Path, n_train: int, n_heldout: int, batch_size: int, lr: float, epochs: float) -> dict:
    """Build the tiny model and write the data once; every worker reads the same files."""
    from transformers import AutoTokenizer

    from phitune.data.stats import length_stats
    from phitune.models.tiny import TinySpec, build_tiny_model
    from train_throughput_runs import count_tokens, make_conversations, write_jsonl

    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "tiny-phi3-256x4"
    if not (model_dir / "phitune_tiny.json").is_file():
        build_tiny_model(model_dir, TinySpec(hidden=256, layers=4, heads=4))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records = make_conversations(tokenizer, n_train + n_heldout, seed=0)
    write_jsonl(work / "train.jsonl", records[:n_train])
    write_jsonl(work / "heldout.jsonl", records[n_train:])
    lengths = [count_tokens(tokenizer, r["messages"]) for r in records[:n_train]]
    spec = {"model_dir": str(model_dir), "train": str(work / "train.jsonl"), "heldout": str(work / "heldout.jsonl"),
            "model": "Phi-3 tiny, hidden 256, 4 layers, 4 heads (phitune tiny-model --hidden 256 --layers 4)",
            "lora_r": 16, "lora_alpha": 32, "targets": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
            "lr": lr, "batch_size": batch_size, "epochs": epochs, "max_seq_len": 512,
            "data": {"train_conversations": n_train, "heldout_conversations": n_heldout,
                     "train_tokens": sum(lengths), "lengths": str(length_stats(lengths))}}
    (work / "spec.json").write_text(json.dumps(spec, indent=2))
    return spec


def run_worker(system: str, work: Path, round_no: int, seed: int) -> dict:
    result = work / f"result-{system}-{round_no}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", system, "--spec", str(work / "spec.json"),
           "--result", str(result), "--seed", str(seed)]
    log = work / f"log-{system}-{round_no}.txt"
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, env=_worker_env(system))
    if done.returncode:
        sys.exit(f"{system} failed (exit {done.returncode}); its output:\n{log.read_text()[-4000:]}")
    run = json.loads(result.read_text())
    run["process_s"] = round(time.perf_counter() - started, 1)
    return run


def _worker_env(system: str) -> dict:
    from phitune.host_memory import KEEP_MMAP_THRESHOLD, KEEP_TRIM_THRESHOLD

    path = [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    if system == "trl-malloc":  # glibc reads these at start-up; phitune sets the same with mallopt
        env.update(MALLOC_MMAP_THRESHOLD_=str(KEEP_MMAP_THRESHOLD), MALLOC_TRIM_THRESHOLD_=str(KEEP_TRIM_THRESHOLD))
    return env


def _worker(system: str, spec_path: Path, result: Path, seed: int) -> int:
    import logging

    import transformers

    from train_throughput_runs import run_phitune, run_trl

    logging.basicConfig(level=logging.WARNING)
    transformers.logging.set_verbosity_error()
    spec = {**json.loads(spec_path.read_text()), "seed": seed}
    load_before = os.getloadavg()[0]
    if system.startswith("trl"):
        run = run_trl(spec)
        run["system"] += " + malloc env" if system == "trl-malloc" else ""
    else:
        run = run_phitune(spec, packing=system == "phitune-packing")
    import torch

    from phitune.host_memory import peak_rss_bytes

    run["peak_rss_mb"] = round(peak_rss_bytes() / 2**20, 1)

    run.update(load_before=round(load_before, 2), load_after=round(os.getloadavg()[0], 2), seed=seed,
               torch_threads=torch.get_num_threads(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "(default)"))
    result.write_text(json.dumps(run, indent=2))
    return 0


def summarize(runs: list[dict]) -> list[dict]:
    """Per system, medians over rounds; a ratio is the median over rounds of (system / TRL of that round),
    on wall time (non-padding tokens/s) and on CPU time (non-padding tokens per CPU-second)."""
    by_system = _by_system(runs)
    trl = {r["round"]: r for r in by_system.get("TRL SFTTrainer", [])}
    rows = []
    for system, rs in by_system.items():
        row = {"system": system, "steps": rs[0]["steps"], "tokens": rs[0]["tokens"]}
        for name, clock in (("", "loop_s"), ("_cpu", "cpu_s")):
            speeds = [r["tokens"] / r[clock] for r in rs]
            ratios = [r["tokens"] / r[clock] / (trl[r["round"]]["tokens"] / trl[r["round"]][clock])
                      for r in rs if r["round"] in trl]
            row.update({f"tokens_per{name}_s": statistics.median(speeds), f"tokens_per{name}_s_all": speeds,
                        f"ratio{name}_vs_trl": statistics.median(ratios) if ratios else None,
                        f"ratios{name}": ratios})
        row.update({key: statistics.median(r[src] for r in rs) for key, src in (
            ("heldout_loss", "heldout_loss"), ("train_loss_last", "train_loss_last"), ("loop_s", "loop_s"),
            ("cpu_s", "cpu_s"))})
        row["padding_fraction"] = statistics.median(1 - r["tokens"] / r["padded"] for r in rs)
        rows.append(row)
    return rows


def _by_system(runs: list[dict]) -> dict[str, list[dict]]:
    by_system: dict[str, list[dict]] = {}
    for run in runs:
        by_system.setdefault(run["system"], []).append(run)
    return by_system


def markdown(results: dict) -> str:
    data, spec, m = results["data"], results["spec"], results["machine"]
    lengths = data["lengths"]
    lines = [
        "| system | non-padding tokens/s | padding fraction | held-out loss | wall time (s) | ratio vs TRL "
        "| tokens per CPU-s | ratio vs TRL (CPU time) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["summary"]:
        ratio = f"{row['ratio_vs_trl']:.2f}x" if row["ratio_vs_trl"] is not None else "-"
        ratio_cpu = f"{row['ratio_cpu_vs_trl']:.2f}x" if row["ratio_cpu_vs_trl"] is not None else "-"
        lines.append(f"| {row['system']} | {row['tokens_per_s']:,.0f} | {row['padding_fraction']:.1%} | "
                     f"{row['heldout_loss']:.4f} | {row['loop_s']:.1f} | {ratio} | {row['tokens_per_cpu_s']:,.0f} "
                     f"| {ratio_cpu} |")
    per_round = "; ".join(f"{row['system']}: " + ", ".join(f"{x:.2f}x" for x in row["ratios"])
                          + " (CPU " + ", ".join(f"{x:.2f}x" for x in row["ratios_cpu"]) + ")"
                          for row in results["summary"] if row["system"] != "TRL SFTTrainer")
    loads = [r["load_before"] for r in results["runs"]]
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in results["runs"]}))
    policies = ", ".join(sorted({r["omp_wait_policy"] for r in results["runs"]}))
    notes = [
        "",
        f"{spec['model']}; LoRA r={spec['lora_r']} alpha={spec['lora_alpha']} on {', '.join(spec['targets'])}; "
        f"{data['train_conversations']} conversations ({data['train_tokens']:,} tokens, {lengths}), "
        f"{spec['epochs']:g} epoch(s), batch {spec['batch_size']}, lr {spec['lr']} linear, fp32; seed {seeds} (one per round, "
        "the same for both systems); "
        f"TRL {m['trl']} with assistant_only_loss=True, gradient_checkpointing=False, bf16=False.",
        f"Median of {results['rounds']} alternating round(s), each run in its own process; ratio = median of "
        f"per-round ratios. Machine: {m['cpus']} CPUs, torch {m['torch']}, load average {min(loads):.1f}-{max(loads):.1f} "
        "during the runs (shared machine: absolute numbers are noisy, the ratio less so).",
        f"{results['tokens_per_s']}. Wall time = that training-loop time. Tokens per CPU-s: the same tokens / "
        "process CPU time (all threads) of the same loop. Per-round ratios: " + per_round + ".",
        f"{results['loss']}; {data['heldout_conversations']} held-out conversations; median over rounds. Per round (seed): "
        + "; ".join(f"{system}: " + ", ".join(f"{r['heldout_loss']:.4f}" for r in sorted(rs, key=lambda r: r["seed"]))
                    for system, rs in _by_system(results["runs"]).items()) + ".",
        f"{BATCHING_NOTE}.",
        f"OMP_WAIT_POLICY={policies}. {OMP_NOTE}.",
        "Packing bins hold batch x max_seq_len tokens, so the packed run takes fewer, larger optimizer steps over "
        "the same epoch: its held-out loss is not comparable with the others'.",
        "",
    ]
    return "\n".join(lines + notes)


def _machine() -> dict:
    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "torch_threads": torch.get_num_threads()}


if __name__ == "__main__":
    sys.exit(main())
