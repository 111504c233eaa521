"""`phitune data check FILE...`: record counts, token-length stats and every bad record as FILE:LINE.

Checks exactly what training would (same readers, task formatter, chat template and max_seq_len),
so a clean check means `phitune train` will not stop on the data. Exit 0 if clean, 2 otherwise.
Stats go to stdout; bad records go to stderr: the first PROBLEMS_LISTED and a count, and all of them
in a file whose path is printed. The file is streamed into the tokenized-data cache, so memory stays
flat in the file size and a following `phitune train` with the same tokenizer maps it instead of
tokenizing again.

Token counts are exact only with the model's own tokenizer. Without one (no --model / --recipe, or a
model whose tokenizer cannot be loaded here, e.g. a hub id offline or an Azure ML registry model),
lengths are estimated with the built-in tokenizer, the output says so, and no record is rejected on
an estimate.
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
                   help="model whose tokenizer and chat template measure lengths (default: the recipe's; without "
                        "either, lengths are estimated with builtin:tiny-phi3 and not enforced)")
    c.add_argument("--max-seq-len", type=int, default=None, help="longest allowed example in tokens (default: the recipe's, else 1024)")
    c.add_argument("--recipe", default=None, help="take task keys, model and max_seq_len from this recipe")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_set_option(c)
    c.set_defaults(handler=run_check)


def run_check(args) -> int:
    from phitune.data.labels import with_task_labels
    from phitune.data.loader import PROBLEMS_LISTED, file_report, open_tokenized
    from phitune.data.readers import require_local_file
    from phitune.data.records import DataReport
    from phitune.data.stats import distinct_fixes, format_file_report

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
    tokenizer, estimate = _tokenizer_for(args, recipe)
    max_len = recipe.train.max_seq_len

    report, tokenized = DataReport(), []
    for path, display, role in targets:
        file = open_tokenized(path, recipe, tokenizer, display=display, progress=not args.no_progress,
                              enforce_length=estimate is None)
        tokenized.append(file)
        report.files.append(file_report(file, role))
    _check_labels_seen_in_training(recipe, targets, report)

    counted = f"{ESTIMATOR} (an estimate)" if estimate else recipe.model.name
    print(f"tokenizer: {counted}; task: {recipe.task.type}; max_seq_len: {max_len}")
    if estimate:
        print(f"lengths are estimates, counted with {ESTIMATOR}'s tokenizer: {estimate}. No record is rejected for "
              "its length; pass --model (a local folder or a cached hub id) for exact counts.")
    over = []
    for file_report_, file in zip(report.files, tokenized):
        print(format_file_report(file_report_))
        if estimate:
            long_rows = (file.lengths > max_len).nonzero()[0]
            if len(long_rows):
                print(f"  about {len(long_rows)} record(s) may be longer than max_seq_len={max_len} (estimated; not rejected)")
                over.extend((file, int(r)) for r in long_rows[:PROBLEMS_LISTED - len(over)])
    for file, row in over:
        print(f"{file.display}:{int(file.lines[row])}: about {int(file.lengths[row])} tokens by {ESTIMATOR}'s count, "
              f"more than max_seq_len={max_len} (an estimate: not rejected)", file=sys.stderr)
    bad = sum(f.skipped for f in report.files)
    if not bad:
        print("ok: every record is usable")
        return 0
    problems = report.problems
    for problem in problems[:PROBLEMS_LISTED]:
        print(f"{problem.location}: {problem.message}", file=sys.stderr)
    if bad > PROBLEMS_LISTED:
        print(f"... and {bad - PROBLEMS_LISTED} more", file=sys.stderr)
    fixes = distinct_fixes(report)
    if fixes:
        print("how to fix:", file=sys.stderr)
        for fix in fixes:
            print(f"  - {fix}", file=sys.stderr)
    for file_report_, file in zip(report.files, tokenized):
        if file_report_.skipped:
            listing = _write_problems(file, file_report_)
            print(f"all {file_report_.skipped} bad record(s) of {file_report_.path}: {listing}", file=sys.stderr)
    print(f"{bad} bad record{'s' if bad != 1 else ''} (training with data.on_error: fail would stop; "
          "with skip it would drop them)", file=sys.stderr)
    return 2


ESTIMATOR = "builtin:tiny-phi3"


def _tokenizer_for(args, recipe):
    """(tokenizer, None) with the model's own tokenizer; (the built-in one, why) when it is not available."""
    from phitune.errors import ModelError
    from phitune.models.loader import load_tokenizer
    from phitune.recipe.sections import ModelSpec

    if args.model or args.recipe:
        try:
            return load_tokenizer(recipe.model), None
        except ModelError as exc:
            reason = exc.problems[0].message if exc.problems else str(exc)
            why = f"the tokenizer of {recipe.model.name} cannot be loaded here ({reason})"
    else:
        why = "no model was given (--model or --recipe)"
    return load_tokenizer(ModelSpec(name=ESTIMATOR)), why


def _write_problems(file, report) -> str:
    """Every bad record of `file` as FILE:LINE: reason, one per line, beside its cache; the path."""
    path = file.folder / "problems.txt"
    listed = {p.location for p in report.problems}
    with open(path, "w", encoding="utf-8") as out:
        for _, bad in file.problems():
            out.write(f"{bad.location}: {bad.message}\n")
            listed.discard(bad.location)
        for problem in report.problems:  # found by this check only (labels never seen in training)
            if problem.location in listed:
                out.write(f"{problem.location}: {problem.message}\n")
    return str(path)


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
