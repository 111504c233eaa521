"""What a finished run writes (layout in phitune.models.run_dir), each folder atomically.

Order matters: tokenizer/, adapter/ or model/, merged/ (merging folds the adapter into the base
weights in place, so it goes after everything that needs the unmerged model), loss.png, and
metrics.json last: its presence is what says the run completed.
"""

from __future__ import annotations

import os
from pathlib import Path

from phitune.models import run_dir as layout
from phitune.train.files import atomic_dir, write_json_atomic

# Everything a previous run may have left in a run folder (a fresh run into it removes these).
RUN_ENTRIES = (layout.TOKENIZER, layout.ADAPTER, layout.FULL_MODEL, layout.MERGED, layout.CHECKPOINTS,
               layout.METRICS, "loss.png", "eval.json", "eval-predictions.jsonl", layout.RESOLVED)


def save_model_outputs(model, tokenizer, recipe, run_dir: Path) -> dict[str, Path]:
    """tokenizer/, then adapter/ (PEFT methods) or model/ (full), then merged/ when output.merge."""
    from phitune.models.adapters import is_adapter_model

    run_dir = Path(run_dir)
    written: dict[str, Path] = {}
    with atomic_dir(run_dir / layout.TOKENIZER) as tmp:
        tokenizer.save_pretrained(tmp)
    written["tokenizer"] = run_dir / layout.TOKENIZER
    if is_adapter_model(model):
        with atomic_dir(run_dir / layout.ADAPTER) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
        written["adapter"] = run_dir / layout.ADAPTER
        if recipe.output.merge:
            merged = model.merge_and_unload()
            with atomic_dir(run_dir / layout.MERGED) as tmp:
                merged.save_pretrained(tmp, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
            written["merged"] = run_dir / layout.MERGED
    else:
        with atomic_dir(run_dir / layout.FULL_MODEL) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        written["model"] = run_dir / layout.FULL_MODEL
    return written


def plot_loss(history: list[dict], eval_history: list[dict], path: Path) -> Path:
    """Train (per step) and eval loss curves. Uses matplotlib's Figure directly: no pyplot global
    state and no display backend, so it works headless and in threads."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    if history:
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss", linewidth=1.2)
    if eval_history:
        ax.plot([e["step"] for e in eval_history], [e["eval_loss"] for e in eval_history], "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("token cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (phitune.host_memory.peak_rss_bytes)."""
    from phitune.host_memory import peak_rss_bytes

    return peak_rss_bytes() / (1024 * 1024)


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def build_metrics(state, *, trainable: int, total: int, data_report: dict, outputs: dict[str, Path],
                  eval_before: dict | None, eval_after: dict | None) -> dict:
    """The metrics.json body: every number a user or the README quotes comes from here."""
    history, evals = state.history, state.eval_history
    return {
        "steps": state.global_step,
        "epochs_started": state.epoch + 1,
        "final_train_loss": history[-1]["loss"] if history else None,
        "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
        "train_tokens": state.train_tokens,
        "label_tokens": state.label_tokens,
        "train_runtime_s": round(state.loop_time_s, 3),
        "step_time_s": round(state.step_time_s, 3),
        "tokens_per_s": state.train_tokens / state.step_time_s if state.step_time_s else None,
        "trainable_params": trainable,
        "total_params": total,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "device": state.extra.get("device"),
        "cpu_threads": state.extra.get("cpu_threads"),
        "eval_before": eval_before,
        "eval_after": eval_after,
        "data": data_report,
        "outputs": {k: str(v) for k, v in outputs.items()},
        "train_loss_history": history,
        "eval_loss_history": evals,
    }


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    return write_json_atomic(Path(run_dir) / layout.METRICS, metrics)
