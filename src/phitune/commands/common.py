"""Options shared by several subcommands."""

from __future__ import annotations

import argparse


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set train.lr=1e-3 (repeatable)",
    )


def load_recipe_from_args(args: argparse.Namespace, check_paths: bool = False):
    from phitune.recipe.load import load_recipe

    return load_recipe(args.recipe, overrides=args.overrides, check_paths=check_paths)
