"""Shared base for every recipe section: unknown keys are errors, objects are immutable, numbers are
finite numbers (YAML's `.inf`/`.nan` and booleans are not: `batch_size: true` would otherwise be 1)."""

from __future__ import annotations

import types
import typing
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, model_validator


CONFLICTS = "recipe_conflicts"  # pydantic error type of the Recipe's cross-section rules


class Conflict(NamedTuple):
    """A combination of settings that cannot work: `field` (dotted) is what the fix changes."""

    field: str
    message: str


def _takes_numbers_not_bools(annotation: Any) -> bool:
    """Does a field of this type accept int/float (or int literals) but not bool?"""
    seen: set[int] = set()
    kinds: set[str] = set()

    def walk(tp: Any) -> None:
        if id(tp) in seen:
            return
        seen.add(id(tp))
        origin = typing.get_origin(tp)
        if tp is bool:
            kinds.add("bool")
        elif tp in (int, float):
            kinds.add("number")
        elif origin is typing.Literal:
            for value in typing.get_args(tp):
                is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
                kinds.add("bool" if isinstance(value, bool) else "number" if is_number else "other")
        elif origin in (typing.Union, types.UnionType, typing.Annotated):
            for arg in typing.get_args(tp):
                walk(arg)

    walk(annotation)
    return "number" in kinds and "bool" not in kinds


class BooleanGiven:
    """Stands in for a boolean given to a number field, so the field's own validation rejects it
    (with its location, beside every other problem) instead of reading `true` as 1."""

    def __init__(self, value: bool):
        self.value = value

    def __repr__(self) -> str:
        return f"{str(self.value).lower()}, a boolean"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(isinstance(v, bool) for v in data.values()):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if isinstance(value, bool) and field is not None and _takes_numbers_not_bools(field.annotation):
                out[name] = BooleanGiven(value)
        return out
