"""What a finished run writes (layout in phitune.models.run_dir), each folder atomically.

Order matters: tokenizer/, adapter/ or model/, merged/ (merging folds the adapter into the base
weights in place, so it goes after everything that needs the unmerged model), loss.png, and
metrics.json last: its presence is what says the run completed.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from phitune.models import run_dir as layout
from phitune.files import atomic_dir, atomic_file, write_json_atomic, writing

# Everything a previous run may have left in a run folder (a fresh run into it removes these).
RUN_ENTRIES = (layout.TOKENIZER, layout.ADAPTER, layout.FULL_MODEL, layout.MERGED, layout.CHECKPOINTS,
               layout.METRICS, "loss.png", "eval.json", "eval-predictions.jsonl", layout.RESOLVED)


def save_model_outputs(model, tokenizer, recipe, run_dir: Path) -> dict[str, Path]:
    """tokenizer/, then adapter/ (PEFT methods) or model/ (full), then merged/ when output.merge."""
    from phitune.lazy_imports import no_deepspeed_probe

    with writing("the trained model", run_dir), no_deepspeed_probe():
        return _save_model_outputs(model, tokenizer, recipe, Path(run_dir))


def _save_model_outputs(model, tokenizer, recipe, run_dir: Path) -> dict[str, Path]:
    from phitune.models.adapters import is_adapter_model

    written: dict[str, Path] = {}
    with atomic_dir(run_dir / layout.TOKENIZER) as tmp:
        tokenizer.save_pretrained(tmp)
    written["tokenizer"] = run_dir / layout.TOKENIZER
    if is_adapter_model(model):
        with atomic_dir(run_dir / layout.ADAPTER) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)  # the adapter folder travels alone (e.g. pushed to a hub)
        written["adapter"] = run_dir / layout.ADAPTER
        if recipe.output.merge:
            merged = model.merge_and_unload()
            with atomic_dir(run_dir / layout.MERGED) as tmp, inference_config(merged):
                merged.save_pretrained(tmp, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
            written["merged"] = run_dir / layout.MERGED
    else:
        with atomic_dir(run_dir / layout.FULL_MODEL) as tmp, inference_config(model):
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        written["model"] = run_dir / layout.FULL_MODEL
    return written



@contextmanager
def inference_config(model):
    """Save a model ready for inference: training turns the KV cache off (`use_cache: false`, needed
    with gradient checkpointing and padding-free rows); a saved model should generate with it on."""
    config = getattr(model, "config", None)
    before = getattr(config, "use_cache", None)
    if config is not None:
        config.use_cache = True
    try:
        yield
    finally:
        if config is not None:
            config.use_cache = before


def plot_loss(history: list[dict], eval_history: list[dict], path: Path, before_eval_loss: float | None = None) -> Path:
    """Train (per step) and eval loss curves, the eval curve starting from the held-out loss measured
    before training (step 0) when there is one. Uses matplotlib's Figure directly: no pyplot global
    state and no display backend, so it works headless and in threads."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    if history:
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss", linewidth=1.2)
    evals = [(e["step"], e["eval_loss"]) for e in eval_history]
    if before_eval_loss is not None and not any(step == 0 for step, _ in evals):
        evals.insert(0, (0, before_eval_loss))
        ax.annotate(f"before training {before_eval_loss:.3g}", (0, before_eval_loss), textcoords="offset points",
                    xytext=(8, 4), fontsize=8)
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("token cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with writing("the loss chart", path), atomic_file(path) as tmp:
        fig.savefig(tmp)
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
    with writing("metrics.json", run_dir):
        return write_json_atomic(Path(run_dir) / layout.METRICS, metrics)
