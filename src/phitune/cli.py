"""The `phitune` command line: parse arguments, call the library, turn typed errors into messages.

Each subcommand lives in `phitune/commands/<name>.py` with `register(subparsers)`; those modules
import nothing heavy at import time, so `phitune --help` never imports torch or azure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from phitune.version import __version__
from phitune.errors import PhituneError

# Order here is the order in `phitune --help`. A new command: add its module name.
COMMAND_MODULES = [
    "validate",
    "recipe_cmd",
    "train_cmd",
    "compare",
    "generate",
    "eval_cmd",
    "estimate",
    "data_cmd",
    "cache_cmd",
    "tiny_model",
    "export_cmd",
    "serve",
    "submit",
    "jobs",
    "deploy",
    "lint",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phitune",
        description="Fine-tune Phi-family and other causal LMs from one recipe: locally, on Azure ML, or serverless.",
    )
    parser.add_argument("--version", action="version", version=f"phitune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"phitune.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from phitune.process import configure_process

    # Before anything is printed (argparse's messages echo what was typed) or any library is imported.
    configure_process(verbose=asks_for_verbose(sys.argv[1:] if argv is None else argv), redact_output=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from phitune.model_card import record_command

    record_command(sys.argv[1:] if argv is None else argv)  # model cards say how the model was made
    try:
        return int(args.handler(args) or 0)
    except PhituneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `phitune recipe schema | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 0


def asks_for_verbose(argv) -> bool:
    """`--verbose` / `-v` (the commands that take it: train, eval) is known before the arguments are
    parsed, so the process is configured once, before argparse prints anything."""
    return any(_means_verbose(arg) for arg in argv)


def _means_verbose(arg: str) -> bool:
    """What argparse reads as --verbose: the word, an unambiguous prefix of it (`--verb`), `-v`, or a
    group of short flags that starts with it (`-vo out`)."""
    if arg.startswith("--"):
        return len(arg) > 3 and "--verbose".startswith(arg)
    return arg.startswith("-v")


if __name__ == "__main__":
    sys.exit(main())
