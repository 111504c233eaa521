"""The registry of task formatters, keyed by `task.type`.

A formatter takes the recipe's task section and one raw record and returns a sample
(phitune.data.samples), or raises `RecordInvalid(kind, message, fix)`. Formatters register here with
`@register_task("ner")`; phitune.data.tasks imports every formatter module and is what callers use.
"""

from __future__ import annotations

from typing import Any, Callable

from phitune.data.samples import Sample

Formatter = Callable[[Any, Any], Sample]
_FORMATTERS: dict[str, Formatter] = {}


def register_task(task_type: str) -> Callable[[Formatter], Formatter]:
    def wrap(fn: Formatter) -> Formatter:
        _FORMATTERS[task_type] = fn
        return fn

    return wrap


def formatter_for(task_type: str) -> Formatter | None:
    return _FORMATTERS.get(task_type)


def registered_task_types() -> list[str]:
    """Task types registered so far (phitune.data.tasks.task_types has them all)."""
    return list(_FORMATTERS)
