"""Recipe text -> plain data and a line map, in bounded time and memory, with nothing silently lost.

YAML lets a small file describe a huge document: aliases (`*a`) repeat an anchored node, so nine
lines of nested aliases ("billion laughs") stand for 10**9 values, and an anchor may even contain
itself. Everything that walks the document (the line map, pydantic) would expand them. So the text is
composed once, and before anything is built from it:

- the file must be at most `MAX_RECIPE_BYTES` and nest at most `MAX_DEPTH` levels;
- the document, with every alias expanded, must hold at most `MAX_VALUES` values and
  `MAX_EXPANDED_CHARS` characters of text (counted without expanding: each distinct node is sized
  once), and no anchor may contain itself;
- a key written twice in one mapping is an error naming both lines (YAML would keep the last one).

JSON (a resolved recipe) gets the same size, depth and duplicate-key rules.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from phitune.errors import Problem, RecipeError

MAX_RECIPE_BYTES = 256 * 1024  # a real recipe is a few KB; a label list of thousands fits easily
MAX_DEPTH = 32  # a recipe nests 4 levels deep
MAX_VALUES = 100_000  # values after alias expansion (keys, scalars, lists and mappings each count 1)
MAX_EXPANDED_CHARS = 4 * MAX_RECIPE_BYTES  # text after alias expansion (a long string aliased many times)
MERGE_TAG = "tag:yaml.org,2002:merge"

LineMap = dict[tuple[str, ...], int]


class YamlSyntaxError(RecipeError):
    """The text is not YAML at all (a `--set` value then stays a plain string)."""


class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops composing past MAX_DEPTH and records where each alias was used."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self.aliases: list[tuple[Node, str, int]] = []  # (aliased node, anchor, line)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            node = Composer.compose_node(self, parent, index)
            self.aliases.append((node, event.anchor, event.start_mark.line + 1))
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(event.start_mark.line + 1)
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1


def check_size(size: int, where: str) -> None:
    """Bytes of recipe text within MAX_RECIPE_BYTES (checked before reading a file, so memory too)."""
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe too large: {where}", [Problem(
            where, f"{size:,} bytes; a recipe may be at most {MAX_RECIPE_BYTES:,} bytes",
            "keep data out of the recipe: point data.train at a file")])


def read_yaml(text: str, where: str) -> tuple[Any, LineMap]:
    """Parse one YAML document under the limits above. `where` names the source in messages
    (a file, or `--set KEY=VALUE`). Returns (data, {key path: line})."""
    check_size(len(text.encode("utf-8")), where)
    loader = _BoundedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except _TooDeep as exc:
            raise RecipeError(f"recipe nested too deeply: {where}", [Problem(
                f"{where}:{exc.line}", f"more than {MAX_DEPTH} levels of nesting", "a recipe nests a few levels deep: "
                "flatten this value")]) from None
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, where) from None
        if node is None:
            return None, {}
        _check_expansion(node, loader.aliases, where)
        lines = _line_map(node, where)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, where) from None
    finally:
        loader.dispose()
    return data, lines


def read_json(text: str, where: str) -> Any:
    check_size(len(text.encode("utf-8")), where)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise RecipeError(f"duplicate key in {where}", [Problem(
                    where, f"key {key!r} is given twice in one object", "keep one of them")])
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise RecipeError(f"invalid JSON in {where}", [Problem(f"{where}:{exc.lineno}", exc.msg)]) from None
    except RecursionError:
        raise RecipeError(f"recipe nested too deeply: {where}", [Problem(
            where, "the JSON nests too deeply", "a recipe nests a few levels deep")]) from None


def _syntax_error(exc: yaml.YAMLError, where: str) -> RecipeError:
    mark = getattr(exc, "problem_mark", None)
    location = f"{where}:{mark.line + 1}" if mark else where
    return YamlSyntaxError(f"invalid YAML in {where}", [Problem(
        location, str(getattr(exc, "problem", None) or exc), "fix the YAML syntax")])


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: Node, aliases: list[tuple[Node, str, int]], where: str) -> None:
    """Size of the alias-expanded document, each distinct node visited once; cycles are errors."""
    size: dict[int, int] = {}  # values (keys, scalars, lists, mappings) once every alias is expanded
    chars: dict[int, int] = {}  # characters of text once every alias is expanded
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            chars[key] = (len(node.value) if isinstance(node, ScalarNode) else 0) + \
                sum(chars[id(child)] for child in children)
            continue
        if key in size:
            continue
        if key in on_path:  # reached again below itself: an anchor that contains its own alias
            anchor, line = next(((a, n) for target, a, n in aliases if target is node), ("?", node.start_mark.line + 1))
            raise RecipeError(f"recursive YAML anchor in {where}", [Problem(
                f"{where}:{line}", f"alias *{anchor} is used inside the node it names (&{anchor}): the value "
                "would be infinite", f"remove *{anchor} from inside &{anchor}")])
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    total = size[id(root)]
    if total > MAX_VALUES:
        node, anchor, line = max(aliases, key=lambda a: size[id(a[0])], default=(root, None, root.start_mark.line + 1))
        what = (f"YAML aliases (*{anchor} at line {line} alone stands for {size[id(node)]:,} values)" if anchor
                else "values")
        raise RecipeError(f"recipe too large: {where}", [Problem(
            f"{where}:{line}", f"the recipe expands to {total:,} values through {what}; at most {MAX_VALUES:,} are "
            "allowed", "write the values out, or alias smaller pieces")])
    if chars[id(root)] > MAX_EXPANDED_CHARS:  # a long string aliased many times (written into every job file)
        node, anchor, line = max(aliases, key=lambda a: chars[id(a[0])],
                                 default=(root, None, root.start_mark.line + 1))
        raise RecipeError(f"recipe too large: {where}", [Problem(
            f"{where}:{line}", f"the recipe expands to {chars[id(root)]:,} characters of text"
            + (f" through YAML aliases (*{anchor} at line {line})" if anchor else "")
            + f"; at most {MAX_EXPANDED_CHARS:,} are allowed", "write the values out, or alias smaller pieces")])


def _line_map(root: Node, where: str) -> LineMap:
    """{key path: line} for every key and list item; a key written twice in one mapping is an error.
    Aliased nodes are walked once per use (bounded by MAX_VALUES, checked first)."""
    out: LineMap = {}
    stack: list[tuple[Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if key.tag == MERGE_TAG:
                    stack.append((value, prefix))  # `<<: *base` keys belong to this mapping
                    continue
                name = str(key.value) if isinstance(key, ScalarNode) else key.start_mark.line
                line = key.start_mark.line + 1
                if name in seen:
                    dotted = ".".join(prefix + (str(name),))
                    raise RecipeError(f"duplicate key in {where}", [Problem(
                        f"{where}:{line}", f"`{dotted}` is given twice (lines {seen[name]} and {line}); YAML would "
                        "silently keep the last one", "keep one of them")])
                seen[name] = line
                path = prefix + (str(name),)
                out.setdefault(path, line)
                stack.append((value, path))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                path = prefix + (str(i),)
                out.setdefault(path, item.start_mark.line + 1)
                stack.append((item, path))
    return out
