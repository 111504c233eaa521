"""`phitune train RECIPE --output DIR [--resume | --overwrite] [--nproc N] [--set k=v ...]`: train locally and
print a summary. Exit codes: 0 done, 2 bad input or an unusable --output, 130 stopped by Ctrl-C,
143 stopped by SIGTERM (both after writing a checkpoint to resume from)."""

from __future__ import annotations

import os

from phitune.commands.common import add_set_option, load_recipe_from_args
from phitune.run_summary import summary


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
