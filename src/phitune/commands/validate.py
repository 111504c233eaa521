"""`phitune validate RECIPE`: every recipe problem at once, exit 0 or 2."""

from __future__ import annotations

from phitune.commands.common import add_set_option, load_recipe_from_args


def register(sub) -> None:
    p = sub.add_parser("validate", help="validate a recipe and print every problem at once")
    p.add_argument("recipe", help="recipe YAML (or resolved JSON)")
    add_set_option(p)
    p.add_argument("--print", dest="print_resolved", action="store_true", help="print the resolved recipe JSON")
    p.set_defaults(handler=run)


def run(args) -> int:
    recipe = load_recipe_from_args(args, check_paths=True)  # paths exist and are the right kind; no data scan
    if args.print_resolved:
        print(recipe.resolved_json(), end="")
    else:
        print(f"ok: {args.recipe} is valid (method {recipe.method.type}, task {recipe.task.type}, "
              f"target {recipe.target.type}, hash {recipe.content_hash()[:12]})")
    return 0
