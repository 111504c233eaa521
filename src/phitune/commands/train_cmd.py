"""`phitune train RECIPE --output DIR [--resume | --overwrite] [--nproc N] [--set k=v ...]`: train locally and
print a summary. Exit codes: 0 done, 2 bad input or an unusable --output, 130 stopped by Ctrl-C,
143 stopped by SIGTERM (both after writing a checkpoint to resume from)."""

from __future__ import annotations

import os

from phitune.commands.common import add_set_option, load_recipe_from_args


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune locally from a recipe (LoRA, DoRA, QLoRA, IA3, LoHa, LoKr, prompt or prefix tuning, or full)")
    p.add_argument("recipe", help="recipe YAML (or resolved JSON)")
    p.add_argument("--output", "-o", default=None, help="run folder (default runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in the --output folder (it stays until the new run is complete)")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train with N processes (DeepSpeed; one per GPU, or CPU processes with gloo)")
    add_set_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in CI logs)")
    p.add_argument("--verbose", "-v", action="store_true", help="show data and library logs")
    p.set_defaults(handler=run)


def run(args) -> int:
    recipe = load_recipe_from_args(args)
    from phitune.lazy_imports import skip_bitsandbytes_for

    skip_bitsandbytes_for(recipe)  # this process trains this recipe only: no QLoRA, no 1-2 s bitsandbytes import
    out = args.output or f"runs/{recipe.name}"
    from phitune.errors import TrainingInterrupted
    from phitune.training.run import train

    if args.nproc is not None:
        from phitune.distributed import launcher as launch

        launch.check_nproc(args.nproc)
        if launch.should_launch(args.nproc):  # not already a rank (torchrun / Azure set RANK)
            from phitune.training.deepspeed_backend import check_launchable

            check_launchable(recipe, out, args.resume, args.overwrite)
            print(f"training {recipe.name}: {recipe.method.type} on {recipe.model.name} -> {out} "
                  f"({args.nproc} processes)", flush=True)
            return launch.launch(args.nproc, launch.child_argv(args, out))
    main_rank = os.environ.get("RANK", "0") == "0"
    if main_rank:
        print(f"training {recipe.name}: {recipe.method.type} on {recipe.model.name} -> {out}", flush=True)
    try:
        result = train(recipe, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    except TrainingInterrupted as exc:
        sets = "".join(f" --set {s}" for s in args.overrides)
        nproc = f" --nproc {args.nproc}" if args.nproc else ""
        command = f"phitune train {args.recipe} --output {out}{sets}{nproc} --resume"
        error = TrainingInterrupted(exc.summary, [type(p)(p.location, p.message, f"resume with: {command}")
                                                  for p in exc.problems])
        error.exit_code = exc.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
        raise error from None
    except KeyboardInterrupt as stop:  # a signal before training started: nothing to resume
        from phitune.training.signals import exit_code, signal_name

        error = TrainingInterrupted(f"stopped by {signal_name(stop)} outside the training steps (no new checkpoint was written)")
        error.exit_code = exit_code(stop)
        raise error from None
    if main_rank:
        print(summary(result))
    return 0


def summary(result) -> str:
    """The end-of-run report: losses, speed, before/after evaluation, where everything went."""
    m = result.metrics
    lines = [f"done: {result.output_dir}  ({m['steps']} steps in {m['train_runtime_s']:.1f} s, "
             f"{(m['tokens_per_s'] or 0):,.0f} tokens/s, peak RSS {m['peak_rss_mb']:.0f} MB, "
             f"{m['trainable_params']:,} of {m['total_params']:,} params trained)"]
    losses = f"final train loss {_fmt(m['final_train_loss'])}"
    if m.get("final_eval_loss") is not None:
        losses += f", final eval loss {_fmt(m['final_eval_loss'])}"
    lines.append(f"  {losses}")
    before, after = m.get("eval_before"), m.get("eval_after")
    if before and after and (before.get("examples") or before.get("perplexity") is not None):
        # plain-text completion has no generations to score, only held-out perplexity
        count = f"{after['examples']} examples" if after.get("examples") else "held-out text"
        lines.append(f"  held-out evaluation ({count}):")
        for key in [k for k in after if k not in ("examples", "samples", "eval_tokens")]:
            lines.append(f"    {key:<12} before {_fmt(before.get(key), key)}  ->  after {_fmt(after.get(key), key)}")
        for row in after.get("samples", [])[:3]:
            mark = "ok " if row["correct"] else "bad"
            lines.append(f"    [{mark}] {row['source']}: expected {row['reference']!r}, got {row['prediction']!r}")
    outputs = ", ".join(f"{name}/" if name != "tokenizer" else "tokenizer/" for name in result.outputs)
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


def _fmt(value, key: str = "") -> str:
    if value is None:
        return "-"
    if key == "exact_match":
        return f"{value:.1%}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
