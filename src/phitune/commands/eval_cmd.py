"""`phitune eval RUN_DIR_OR_MODEL --data FILE [--limit N] [--output eval.json]`: the task's metrics
on a data file, plus a predictions JSONL (source, prompt, reference, prediction, correct)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run or model folder on a data file")
    p.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run folder from `phitune train`, or a model folder")
    p.add_argument("--data", required=True, help="data file in the task's format: JSONL, CSV/TSV or Parquet (as `phitune data check` reads it)")
    p.add_argument("--limit", type=int, default=None, help="evaluate at most N records")
    p.add_argument("--output", default=None, help="metrics file (default RUN_DIR/eval.json, or ./eval.json)")
    from phitune.recipe.task import TASK_TYPES

    p.add_argument("--task", choices=TASK_TYPES, default=None,
                   help="task type for a plain model folder (a run folder uses its recipe's task)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the recipe's eval.max_new_tokens")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from phitune.commands.quiet import add_verbose_option

    add_verbose_option(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.errors import Problem, RecipeError

    for flag in ("limit", "max_new_tokens"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise RecipeError("invalid option", [Problem(f"--{flag.replace('_', '-')}", "must be at least 1")])
    from phitune.evaluate.on_file import evaluate_on_file

    result, eval_json, preds = evaluate_on_file(args.model, args.data, limit=args.limit, output=args.output,
                                                task_type=args.task, max_new_tokens=args.max_new_tokens,
                                                progress=not args.no_progress)
    print(f"{args.model} on {args.data}: {result.summary()}")
    print(f"  wrote {eval_json} and {preds}")
    return 0
