"""Data at real size: `data check` and `train` up to the first optimizer step on synthetic chat files
of 10 MB, 100 MB and 1 GB (`make bench`), next to the tokenizer's own batch-encode time on the same text.

The files are ultrachat-shaped (what the Azure ML Phi-3 fine-tuning sample trains on): a `prompt`, a
`prompt_id` and `messages` with 1-4 user/assistant exchanges, a system prompt in about one in five,
roughly 200-2,000 tokens per conversation. They are generated into a temporary folder (never the
repository) from a seeded word list, so every run sees the same bytes.

Each measurement is its own process; peak RSS is the largest sum of RSS over the process and its
children (tokenization workers included), sampled every 0.1 s; wall time is end to end.

    .venv/bin/python benchmarks/data_scale.py                      # 10 MB, 100 MB, 1 GB
    .venv/bin/python benchmarks/data_scale.py --sizes 10 100       # MB
    .venv/bin/python benchmarks/data_scale.py --keep /tmp/data     # reuse generated files

Rows per size: `phitune data check` cold (builds the tokenized cache) and warm (maps it); `phitune train`
to its first optimizer step, cold (empty cache) and warm; and the floor: the built-in tokenizer's own
batch encoding (`tokenizer(texts)`, both cores) of the same rendered conversations.
Not a test: nothing is asserted. Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SYLLABLES = ["ka", "lo", "mi", "ne", "ro", "ta", "vi", "su", "pe", "dor", "lin", "tes", "mar", "qui", "zen", "fa",
             "bel", "cor", "dan", "el", "gro", "hu", "ist", "jo", "ment", "tion", "al", "er", "ing", "pro"]
COMMON = ("the of and to in is that for it as with was on be by this are from or at an which have not but "
          "can all more one has were their will would there what when also its into been other some these "
          "model data file train value function return list string number time first new used use each").split()
SYSTEMS = ["You are a helpful assistant.", "You are a careful assistant who answers briefly and exactly.",
           "Answer as a patient teacher would, step by step."]


def _vocabulary(rng: random.Random, n: int = 4000) -> list[str]:
    words = set(COMMON)
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def _sentence(rng: random.Random, words: list[str]) -> str:
    n = rng.randint(6, 22)
    picked = [rng.choice(COMMON) if rng.random() < 0.45 else rng.choice(words) for _ in range(n)]
    return picked[0].capitalize() + " " + " ".join(picked[1:]) + rng.choice([".", ".", ".", "?", "!"])


def _text(rng: random.Random, words: list[str], tokens: int) -> str:
    parts, approx = [], 0
    while approx < tokens:
        sentence = _sentence(rng, words)
        parts.append(sentence)
        approx += len(sentence) * 0.55  # ~tokens of the built-in tokenizer (made-up words split finely)
    return " ".join(parts)


def conversation(rng: random.Random, words: list[str], index: int) -> dict:
    """One ultrachat-shaped record of roughly 200-2,000 tokens."""
    budget = int(rng.triangular(200, 2000, 600))
    turns = rng.randint(1, 4)
    messages = [{"role": "system", "content": rng.choice(SYSTEMS)}] if rng.random() < 0.2 else []
    for _ in range(turns):
        messages.append({"role": "user", "content": _text(rng, words, max(10, budget // (turns * 4)))})
        messages.append({"role": "assistant", "content": _text(rng, words, max(20, 3 * budget // (turns * 4)))})
    prompt = next(m["content"] for m in messages if m["role"] == "user")
    return {"prompt": prompt, "prompt_id": f"{index:08x}", "messages": messages}


def generate(path: Path, megabytes: float, seed: int = 0) -> Path:
    """Write a chat JSONL of about `megabytes` MB (reused if it already has that size)."""
    target = int(megabytes * 1_000_000)
    if path.is_file() and abs(path.stat().st_size - target) < 50_000:
        return path
    rng = random.Random(seed)
    words = _vocabulary(rng)
    tmp = path.with_suffix(".tmp")
    written, index = 0, 0
    with open(tmp, "w", encoding="utf-8") as fh:
        while written < target:
            line = json.dumps(conversation(rng, words, index)) + "\n"
            fh.write(line)
            written += len(line.encode())
            index += 1
    os.replace(tmp, path)
    return path


# --- measuring ---------------------------------------------------------------------------------------

RECIPE = REPO / "examples" / "recipes" / "tiny-lora.yaml"
MAX_SEQ_LEN = 4096  # the generated conversations are up to ~3,300 tokens with the built-in tokenizer

FIRST_STEP_DRIVER = """
import os, sys, time
started = float(sys.argv[3])
from phitune.recipe.load import load_recipe
from phitune.training.run import train

class FirstStep:
    def on_step_end(self, info):
        print(f"first_step_s={time.time() - started:.3f}", flush=True)
        os._exit(0)

recipe = load_recipe(sys.argv[1], overrides=[
    f"data.train={sys.argv[2]}", "data.validation=null", "eval.before_after=false", "tracking=none",
    "train.max_seq_len=%d", "train.batch_size=4", "train.max_steps=1", "train.eval_every=null"])
train(recipe, sys.argv[4], callbacks=[FirstStep()], progress=False)
""" % MAX_SEQ_LEN

FLOOR_DRIVER = """
import json, sys, time
from phitune.models.loader import load_tokenizer
from phitune.recipe.sections import ModelSpec
tok = load_tokenizer(ModelSpec())
limit = int(sys.argv[2])
encode_s, nbytes, texts = 0.0, 0, []

def flush():
    global encode_s, texts
    t0 = time.perf_counter()
    tok(texts, add_special_tokens=False)
    encode_s += time.perf_counter() - t0
    texts = []

with open(sys.argv[1], "rb") as fh:
    for raw in fh:
        nbytes += len(raw)
        texts.append(tok.apply_chat_template(json.loads(raw)["messages"], tokenize=False))
        if len(texts) == 256:
            flush()
        if nbytes >= limit:
            break
if texts:
    flush()
print(json.dumps({"bytes": nbytes, "encode_s": round(encode_s, 3)}))
"""

# The fair comparison on a shared, loaded machine: both in one process, alternating, medians of 3.
# "floor" is the tokenizer's own batch encoding of the already-rendered conversations; "phitune" is the
# whole cold build (read, parse, check, template, encode with offsets, mask, write the Arrow cache).
SAME_PROCESS_DRIVER = """
import json, os, statistics, sys, tempfile, time
from phitune.data.tokenized import ensure_built
from phitune.models.loader import load_tokenizer
from phitune.recipe.sections import ModelSpec
from phitune.recipe.task import ChatTask
tok = load_tokenizer(ModelSpec())
source, limit = sys.argv[1], int(sys.argv[2])
work = tempfile.mkdtemp(prefix="phitune-ratio-")
sample = os.path.join(work, "sample.jsonl")
texts, size = [], 0
with open(source, "rb") as fh, open(sample, "wb") as out:
    for raw in fh:
        out.write(raw)
        size += len(raw)
        texts.append(tok.apply_chat_template(json.loads(raw)["messages"], tokenize=False))
        if size >= limit:
            break

def floor():
    t0 = time.perf_counter()
    for i in range(0, len(texts), 256):
        tok(texts[i:i + 256], add_special_tokens=False)
    return time.perf_counter() - t0

def ours(n):
    os.environ["PHITUNE_CACHE"] = os.path.join(work, f"cache-{n}")
    t0 = time.perf_counter()
    ensure_built(sample, sample, ChatTask(), tok, %d, 8 << 20)
    return time.perf_counter() - t0

floors, builds = [], []
for n in range(3):
    floors.append(floor())
    builds.append(ours(n))
import shutil
shutil.rmtree(work, ignore_errors=True)
print(json.dumps({"mb": round(size / 1e6, 2), "floor_s": [round(x, 2) for x in floors],
                  "phitune_s": [round(x, 2) for x in builds],
                  "ratio": round(statistics.median(builds) / statistics.median(floors), 2)}))
""" % MAX_SEQ_LEN


def same_process_ratio(path: Path, megabytes: float, python: str, env: dict) -> dict:
    result = measure([python, "-c", SAME_PROCESS_DRIVER, str(path), str(int(megabytes * 1e6))], env)
    lines = result["stdout"].strip().splitlines()
    return json.loads(lines[-1]) if result["returncode"] == 0 and lines else {"error": result["stderr"][-500:]}


def measure(cmd: list[str], env: dict, timeout: float = 7200) -> dict:
    """Wall time and peak RSS (sum over the process tree, sampled every 0.1 s) of one command."""
    import psutil

    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root] + root.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        if time.time() - started > timeout:
            proc.kill()
        time.sleep(0.1)
    out, err = proc.communicate()
    return {"wall_s": round(time.time() - started, 2), "peak_rss_mb": round(peak / 2**20, 1),
            "returncode": proc.returncode, "stdout": out[-2000:], "stderr": err[-2000:] if proc.returncode else ""}


def _env(cache: Path) -> dict:
    return {**os.environ, "PHITUNE_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _fresh_cache(root: Path, models: Path) -> Path:
    """An empty data cache that shares the built-in model (so no run pays for building it)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "models").symlink_to(models)
    return root


def run_size(path: Path, megabytes: float, work: Path, models: Path, *, cold_train: bool, floor_mb: float,
             python: str, ratio_mb: float = 10) -> dict:
    cache = work / "cache"
    check = [python, "-m", "phitune.cli", "data", "check", str(path), "--task", "chat", "--model", "builtin:tiny-phi3",
             "--max-seq-len", str(MAX_SEQ_LEN), "--no-progress"]
    row: dict = {"file_mb": round(path.stat().st_size / 1e6, 1), "records": sum(1 for _ in open(path, "rb"))}

    def first_step(label: str) -> None:
        out = work / f"run-{label}"
        shutil.rmtree(out, ignore_errors=True)
        result = measure([python, "-c", FIRST_STEP_DRIVER, str(RECIPE), str(path), str(time.time()), str(out)],
                         _env(cache))
        step = [line for line in result["stdout"].splitlines() if line.startswith("first_step_s=")]
        result["first_step_s"] = float(step[0].split("=")[1]) if step else None
        row[label] = result

    if cold_train:
        _fresh_cache(cache, models)
        first_step("train_cold")
    _fresh_cache(cache, models)
    row["check_cold"] = measure(check, _env(cache))
    row["check_warm"] = measure(check, _env(cache))
    first_step("train_warm")
    floor_bytes = int(min(megabytes, floor_mb) * 1e6)
    floor = measure([python, "-c", FLOOR_DRIVER, str(path), str(floor_bytes)], _env(cache))
    measured = json.loads(floor["stdout"].strip().splitlines()[-1])
    mb_per_s = measured["bytes"] / 1e6 / measured["encode_s"]
    row["floor"] = {"measured_mb": round(measured["bytes"] / 1e6, 1), "encode_s": measured["encode_s"],
                    "mb_per_s": round(mb_per_s, 3), "whole_file_s": round(row["file_mb"] / mb_per_s, 1),
                    "extrapolated": measured["bytes"] < path.stat().st_size * 0.99}
    row["same_process"] = same_process_ratio(path, min(megabytes, ratio_mb), python, _env(cache))
    # Cold minus warm is the tokenization itself (both pay the same start-up: imports, tokenizer load).
    row["check_cold_vs_floor"] = round(row["check_cold"]["wall_s"] / row["floor"]["whole_file_s"], 2)
    row["tokenize_s"] = round(row["check_cold"]["wall_s"] - row["check_warm"]["wall_s"], 2)
    row["tokenize_vs_floor"] = round(row["tokenize_s"] / row["floor"]["whole_file_s"], 2)
    return row


def table(results: dict) -> str:
    """The README table: one row per file size."""

    def cell(row: dict, key: str) -> str:
        item = row.get(key)
        if not item:
            return "not measured"
        seconds = item.get("first_step_s") or item["wall_s"]
        return f"{seconds:.0f} s / {item['peak_rss_mb']:.0f} MB"

    lines = ["| file | records | `data check` cold | `data check` warm | `train` to step 1, cold | `train` to step 1, warm "
             "| tokenizer's own batch encode (floor) | cold build / floor, same process |",
             "|---|---|---|---|---|---|---|---|"]
    for size, row in results["sizes"].items():
        floor = row["floor"]
        floor_text = f"{floor['mb_per_s']:.2f} MB/s" + (f" (on {floor['measured_mb']:g} MB)" if floor["extrapolated"] else "")
        ratio = row.get("same_process", {}).get("ratio")
        ratio_text = f"{ratio:.2f}x (on {row['same_process']['mb']:g} MB)" if ratio else "not measured"
        lines.append(f"| {row['file_mb']:g} MB | {row['records']:,} | {cell(row, 'check_cold')} | {cell(row, 'check_warm')} "
                     f"| {cell(row, 'train_cold')} | {cell(row, 'train_warm')} | {floor_text} | {ratio_text} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 10, 100, 1000], help="file sizes in MB")
    parser.add_argument("--keep", type=Path, default=None, help="folder for the generated files (kept)")
    parser.add_argument("--cold-train-max-mb", type=float, default=100,
                        help="measure cold-cache train only up to this size (above it, cold tokenization is the "
                             "same build `data check` cold measures)")
    parser.add_argument("--floor-max-mb", type=float, default=100,
                        help="measure the tokenizer's own throughput on at most this much of a file")
    parser.add_argument("--python", default=sys.executable, help="interpreter running phitune (e.g. another checkout's)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "data_scale.json")
    parser.add_argument("--table", type=Path, default=None, help="print the README table of a results file and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="phitune-data-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    build = subprocess.run([args.python, "-c", "from phitune.models.tiny import builtin_model_path; "
                            "print(builtin_model_path('builtin:tiny-phi3'))"], capture_output=True, text=True,
                           env=_env(folder / "model-build"), check=True)
    models = Path(build.stdout.strip().splitlines()[-1]).parent
    results = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}, "max_seq_len": MAX_SEQ_LEN,
               "sizes": {}}
    for megabytes in args.sizes:
        path = generate(folder / f"chat-{megabytes:g}mb.jsonl", megabytes)
        print(f"{megabytes:g} MB: {path}", flush=True)
        row = run_size(path, megabytes, folder / "work", models, cold_train=megabytes <= args.cold_train_max_mb,
                       floor_mb=args.floor_max_mb, python=args.python)
        results["sizes"][f"{megabytes:g}"] = row
        print(json.dumps({k: (v if not isinstance(v, dict) else {x: y for x, y in v.items() if x not in ("stdout", "stderr")})
                          for k, v in row.items()}), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
