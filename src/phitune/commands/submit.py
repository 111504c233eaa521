"""`phitune submit RECIPE [--target local|local-pipeline|maap|maas|kaito] [--dry-run] [--set ...]`."""

from __future__ import annotations

from phitune.commands.common import add_set_option
from phitune.recipe.target import AZURE_TARGET_TYPES, LOCAL_TARGET_TYPES, TARGET_TYPES


def register(sub) -> None:
    p = sub.add_parser(
        "submit", help="run a recipe locally, as a local pipeline, on Azure ML compute (maap), serverless (maas) or "
                       "on Kubernetes with KAITO (kaito)",
        description="Run a recipe on a target. The recipe's `target:` section holds the defaults; --target picks "
                    "another. --dry-run sends nothing: for maap and maas it writes job.yml and request.json (the exact "
                    "REST body) to the output folder; for kaito it writes kaito.yaml (ConfigMap + Workspace, ready for "
                    "`kubectl apply -f`); for local-pipeline it prints each step's command line.")
    p.add_argument("recipe", help="recipe YAML (or resolved JSON)")
    p.add_argument("--target", choices=TARGET_TYPES, default=None, help="where to run (default: the recipe's target.type)")
    p.add_argument("--dry-run", action="store_true", help="send nothing: write the job YAML and REST body (maap, maas), kaito.yaml (kaito) or print the "
                        "step commands (local-pipeline)")
    p.add_argument("--output", default=None, metavar="DIR",
                   help="output folder (default runs/<recipe>-<target>-<time>/)")
    p.add_argument("--wait", action="store_true", help="after submitting to Azure, wait for the job to finish")
    add_set_option(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.recipe.load import load_recipe
    from phitune.targets.submit import run_target, with_target

    recipe_overrides = [o for o in args.overrides if not o.strip().startswith("target.")]
    target_overrides = [o for o in args.overrides if o.strip().startswith("target.")]
    recipe = load_recipe(args.recipe, overrides=recipe_overrides)
    recipe = with_target(recipe, args.target, target_overrides)
    # The target's summary, notes and step commands are printed as they happen (before a job is sent,
    # before each local step runs), then what was submitted and what to do next.
    handle = run_target(recipe, dry_run=args.dry_run, output_dir=args.output, progress=_print_now).handle
    status = handle.status() if args.dry_run or recipe.target.type in LOCAL_TARGET_TYPES else "submitted"
    print(f"{status}: {handle.id}")
    if recipe.target.type == "local" and getattr(handle, "run_dir", None) is not None:
        from phitune.run_summary import run_dir_summary

        print(run_dir_summary(handle.run_dir, getattr(handle, "tracking", None)))  # as `phitune train` prints it
    if handle.url:
        print(f"  url: {handle.url}")
    if recipe.target.type == "kaito" and not args.dry_run:
        print(f"  next: {handle.next_commands()}")
        if args.wait:
            final = handle.wait()
            print(f"{final}: {handle.id}")
            return 0 if final == "Completed" else 1
    if recipe.target.type in AZURE_TARGET_TYPES and not args.dry_run:
        print(f"  next: phitune status {handle.id} | phitune logs {handle.id} | phitune download {handle.id}")
        if args.wait:
            final = handle.wait()
            print(f"{final}: {handle.id}")
            return 0 if final == "Completed" else 1
    return 0


def _print_now(message: str) -> None:
    print(message, flush=True)
