"""The end-of-run report `phitune train` prints, and the same report of a finished run folder (what
`submit --target local` and a local pipeline print at their end). Library code: it returns text and
prints nothing."""

from __future__ import annotations


def summary(result) -> str:
    """The end-of-run report: losses, speed, before/after evaluation, where everything went."""
    m = result.metrics
    lines = [f"done: {result.output_dir}  ({m['steps']} steps in {m['train_runtime_s']:.1f} s, "
             f"{(m['tokens_per_s'] or 0):,.0f} tokens/s, peak RSS {m['peak_rss_mb']:.0f} MB, "
             f"{m['trainable_params']:,} of {m['total_params']:,} params trained)"]
    losses = f"final train loss {fmt(m['final_train_loss'])}"
    if m.get("final_eval_loss") is not None:
        losses += f", final eval loss {fmt(m['final_eval_loss'])}"
    lines.append(f"  {losses}")
    before, after = m.get("eval_before"), m.get("eval_after")
    if before and after and (before.get("examples") or before.get("perplexity") is not None):
        # plain-text completion has no generations to score, only held-out perplexity
        count = f"{after['examples']} examples" if after.get("examples") else "held-out text"
        lines.append(f"  held-out evaluation ({count}):")
        for key in [k for k in after if k not in ("examples", "samples", "eval_tokens")]:
            lines.append(f"    {key:<12} before {fmt(before.get(key), key)}  ->  after {fmt(after.get(key), key)}")
        for row in after.get("samples", [])[:3]:
            mark = "ok " if row["correct"] else "bad"
            lines.append(f"    [{mark}] {row['source']}: expected {row['reference']!r}, got {row['prediction']!r}")
    outputs = ", ".join(f"{name}/" for name in result.outputs)
    lines.append(f"  outputs: {outputs}, metrics.json, loss.png, resolved_recipe.json")
    lines.append(f"  tracking: {result.tracking}")
    lines.append(f"  try it: {try_it(result.output_dir)}")
    return "\n".join(lines)


def run_dir_summary(run_dir, tracking: str | None = None) -> str:
    """`summary` of a finished run folder, from its metrics.json (submit --target local, local-pipeline)."""
    import json
    from pathlib import Path

    from phitune.training.run import RunResult

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    outputs = {name: Path(path) for name, path in (metrics.get("outputs") or {}).items()}
    if tracking is None:
        from phitune.tracking import default_tracking_uri

        tracking = f"MLflow store {default_tracking_uri()} (mlflow ui there shows the run)"
    return summary(RunResult(run_dir, metrics, outputs, tracking))


def try_it(run_dir) -> str:
    """A command that works on this run: a classifier head labels a text (generate prints the label
    with its probabilities, or the tagged entities); plain-text completion is scored on held-out text;
    every other task answers a chat prompt."""
    import shlex
    from pathlib import Path

    from phitune.models.run_dir import RESOLVED, run_recipe
    from phitune.recipe.task import uses_head

    run = shlex.quote(str(run_dir))
    if not (Path(run_dir) / RESOLVED).is_file():
        return f'phitune generate {run} --prompt "..."'
    recipe = run_recipe(run_dir)
    task = recipe.task
    if uses_head(task):
        example = "Ada Lovelace worked with Charles Babbage in London" if task.type == "ner" else "a text to classify"
        return f'phitune generate {run} --prompt "{example}"'
    if task.type == "completion":
        data = recipe.data.validation or recipe.data.train
        return f"phitune eval {run} --data {shlex.quote(str(data))} --limit 20"
    return f'phitune generate {run} --prompt "..."'


def fmt(value, key: str = "") -> str:
    """A metric as the summary shows it: exact match in percent, floats to 4 significant digits."""
    if value is None:
        return "-"
    if key == "exact_match":
        return f"{value:.1%}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
