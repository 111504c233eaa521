"""`phitune data check FILE...`: record counts, token-length stats and every bad record as FILE:LINE.

Checks exactly what training would (same readers, task formatter, chat template and max_seq_len),
so a clean check means `phitune train` will not stop on the data. Exit 0 if clean, 2 otherwise.
Stats go to stdout; bad records go to stderr.
"""

from __future__ import annotations

import sys

from phitune.commands.common import add_set_option

LABELLED_TASKS = ("classification", "ner")


def task_key_options() -> dict[str, str]:
    """`--sentence1-key`-style flags for every record key a task reads, generated from the task
    schema (phitune.recipe.task) so the flags and the recipe fields cannot drift apart."""
    from phitune.recipe.task import TASK_CLASSES

    options: dict[str, str] = {}
    for cls in TASK_CLASSES:
        for name in cls.model_fields:
            if name.endswith("_key") or name in ("source_lang", "target_lang"):
                options.setdefault(name, "--" + name.replace("_", "-"))
    return options


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
    from phitune.recipe.task import TASK_TYPES

    c.add_argument("--task", default=None, choices=TASK_TYPES,
                   help="task type (default: the recipe's, else chat)")
    keys = c.add_argument_group("task keys (override the recipe's task fields)")
    for field, flag in task_key_options().items():
        keys.add_argument(flag, dest=f"task_{field}", default=None, metavar="KEY", help=f"task.{field}")
    keys.add_argument("--labels", default=None, metavar="A,B,...",
                      help="task.labels: the label set (classification) or BIO tags (ner), comma-separated")
    keys.add_argument("--head", default=None, choices=("generative", "classifier"), help="task.head")
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

    from phitune.data.labels import with_task_labels

    recipe = _recipe_for(args)
    if args.files:
        targets = [(path, path, "data") for path in args.files]
    else:
        targets = [(recipe.data.train, recipe.data.train, "train")]
        if recipe.data.validation:
            targets.append((recipe.data.validation, recipe.data.validation, "validation"))
    for path, display, _ in targets:  # a missing file fails before the (slower) tokenizer load
        require_local_file(path, display)
    recipe = with_task_labels(recipe)  # a classifier head maps labels to ids: read them from data.train
    tokenizer = load_tokenizer(recipe.model)

    report = DataReport()
    for path, display, role in targets:
        scan = scan_file(path, recipe.task, tokenizer, recipe.train.max_seq_len, role=role, display=display)
        report.files.append(scan.report)
    _check_labels_seen_in_training(recipe, targets, report)

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
    fields = {f: getattr(args, f"task_{f}") for f in task_key_options() if getattr(args, f"task_{f}") is not None}
    if args.labels is not None:
        fields["labels"] = [label.strip() for label in args.labels.split(",")]
    if args.head is not None:
        fields["head"] = args.head
    if fields:
        base["task"] = {**(base.get("task") or {"type": "chat"}), **fields}
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


def _check_labels_seen_in_training(recipe, targets, report) -> None:
    """Without task.labels, the label set is the training file's: a held-out record whose label the
    training data never shows is reported (a model cannot learn to predict it)."""
    from phitune.data.labels import complete_bio, labels_in_file, unseen_label_records

    task = recipe.task
    if task.type not in LABELLED_TASKS or task.labels is not None or len(targets) < 2:
        return
    known = set(labels_in_file(targets[0][0], task))
    if task.type == "ner":
        known = set(complete_bio(known))
    for (path, display, _), file_report in zip(targets[1:], report.files[1:]):
        bad = unseen_label_records(path, task, known, display)
        flagged = {p.location for p in file_report.problems}
        bad = [b for b in bad if b.location not in flagged]
        file_report.add_bad(bad)
        file_report.used -= len(bad)
