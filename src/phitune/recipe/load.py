"""Load a recipe: YAML (or resolved JSON) + `a.b=value` overrides -> validated `Recipe`.

Every problem is reported at once in one `RecipeError`, each with its field path, the YAML line
where it was written (or the `--set` that wrote it) and a fix.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ValidationError

from phitune.errors import Problem, RecipeError
from phitune.recipe.azure_names import hint as azure_hint
from phitune.recipe.base import CONFLICTS
from phitune.recipe.paths import REMOTE_PREFIXES, local_path_problems
from phitune.recipe.schema import Recipe
from phitune.recipe.yaml_source import YamlSyntaxError, check_size, read_json, read_yaml

# Fields holding local file paths: relative values are resolved against the recipe's folder
# (values from `--set` against the current directory), so a resolved recipe runs from anywhere.
PATH_FIELDS: tuple[tuple[str, ...], ...] = (("data", "train"), ("data", "validation"),
                                           ("train", "deepspeed", "config"))


def load_recipe(
    source: str | os.PathLike | Mapping[str, Any],
    overrides: Iterable[str] | None = None,
    check_paths: bool = False,
) -> Recipe:
    """Load and validate a recipe from a YAML/JSON file or a mapping, then apply `a.b=value` overrides.
    `check_paths`: local data, DeepSpeed config and model paths must also exist and be the right kind."""
    problems: list[Problem] = []
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(source, Mapping):
        raw, origin, base_dir = _deep_copy(source), "<dict>", Path.cwd()
    else:
        path = Path(source)
        raw, lines = _read_file(path)
        origin, base_dir = str(path), path.resolve().parent
    _resolve_paths(raw, base_dir)

    overridden: dict[tuple[str, ...], str] = {}
    for text in overrides or []:
        problem = _apply_override(raw, text, overridden)
        if problem:
            problems.append(problem)
    if problems:
        raise RecipeError(f"invalid overrides for {origin}", problems)

    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = [p for err in exc.errors() for p in _to_problems(err, raw, origin, lines, overridden)]
        raise RecipeError(f"invalid recipe {origin}", problems) from None
    if check_paths:
        problems = [Problem(_located(tuple(field.split(".")), origin, lines, overridden), message,
                            "check the path (relative paths in a recipe are relative to the recipe's folder)")
                    for field, message in local_path_problems(recipe, base_dir)]
        if problems:
            raise RecipeError(f"missing or wrong local paths in {origin}", problems)
    return recipe


def write_resolved(recipe: Recipe, path: str | os.PathLike) -> Path:
    """Write `resolved_recipe.json` atomically."""
    from phitune.files import write_text_atomic

    return write_text_atomic(path, recipe.resolved_json())


def recipe_json_schema() -> dict:
    return Recipe.model_json_schema()


# --- reading -------------------------------------------------------------------------------------


def _read_file(path: Path) -> tuple[dict, dict[tuple[str, ...], int]]:
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}", [Problem(str(path), "no such file", "check the path")])
    check_size(path.stat().st_size, str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"cannot read {path}", [Problem(str(path), f"not UTF-8 text ({exc.reason})")]) from None
    if path.suffix == ".json":
        data, lines = read_json(text, str(path)), {}
        if isinstance(data, dict) and "phitune_recipe_version" in data:
            data = data.get("recipe")
    else:
        data, lines = read_yaml(text, str(path))
    if data is None:
        raise RecipeError(f"empty recipe {path}", [Problem(str(path), "the file is empty", "add at least `data.train`")])
    if not isinstance(data, dict):
        raise RecipeError(
            f"invalid recipe {path}", [Problem(str(path), f"top level must be a mapping, got {type(data).__name__}")]
        )
    return data, lines


def _deep_copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if not isinstance(value, BaseModel) else value.model_dump(mode="json")


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not value.startswith(REMOTE_PREFIXES)


def _resolve_paths(raw: dict, base_dir: Path) -> None:
    for field in PATH_FIELDS:
        parent = _get(raw, field[:-1])
        if isinstance(parent, dict) and _is_local_path(parent.get(field[-1])):
            parent[field[-1]] = str((base_dir / os.path.expanduser(parent[field[-1]])).resolve())
    model = raw.get("model")
    name = model.get("name") if isinstance(model, dict) else model
    if _is_local_path(name) and not name.startswith("builtin:"):
        candidate = (base_dir / os.path.expanduser(name))
        if candidate.is_dir():
            resolved = str(candidate.resolve())
            if isinstance(model, dict):
                model["name"] = resolved
            else:
                raw["model"] = resolved


def _get(raw: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(raw, dict) or key not in raw:
            return None
        raw = raw[key]
    return raw


# --- overrides -----------------------------------------------------------------------------------


def _apply_override(raw: dict, text: str, overridden: dict[tuple[str, ...], str]) -> Problem | None:
    key, sep, value_text = text.partition("=")
    path = tuple(part.strip() for part in key.strip().split("."))
    if not sep or not all(path):
        return Problem(f"--set {text}", "an override must look like `section.key=value`", "e.g. --set train.lr=1e-3")
    try:
        value = read_yaml(value_text, f"--set {text}")[0] if value_text.strip() else ""
    except YamlSyntaxError:
        value = value_text
    target = raw
    for i, part in enumerate(path[:-1]):
        current = target.get(part)
        if isinstance(current, str) and part in ("model", "tracking"):
            # string shorthands (`model: builtin:tiny-phi3`, `tracking: none`) expand for a nested override
            current = {"name": current} if part == "model" else {"backend": current}
            target[part] = current
        if current is None:
            current = target[part] = {}
            overridden.setdefault(path[: i + 1], text)  # the section exists only because of this --set
        if not isinstance(current, dict):
            where = ".".join(path[: i + 1])
            return Problem(f"--set {text}", f"`{where}` is a value, not a section", f"set `{where}=...` instead")
        target = current
    if path in PATH_FIELDS and _is_local_path(value):
        value = str(Path(os.path.expanduser(value)).resolve())
    if path == ("model", "name") or path == ("model",):
        if _is_local_path(value) and Path(os.path.expanduser(value)).is_dir():
            value = str(Path(os.path.expanduser(value)).resolve())
    target[path[-1]] = value
    overridden[path] = text
    return None


# --- turning pydantic errors into problems ------------------------------------------------------


def _to_problems(err: dict, raw: dict, origin: str, lines: dict, overridden: dict) -> list[Problem]:
    if err["type"] == CONFLICTS:  # the Recipe's cross-section rules: one problem per conflict, at its field
        return [Problem(_located(tuple(field.split(".")), origin, lines, overridden), message)
                for field, message in err["ctx"]["conflicts"]]
    return [_to_problem(err, raw, origin, lines, overridden)]


def _located(path: tuple[str, ...], origin: str, lines: dict, overridden: dict) -> str:
    """`a.b (FILE:LINE)`, or `(from --set ...)`: the nearest written ancestor of the field."""
    where = ""
    for depth in range(len(path), 0, -1):
        if path[:depth] in overridden:
            where = f" (from --set {overridden[path[:depth]]})"
            break
        if path[:depth] in lines:
            where = f" ({origin}:{lines[path[:depth]]})"
            break
    return f"{'.'.join(path) or '(top level)'}{where}"


def _to_problem(err: dict, raw: dict, origin: str, lines: dict, overridden: dict) -> Problem:
    path = _data_path(err["loc"], raw)
    kind = err["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found") and path and path[-1] != "type":
        path = path + ("type",)
    location = _located(path, origin, lines, overridden)
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    fix = None
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1], raw)
        message = f"unknown key '{path[-1]}'"
        close = difflib.get_close_matches(path[-1], allowed, n=1, cutoff=0.6)
        fix = f"did you mean '{close[0]}'?" if close else f"allowed keys here: {', '.join(allowed)}"
        fix = azure_hint(path[-1]) or fix  # e.g. num_train_epochs -> train.epochs
    elif kind == "missing":
        message = "required key is missing"
        fix = f"add `{path[-1]}:` under `{'.'.join(path[:-1]) or 'the top level'}`"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        ctx = err.get("ctx", {})
        got = ctx.get("tag")
        section = path[:-1]
        # union_tag_not_found carries no tag list: read it from the union itself
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()] or \
            _union_tags(section)
        name = section[-1] if section else "section"
        message = f"unknown {name} type {got!r}" if got else f"`{'.'.join(section)}` has no `type`"
        close = difflib.get_close_matches(str(got), tags, n=1) if got else []
        fix = (f"did you mean '{close[0]}'? " if close else "") + f"type must be one of: {', '.join(tags)}"
        fits = _types_taking(section, _get(raw, section)) if not got else []
        if len(fits) == 1:
            fix += f" (the keys given fit only {fits[0]}: add `type: {fits[0]}` or --set {'.'.join(path)}={fits[0]})"
    elif "input" in err and kind not in ("model_type", "dict_type") and not isinstance(err["input"], dict):
        message = f"{message} (got {err['input']!r})"
    return Problem(location, message, fix)


def _data_path(loc: tuple, raw: Any) -> tuple[str, ...]:
    """pydantic's loc includes union tags (`method.lora.r`); keep only keys that exist in the data."""
    out: list[str] = []
    node = raw
    for part in loc:
        key = str(part)
        if isinstance(node, dict) and key not in node and node.get("type") == key:
            continue  # discriminator tag inserted by pydantic
        if isinstance(node, dict) and key not in node and isinstance(part, str) and key.startswith("function-"):
            continue
        out.append(key)
        node = node.get(key) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
        )
    return tuple(out)


def _allowed_keys(path: tuple[str, ...], raw: dict) -> list[str]:
    """Field names of the model at `path` (following the `type` chosen in the data for unions)."""
    from typing import get_args

    model: Any = Recipe
    node: Any = raw
    for key in path:
        field = model.model_fields.get(key) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        node = node.get(key) if isinstance(node, dict) else None
        model = _pick_model(field.annotation, node, get_args)
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _union_members(path: tuple[str, ...]) -> list[type[BaseModel]]:
    """The models of the discriminated union at a top-level field such as `target`."""
    from typing import get_args

    field = Recipe.model_fields.get(path[0]) if len(path) == 1 else None
    if field is None:
        return []
    return [a for a in _flatten(field.annotation, get_args) if isinstance(a, type) and issubclass(a, BaseModel)]


def _union_tags(path: tuple[str, ...]) -> list[str]:
    return [str(m.model_fields["type"].default) for m in _union_members(path) if "type" in m.model_fields]


def _types_taking(path: tuple[str, ...], node: Any) -> list[str]:
    """Union members that accept every key given (e.g. `target: {compute: x}` fits only maap)."""
    if not isinstance(node, dict) or not node:
        return []
    return [str(m.model_fields["type"].default) for m in _union_members(path)
            if "type" in m.model_fields and set(node) <= set(m.model_fields)]


def _pick_model(annotation: Any, node: Any, get_args) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    candidates = [a for a in _flatten(annotation, get_args) if isinstance(a, type) and issubclass(a, BaseModel)]
    tag = node.get("type") if isinstance(node, dict) else None
    for cand in candidates:
        field = cand.model_fields.get("type")
        if field is not None and field.default == tag:
            return cand
    return candidates[0] if len(candidates) == 1 else None


def _flatten(annotation: Any, get_args) -> list:
    args = get_args(annotation)
    if not args:
        return [annotation]
    out = []
    for arg in args:
        out.extend(_flatten(arg, get_args))
    return out
