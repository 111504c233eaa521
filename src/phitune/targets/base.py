"""The `Target` and `RunHandle` protocols and the registry of targets by name (imported lazily)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from phitune.errors import Problem

# name -> "module:Class"; a module is imported only when its target is used.
TARGETS: dict[str, str] = {
    "local": "phitune.targets.local:LocalRunner",
    "local-pipeline": "phitune.targets.local_pipeline:LocalPipelineRunner",
    "maap": "phitune.targets.maap:MaapRunner",
    "maas": "phitune.targets.maas:MaasRunner",
    "kaito": "phitune.targets.kaito:KaitoRunner",
}
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
    """Runs a recipe somewhere. `check` reports what this target cannot do before anything runs."""

    name: str

    def check(self, recipe) -> list[Problem]: ...

    def submit(self, recipe, dry_run: bool = False) -> RunHandle: ...


def target_class(name: str) -> type:
    from phitune.errors import SubmitError

    if name not in TARGETS:
        raise SubmitError(f"unknown target {name!r}",
                          [Problem("--target", f"{name!r} is not a target", f"use one of: {', '.join(TARGETS)}")])
    module, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
