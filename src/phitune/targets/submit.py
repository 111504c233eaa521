"""`phitune.submit(recipe, target=None, dry_run=False, ml_client=None) -> RunHandle`.

The recipe's `target:` section holds the defaults; `target=` picks another type (or passes a whole
target spec). The target's `check` runs first and every problem is reported at once. `run_target`
does the same and returns the whole `Submission` (the handle, what the target reported, the files it
wrote): `phitune submit` prints it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from phitune.errors import Problem, SubmitError
from phitune.targets.report import Progress, Submission


def submit(recipe, target=None, dry_run: bool = False, ml_client=None, *,
           output_dir: str | os.PathLike | None = None, progress: Progress | None = None):
    """Run `recipe` (a Recipe, or a recipe file path / mapping) on `target`:
    None (the recipe's target), a type name ('local', 'local-pipeline', 'maap', 'maas', 'kaito'), or a
    target spec object / mapping. `ml_client` is used for maap/maas instead of building one.
    `progress`, when given, is called with each message the target reports (nothing is printed).
    Returns a RunHandle (`.id`, `.url`, `.status()`, `.wait()`, `.download(dir)`)."""
    from phitune.process import configure_process

    configure_process()  # a Python API entry point, like phitune.train
    return run_target(recipe, target, dry_run, ml_client, output_dir=output_dir, progress=progress).handle


def run_target(recipe, target=None, dry_run: bool = False, ml_client=None, *,
               output_dir: str | os.PathLike | None = None, progress: Progress | None = None) -> Submission:
    """`submit`, returning the whole Submission: the handle, the target's messages and the files it wrote."""
    from phitune.targets.base import target_class

    recipe = with_target(_as_recipe(recipe), target)
    spec = recipe.target
    runner = target_class(spec.type)(spec, Path(output_dir) if output_dir else None, ml_client)
    problems = runner.check(recipe)
    if problems:
        raise SubmitError(f"the recipe cannot run on target {spec.type}", problems)
    return runner.submit(recipe, dry_run=dry_run, progress=progress)


def with_target(recipe, target=None, overrides: Iterable[str] = ()):
    """The recipe with its `target` replaced: by a type name (keeping the recipe's fields when the
    type is the same), a spec object or a mapping; then `target.*` overrides applied."""
    from phitune.recipe.load import load_recipe

    overrides = list(overrides)
    if target is None and not overrides:
        return recipe
    # Only what the recipe set: defaults are filled in again, and which values were written stays known
    # (maap trainer: azureml lets a model's own defaults replace phitune's, never the recipe's explicit values).
    data = recipe.model_dump(mode="json", exclude_unset=True)
    if isinstance(target, str):
        if data.get("target", {}).get("type", "local") != target:
            data["target"] = {"type": target}
    elif target is not None:
        data["target"] = target.model_dump(mode="json") if hasattr(target, "model_dump") else dict(target)
    return load_recipe(data, overrides=overrides)


def _as_recipe(recipe: Any):
    from phitune.recipe.load import load_recipe
    from phitune.recipe.schema import Recipe

    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, (str, os.PathLike, Mapping)):
        return load_recipe(recipe)
    raise SubmitError("submit() needs a recipe", [Problem("recipe", f"got {type(recipe).__name__}",
                                                          "pass a Recipe, a recipe file path or a mapping")])
