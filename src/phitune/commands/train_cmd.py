"""`phitune train RECIPE --output DIR [--resume] [--nproc N] [--set k=v ...]`: train locally and print a summary."""

from __future__ import annotations

import os

from phitune.commands.common import add_set_option, load_recipe_from_args


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune locally from a recipe (LoRA, DoRA or full)")
    p.add_argument("recipe", help="recipe YAML (or resolved JSON)")
    p.add_argument("--output", "-o", default=None, help="run folder (default runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train with N processes (DeepSpeed; one per GPU, or CPU processes with gloo)")
    add_set_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in CI logs)")
    p.add_argument("--verbose", "-v", action="store_true", help="show data and library logs")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.commands.quiet import quiet_libraries

    quiet_libraries(args.verbose)
    recipe = load_recipe_from_args(args)
    out = args.output or f"runs/{recipe.name}"
    from phitune.errors import TrainingInterrupted
    from phitune.train.run import train

    if args.nproc is not None:
        from phitune.train import launch

        launch.check_nproc(args.nproc)
        if launch.should_launch(args.nproc):  # not already a rank (torchrun / Azure set RANK)
            from phitune.train.ds_run import check_launchable

            check_launchable(recipe, out, args.resume)
            print(f"training {recipe.name}: {recipe.method.type} on {recipe.model.name} -> {out} "
                  f"({args.nproc} processes)", flush=True)
            return launch.launch(args.nproc, launch.child_argv(args, out))
    main_rank = os.environ.get("RANK", "0") == "0"
    if main_rank:
        print(f"training {recipe.name}: {recipe.method.type} on {recipe.model.name} -> {out}", flush=True)
    try:
        result = train(recipe, out, resume=args.resume, progress=not args.no_progress)
    except TrainingInterrupted as exc:
        sets = "".join(f" --set {s}" for s in args.overrides)
        nproc = f" --nproc {args.nproc}" if args.nproc else ""
        command = f"phitune train {args.recipe} --output {out}{sets}{nproc} --resume"
        raise TrainingInterrupted(exc.summary, [type(p)(p.location, p.message, f"resume with: {command}")
                                                for p in exc.problems]) from None
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
    lines.append(f"  try it: phitune generate {result.output_dir} --prompt \"...\"")
    return "\n".join(lines)


def _fmt(value, key: str = "") -> str:
    if value is None:
        return "-"
    if key == "exact_match":
        return f"{value:.1%}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
