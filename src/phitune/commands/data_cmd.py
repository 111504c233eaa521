"""`phitune data check FILE...`: record counts, token-length stats and every bad record as FILE:LINE.

Checks exactly what training would (same readers, task formatter, chat template and max_seq_len),
so a clean check means `phitune train` will not stop on the data. Exit 0 if clean, 2 otherwise.
Stats go to stdout; bad records go to stderr.
"""

from __future__ import annotations

import sys

from phitune.commands.common import add_set_option


def register(sub) -> None:
    p = sub.add_parser("data", help="data tools (check)")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    c = dsub.add_parser(
        "check",
        help="check data files: counts, token lengths and every bad record as FILE:LINE",
        description="Check data files the way training reads them. Exit 0 if every record is usable, 2 if not.",
    )
    c.add_argument("files", nargs="*", metavar="FILE",
                   help="JSONL file(s) to check (default with --recipe: its data.train and data.validation)")
    c.add_argument("--task", default=None, help="task type, e.g. chat or completion (default: the recipe's, else chat)")
    c.add_argument("--model", default=None,
                   help="model whose tokenizer and chat template measure lengths (default: the recipe's, else builtin:tiny-phi3)")
    c.add_argument("--max-seq-len", type=int, default=None, help="longest allowed example in tokens (default: the recipe's, else 1024)")
    c.add_argument("--recipe", default=None, help="take task keys, model and max_seq_len from this recipe")
    add_set_option(c)
    c.set_defaults(handler=run_check)


def run_check(args) -> int:
    from phitune.data.loader import scan_file
    from phitune.data.readers import require_local_file
    from phitune.data.records import DataReport
    from phitune.data.stats import distinct_fixes, format_file_report
    from phitune.models.loader import load_tokenizer

    recipe = _recipe_for(args)
    if args.files:
        targets = [(path, path, "data") for path in args.files]
    else:
        targets = [(recipe.data.train, recipe.data.train, "train")]
        if recipe.data.validation:
            targets.append((recipe.data.validation, recipe.data.validation, "validation"))
    for path, display, _ in targets:  # a missing file fails before the (slower) tokenizer load
        require_local_file(path, display)
    tokenizer = load_tokenizer(recipe.model)

    report = DataReport()
    for path, display, role in targets:
        scan = scan_file(path, recipe.task, tokenizer, recipe.train.max_seq_len, role=role, display=display)
        report.files.append(scan.report)

    print(f"tokenizer: {recipe.model.name}; task: {recipe.task.type}; max_seq_len: {recipe.train.max_seq_len}")
    for file_report in report.files:
        print(format_file_report(file_report))
    bad = sum(f.skipped for f in report.files)
    if not bad:
        print("ok: every record is usable")
        return 0
    for problem in report.problems:
        print(f"{problem.location}: {problem.message}", file=sys.stderr)
    fixes = distinct_fixes(report)
    if fixes:
        print("how to fix:", file=sys.stderr)
        for fix in fixes:
            print(f"  - {fix}", file=sys.stderr)
    print(f"{bad} bad record{'s' if bad != 1 else ''} (training with data.on_error: fail would stop; "
          "with skip it would drop them)", file=sys.stderr)
    return 2


def _recipe_for(args):
    """The recipe the check runs under: --recipe (or defaults), with FILE as data.train and the
    command-line flags applied, then --set overrides."""
    from phitune.errors import RecipeError, Problem
    from phitune.recipe.load import load_recipe

    if not args.files and not args.recipe:
        raise RecipeError("nothing to check", [Problem("FILE", "give a data file, or --recipe to check its data",
                                                       "e.g. phitune data check train.jsonl --task chat")])
    base = load_recipe(args.recipe).to_dict() if args.recipe else {}
    if args.files:
        base["data"] = {"train": args.files[0]}
    if args.task and (base.get("task") or {}).get("type") != args.task:
        base["task"] = {"type": args.task}
    if args.model:
        base["model"] = {**(base.get("model") or {}), "name": args.model, "revision": None}
    if args.max_seq_len is not None:
        base.setdefault("train", {})["max_seq_len"] = args.max_seq_len
    try:
        return load_recipe(base, overrides=args.overrides)
    except RecipeError as exc:
        if args.recipe:
            raise
        raise RecipeError("invalid `phitune data check` options", exc.problems) from None
