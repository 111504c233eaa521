"""A YAML file with the line of every key, so lint problems name FILE:LINE: key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from phitune.errors import Problem

KeyPath = tuple[str, ...]


@dataclass
class YamlDoc:
    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)  # key path -> 1-based line of the key
    spans: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)  # value's first and last line
    text: list[str] = field(default_factory=list)

    def line(self, key: KeyPath) -> int:
        for depth in range(len(key), 0, -1):
            if key[:depth] in self.lines:
                return self.lines[key[:depth]]
        return 1

    def problem(self, key: KeyPath, message: str, fix: str | None = None) -> Problem:
        dotted = ".".join(key) or "(top level)"
        return Problem(f"{self.path}:{self.line(key)}: {dotted}", message, fix)

    def token_line(self, key: KeyPath, token: str) -> int:
        """The line where `token` appears inside the value of `key` (e.g. a `${{inputs.x}}` in a command)."""
        start, end = self.spans.get(key, (self.line(key), self.line(key)))
        for number in range(start, min(end, len(self.text)) + 1):
            if token in self.text[number - 1]:
                return number
        return self.line(key)

    def token_problem(self, key: KeyPath, token: str, message: str, fix: str | None = None) -> Problem:
        return Problem(f"{self.path}:{self.token_line(key, token)}: {'.'.join(key)}", message, fix)


def read_doc(path: Path) -> YamlDoc | Problem:
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        return Problem(f"{path}:1", "not UTF-8 text")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return Problem(f"{path}:{mark.line + 1 if mark else 1}", f"invalid YAML: {getattr(exc, 'problem', exc)}")
    doc = YamlDoc(path, data, text=text.splitlines())
    _walk(node, (), doc)
    return doc


def _walk(node, prefix: KeyPath, doc: YamlDoc) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (str(key.value),)
            doc.lines[path] = key.start_mark.line + 1
            doc.spans[path] = (value.start_mark.line + 1, max(value.start_mark.line + 1, value.end_mark.line + 1))
            _walk(value, path, doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[prefix + (str(i),)] = item.start_mark.line + 1
            _walk(item, prefix + (str(i),), doc)
