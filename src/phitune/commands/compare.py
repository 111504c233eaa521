"""`phitune compare RECIPE --methods lora,dora,qlora,ia3,prompt_tuning,full [--steps N]`: train the recipe with
each method (one process each) and write compare.md, compare.csv and compare.png."""

from __future__ import annotations

from phitune.commands.common import add_set_option
from phitune.compare import DEFAULT_METHODS as METHODS  # stdlib-only module: cheap for --help

DEFAULT_METHODS = ",".join(METHODS)


def register(sub) -> None:
    p = sub.add_parser("compare", help="train a recipe with several methods and tabulate memory, speed and loss")
    p.add_argument("recipe", help="recipe YAML (or resolved JSON)")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated method types (default {DEFAULT_METHODS})")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="optimizer steps per method (train.max_steps)")
    p.add_argument("--output", "-o", default=None, help="folder for the table, chart and runs (default runs/<name>-compare)")
    add_set_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.compare import compare_methods
    from phitune.errors import Problem, RecipeError
    from phitune.recipe.load import load_recipe

    if args.steps is not None and args.steps < 1:
        raise RecipeError("--steps must be at least 1", [Problem("--steps", f"is {args.steps}", "use --steps 20")])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    out = args.output or f"runs/{load_recipe(args.recipe, overrides=args.overrides).name}-compare"
    print(f"comparing {', '.join(methods)} on {args.recipe} -> {out}", flush=True)
    result = compare_methods(args.recipe, methods, out, steps=args.steps, overrides=args.overrides,
                             progress=not args.no_progress)
    print(result.files["md"].read_text(encoding="utf-8"))
    print(f"wrote {result.files['md']}, {result.files['csv']}, {result.files['png']}")
    return 0
