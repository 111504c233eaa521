"""Helpers shared by the task formatters: reading typed fields with precise messages, and rendering
a task as a conversation (system instruction, user turn, assistant answer) so the model's chat
template and label masking are reused."""

from __future__ import annotations

import json
from typing import Any

from phitune.data.records import RecordInvalid
from phitune.data.samples import ChatSample


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__)


def require(record: dict, key: str, setting: str) -> Any:
    if key not in record:
        found = ", ".join(repr(k) for k in list(record)[:6]) or "none"
        raise RecordInvalid("missing key", f"no {key!r} key (keys found: {found})",
                            f"add {key!r} to every record, or set {setting} to the key your data uses")
    return record[key]


def text(record: dict, key: str, setting: str, *, what: str = "text") -> str:
    """A non-empty string field (numbers from CSV/Parquet columns are accepted as their text)."""
    value = require(record, key, setting)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RecordInvalid("non-string value", f"{key!r} is a JSON {json_type(value)}, not a string",
                            f"make {key!r} a string")
    if not value.strip():
        raise RecordInvalid(f"empty {what}", f"{key!r} is empty", f"write the {what}, or drop the record")
    return value


def string_list(record: dict, key: str, setting: str) -> list:
    """A list field. CSV cells and some Parquet exports hold lists as text: a JSON list
    (`["a", "b"]`) or whitespace-separated items (`a b`) are both read."""
    value = require(record, key, setting)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise RecordInvalid("bad list", f"{key!r} starts like a JSON list but is not valid JSON",
                                    f"write {key!r} as a JSON list, or as items separated by spaces") from None
        else:
            value = stripped.split()
    if not isinstance(value, (list, tuple)):
        raise RecordInvalid("not a list", f"{key!r} is a JSON {json_type(value)}, not a list",
                            f"make {key!r} a list, one item per word")
    return list(value)


def conversation(system: str, user: str, answer: str) -> ChatSample:
    return ChatSample([{"role": "system", "content": system}, {"role": "user", "content": user},
                       {"role": "assistant", "content": answer}])


def prompt(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
