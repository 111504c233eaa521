"""`phitune recipe schema`: the JSON Schema of a recipe (for editors and CI)."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("recipe", help="recipe tools (schema)")
    rsub = p.add_subparsers(dest="recipe_command", metavar="SUBCOMMAND", required=True)
    s = rsub.add_parser("schema", help="print the recipe JSON Schema")
    s.set_defaults(handler=run_schema)


def run_schema(args) -> int:
    from phitune.recipe.load import recipe_json_schema

    print(json.dumps(recipe_json_schema(), indent=2))
    return 0
