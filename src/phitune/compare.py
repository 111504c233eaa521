"""`phitune compare`: train one recipe with several methods and measure each (the scenario table).

Every method runs as its own `phitune train` subprocess, so `peak_rss_mb` (the process's peak
resident memory, from metrics.json) belongs to that method alone. A method's run is the recipe with
its `method:` section replaced (the recipe's low-rank settings r / alpha / dropout / target_modules
carry over to the methods that have them; the others get their own defaults), `output.merge` and
before/after generation off (not measured here), and `train.max_steps` from `--steps`.

Writes into the output folder: runs/<method>/ (each a normal run folder), compare.csv, compare.md
and compare.png (loss curves of every method, bar charts on linear axes, the table). Numbers are measured on this machine, never estimated.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from phitune.errors import Problem, RecipeError, TrainError

DEFAULT_METHODS = ("lora", "dora", "qlora", "ia3", "prompt_tuning", "full")
COLUMNS = ("method", "trainable_params", "trainable_pct", "peak_rss_mb", "tokens_per_s", "final_train_loss",
           "final_eval_loss", "train_runtime_s", "wall_time_s")
ERROR_TAIL = 1500
EMBEDDINGS = ("embed_tokens", "wte", "word_embeddings")  # embedding layers' names in HF causal LMs


@dataclass
class MethodRun:
    method: str
    run_dir: Path
    metrics: dict | None = None
    wall_time_s: float = 0.0
    error: str | None = None

    def row(self) -> dict:
        m = self.metrics or {}
        total = m.get("total_params") or 0
        return {"method": self.method, "trainable_params": m.get("trainable_params"),
                "trainable_pct": round(100.0 * m["trainable_params"] / total, 4) if total else None,
                "peak_rss_mb": m.get("peak_rss_mb"), "tokens_per_s": _round(m.get("tokens_per_s"), 1),
                "final_train_loss": _round(m.get("final_train_loss"), 5), "final_eval_loss": _round(m.get("final_eval_loss"), 5),
                "train_runtime_s": m.get("train_runtime_s"), "wall_time_s": round(self.wall_time_s, 2)}


@dataclass
class Comparison:
    output_dir: Path
    runs: list[MethodRun]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict]:
        return [r.row() for r in self.runs]


def method_overrides(recipe, method: str) -> list[str]:
    """The `--set` overrides that turn `recipe` into a run of `method`."""
    # Settings the recipe's method shares with `method` carry over (r, alpha, target_modules...);
    # the rest are `method`'s defaults.
    from phitune.recipe.method import method_class

    current = recipe.method.model_dump(mode="json")
    run = method_class(method)
    section = {"type": method, **{k: v for k, v in current.items() if k in run.model_fields and k != "type"}}
    scales_linear_only = "feedforward_modules" in run.model_fields  # IA3
    if scales_linear_only and not isinstance(recipe.method, run) and section.get("target_modules"):
        from phitune.recipe.method import PHI3_FEEDFORWARD

        # IA3 scales linear layers only: a LoRA recipe's embed_tokens target (tiny-lora.yaml has one) stays out
        section["target_modules"] = [m for m in section["target_modules"] if m not in EMBEDDINGS]
        section["feedforward_modules"] = [m for m in PHI3_FEEDFORWARD if m in section["target_modules"]]
    sets = [f"method={json.dumps(section)}", "output.merge=false", "eval.before_after=false"]
    if run.own_rows and recipe.train.packing:
        sets.append("train.packing=false")  # virtual tokens are per row: packed examples would share them
    if not run.zero3_allowed and recipe.train.deepspeed is not None and recipe.train.deepspeed.stage == 3:
        sets.append("train.deepspeed.stage=2")
    return sets


def plan_runs(recipe_path: str | os.PathLike, methods: Sequence[str], steps: int | None,
              overrides: Sequence[str]) -> dict[str, list[str]]:
    """method -> the full override list, each validated now (a bad combination fails before any run)."""
    from phitune.recipe.load import load_recipe

    base = load_recipe(recipe_path, overrides=list(overrides))
    known = _method_types()
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise RecipeError("unknown method in --methods", [Problem("--methods", f"{', '.join(unknown) or 'empty list'}",
                                                                  f"choose from: {', '.join(known)}")])
    plans, problems = {}, []
    for method in dict.fromkeys(methods):
        sets = list(overrides) + method_overrides(base, method)
        if steps is not None:
            sets.append(f"train.max_steps={steps}")
        if base.tracking.backend != "none":
            sets.append(f"tracking.run_name={base.tracking.run_name or base.name}-{method}")
        try:
            load_recipe(recipe_path, overrides=sets)
        except RecipeError as exc:
            problems += [Problem(f"{method}: {p.location}", p.message, p.fix) for p in exc.problems]
        plans[method] = sets
    if problems:
        raise RecipeError("some methods cannot run with this recipe", problems)
    return plans


def compare_methods(recipe_path: str | os.PathLike, methods: Sequence[str], output_dir: str | os.PathLike, *,
                    steps: int | None = None, overrides: Sequence[str] = (), progress: bool = True) -> Comparison:
    """Train `recipe_path` once per method (each in its own process) and write the comparison files.
    Raises TrainError after writing them when any method failed."""
    from tqdm.auto import tqdm

    plans = plan_runs(recipe_path, methods, steps, overrides)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    bar = tqdm(plans.items(), desc="compare", unit="method", disable=not progress, dynamic_ncols=True)
    for method, sets in bar:
        bar.set_postfix(method=method, refresh=True)
        runs.append(_run_method(recipe_path, method, sets, out / "runs" / method))
    bar.close()
    result = Comparison(out, runs)
    result.files = write_outputs(result)
    failed = [r for r in runs if r.error]
    if failed:
        raise TrainError(f"{len(failed)} of {len(runs)} methods failed (table with the others in {out})", [
            Problem(r.method, r.error, f"log: {r.run_dir / 'train.log'}") for r in failed])
    return result


def _run_method(recipe_path, method: str, sets: list[str], run_dir: Path) -> MethodRun:
    # --overwrite: a comparison re-runs every method; a finished run from last time is replaced (only
    # once the new one is complete). An unfinished one is refused by `phitune train` (resume it first).
    cmd = [sys.executable, "-m", "phitune.cli", "train", str(recipe_path), "--output", str(run_dir), "--no-progress",
           "--overwrite"]
    for s in sets:
        cmd += ["--set", s]
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (run_dir / "train.log").write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    metrics_file = run_dir / "metrics.json"
    if proc.returncode != 0 or not metrics_file.is_file():
        tail = (proc.stderr.strip() or proc.stdout.strip())[-ERROR_TAIL:]
        return MethodRun(method, run_dir, wall_time_s=wall, error=f"exit {proc.returncode}: {tail}")
    return MethodRun(method, run_dir, json.loads(metrics_file.read_text()), wall)


def write_outputs(result: Comparison) -> dict[str, Path]:
    out = result.output_dir
    rows = result.rows
    files = {"csv": out / "compare.csv", "md": out / "compare.md", "png": out / "compare.png"}
    with open(files["csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, "error"])
        writer.writeheader()
        for run, row in zip(result.runs, rows):
            writer.writerow({**{k: "" if v is None else v for k, v in row.items()}, "error": _first_line(run.error)})
    files["md"].write_text(markdown_table(result), encoding="utf-8")
    plot(rows, files["png"], loss_curves(result.runs))
    return files


def markdown_table(result: Comparison) -> str:
    heads = ["method", "trainable params", "trainable %", "peak RSS (MB)", "tokens/s", "final train loss",
             "final eval loss", "train time (s)", "wall time (s)"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|"]
    for run, row in zip(result.runs, result.rows):
        if run.error:
            lines.append(f"| {run.method} | failed: {_first_line(run.error)} |" + " |" * (len(heads) - 2))
            continue
        cells = [run.method, f"{row['trainable_params']:,}", _fmt(row["trainable_pct"], ".3g"), _fmt(row["peak_rss_mb"], ",.0f"),
                 _fmt(row["tokens_per_s"], ",.0f"), _fmt(row["final_train_loss"], ".4f"), _fmt(row["final_eval_loss"], ".4f"),
                 _fmt(row["train_runtime_s"], ".1f"), _fmt(row["wall_time_s"], ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    steps = {(r.metrics or {}).get("steps") for r in result.runs if r.metrics}
    note = (f"\nMeasured on this machine: each method trained in its own process ({', '.join(map(str, sorted(steps)))} "
            "optimizer steps); peak RSS is that process's peak resident memory; tokens/s counts non-padding tokens "
            "over optimizer-step time; wall time includes start-up and model loading.\n")
    return "\n".join(lines) + "\n" + note


def plot(rows: list[dict], path: Path, curves: dict[str, dict] | None = None) -> Path:
    """compare.png: train and eval loss against steps for every method on one chart, bars on linear
    axes starting at zero (so a 2 % difference looks like 2 %), and the table beside them. Headless."""
    from phitune.files import atomic_file

    fig = build_figure(rows, curves or {})
    with atomic_file(path) as tmp:
        fig.savefig(tmp)
    return path


BARS = (("trainable_params", "trainable parameters"), ("peak_rss_mb", "peak RSS (MB)"), ("tokens_per_s", "tokens / s"))


def build_figure(rows: list[dict], curves: dict[str, dict]):
    """The figure (matplotlib Figure, no pyplot state): loss curves on top, three bar charts, the table."""
    from matplotlib.figure import Figure

    ok = [r for r in rows if r["trainable_params"] is not None]
    names = [r["method"] for r in ok]
    fig = Figure(figsize=(13, 9), dpi=100)
    grid = fig.add_gridspec(3, 3, height_ratios=[1.3, 1, 0.55])
    loss_ax = fig.add_subplot(grid[0, :])
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    for name in names:
        curve = curves.get(name) or {}
        train = curve.get("train") or []
        evals = curve.get("eval") or []
        if train:
            loss_ax.plot([s for s, _ in train], [v for _, v in train], color=colors[name], linewidth=1.0, alpha=0.8,
                         label=f"{name} train")
        if evals:
            loss_ax.plot([s for s, _ in evals], [v for _, v in evals], "o--", color=colors[name], markersize=4,
                         label=f"{name} eval")
    loss_ax.set_title("loss against optimizer steps (solid: train, dashed: held-out eval)")
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_ylabel("token cross-entropy")
    loss_ax.grid(alpha=0.3)
    if loss_ax.lines:
        loss_ax.legend(fontsize=8, ncol=max(1, min(len(names), 6)))
    for col, (key, title) in enumerate(BARS):
        ax = fig.add_subplot(grid[1, col])
        values = [r[key] or 0 for r in ok]
        bars = ax.bar(names, values, color=[colors[n] for n in names])
        ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, max(values or [1]) * 1.15 or 1)  # linear, from zero
        ax.tick_params(axis="x", labelrotation=30)
        ax.grid(axis="y", alpha=0.3)
    table_ax = fig.add_subplot(grid[2, :])
    table_ax.axis("off")
    heads = ["method", "trainable", "%", "peak RSS MB", "tokens/s", "train loss", "eval loss", "train s"]
    cells = [[r["method"], f"{r['trainable_params']:,}", _fmt(r["trainable_pct"], ".3g"), _fmt(r["peak_rss_mb"], ",.0f"),
              _fmt(r["tokens_per_s"], ",.0f"), _fmt(r["final_train_loss"], ".4f"), _fmt(r["final_eval_loss"], ".4f"),
              _fmt(r["train_runtime_s"], ".1f")] for r in ok]
    if cells:
        table = table_ax.table(cellText=cells, colLabels=heads, loc="center", cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
    fig.tight_layout()
    return fig


def loss_curves(runs: list[MethodRun]) -> dict[str, dict]:
    """method -> {"train": [(step, loss)], "eval": [(step, eval_loss)]} from each run's metrics.json."""
    out = {}
    for run in runs:
        m = run.metrics or {}
        out[run.method] = {"train": [(h["step"], h["loss"]) for h in m.get("train_loss_history") or []],
                           "eval": [(e["step"], e["eval_loss"]) for e in m.get("eval_loss_history") or []]}
    return out


def _short(value) -> str:
    if not value:
        return "0"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _method_types() -> list[str]:
    """Every method name, from the `MethodSpec` union (so new methods appear by themselves)."""
    from phitune.recipe.method import method_classes

    return list(method_classes())


def _round(value, digits: int):
    return round(value, digits) if isinstance(value, (int, float)) else value


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or [""])[-1].strip()[:200]
