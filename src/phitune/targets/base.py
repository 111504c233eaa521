"""The `Target` and `RunHandle` protocols and the registry of targets by name (imported lazily)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from phitune.errors import Problem
from phitune.recipe.target import TARGET_TYPES


def runner_path(target_type: str) -> str:
    """"module:Class" of a target's runner, by the naming rule every target follows:
    `local-pipeline` -> phitune.targets.local_pipeline:LocalPipelineRunner."""
    words = target_type.split("-")
    return f"phitune.targets.{'_'.join(words)}:{''.join(w.capitalize() for w in words)}Runner"


# name -> "module:Class" for every type of the recipe's target union; a module is imported only when its target is used.
TARGETS: dict[str, str] = {name: runner_path(name) for name in TARGET_TYPES}
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Canceled", "NotResponding", "DryRun"})


@runtime_checkable
class RunHandle(Protocol):
    """A submitted (or dry-run) job: `id`, `url`, and what a user does next."""

    @property
    def id(self) -> str: ...

    @property
    def url(self) -> str: ...

    def status(self) -> str: ...

    def wait(self, timeout: float | None = None) -> str: ...

    def download(self, directory: str | Path) -> Path: ...


class Target(Protocol):
    """Runs a recipe somewhere. `check` reports what this target cannot do before anything runs;
    `submit` returns a phitune.targets.report.Submission (the RunHandle and what it reported) and
    prints nothing: `progress` hears each message as it happens."""

    name: str

    def check(self, recipe) -> list[Problem]: ...

    def submit(self, recipe, dry_run: bool = False, progress=None): ...


class Runner:
    """What every target's runner holds: its `target:` spec (whose `type` is the runner's name), the
    output folder (None: runs/<recipe>-<target>-<time>/) and an MLClient to use instead of building one."""

    def __init__(self, spec, output_dir: Path | None = None, ml_client=None):
        self.spec = spec
        self.output_dir = output_dir
        self.ml_client = ml_client

    @property
    def name(self) -> str:
        return self.spec.type


def target_class(name: str) -> type:
    from phitune.errors import SubmitError

    if name not in TARGETS:
        raise SubmitError(f"unknown target {name!r}",
                          [Problem("--target", f"{name!r} is not a target", f"use one of: {', '.join(TARGETS)}")])
    module, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
