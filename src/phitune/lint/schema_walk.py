"""Walk a YAML document along azure-ai-ml's own marshmallow schema, reporting each key the schema does
not declare, each value of the wrong type, each enum or range violation, at its FILE:LINE.

The rules are the SDK's: field names (or `data_key`s), `Nested` / `List` / `Dict` shapes, the candidates
of `UnionField` / `TypeSensitiveUnionField`, `StringTransformedEnum.allowed_values` and marshmallow
validators. An azure-ai-ml upgrade that adds a key or an enum value updates lint with it. Nothing is
deserialized, so no file is read and no object is built: lint stays fast and offline.

Leaf values are judged the way marshmallow coerces them (non-strict): `1e-3` (a string to YAML 1.1) is a
number, `"3"` an integer, `yes` a boolean. A data-binding string (`${{...}}` or `$[[...]]`) is accepted
wherever a value goes; `binding_rules` checks what it names.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from phitune.errors import Problem
from phitune.lint.source import KeyPath, YamlDoc

Found = list[Problem]
# Keys and pipeline node types azure-ai-ml declares only under its private-preview flag
# (`is_private_preview_enabled()` in its schema classes: pipeline `on_init`/`on_finalize`, `early_available`
# and `intellectual_property` on ports, control-flow nodes) or passes through (`is_control` on primitive
# outputs, PrimitiveOutputSchema's `unknown = INCLUDE`). Azure ML's own registry components use them, so
# they are valid YAML whichever way the flag is set here.
PREVIEW_KEYS = {"on_init", "on_finalize", "early_available", "intellectual_property", "is_control"}
PREVIEW_NODE_TYPES = {"do_while", "parallel_for", "if_else"}
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_-]*>")


def is_binding(value: Any) -> bool:
    return isinstance(value, str) and ("${{" in value or "$[[" in value)


def walk(doc: YamlDoc, key: KeyPath, value: Any, target: Any) -> Found:
    """Problems of `value` (found at `key`) against a marshmallow Schema instance or Field."""
    from marshmallow import Schema

    if isinstance(target, Schema):
        return _walk_schema(doc, key, value, target)
    return _walk_field(doc, key, value, target)


def schema_name(schema) -> str:
    name = type(schema).__name__.removesuffix("Schema")
    return name.removeprefix("Anonymous") or name


def _walk_schema(doc: YamlDoc, key: KeyPath, value: Any, schema) -> Found:
    if value is None:
        return []
    if not isinstance(value, dict):
        if isinstance(value, str) and value.startswith("file:"):
            return _file_ref(doc, key, value)
        return [doc.problem(key, f"expected a mapping ({schema_name(schema)}), got {_shown(value)}")]
    fields = {(f.data_key or name): f for name, f in schema.fields.items()}
    problems: Found = []
    for name, item in value.items():
        name = str(name)
        field = fields.get(name)
        if field is None:
            if name not in PREVIEW_KEYS:
                problems.append(unknown_key(doc, key + (name,), name, fields, schema_name(schema)))
        elif not field.dump_only:
            problems += _walk_field(doc, key + (name,), item, field)
    misspelt = [str(n) for n in value if str(n) not in fields]
    for name, field in fields.items():
        if difflib.get_close_matches(name, misspelt, n=1, cutoff=0.6):
            continue  # already reported as the unknown key it was misspelt as
        if field.required and not field.dump_only and name not in value:
            problems.append(doc.problem(key, f"missing required key '{name}' in {schema_name(schema)}",
                                        f"add `{name}:`"))
    return problems


def unknown_key(doc: YamlDoc, key: KeyPath, name: str, allowed, where: str) -> Problem:
    close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
    fix = f"did you mean '{close[0]}'?" if close else f"allowed here: {', '.join(sorted(allowed))}"
    return doc.problem(key, f"unknown key '{name}' in {where} (not in azure-ai-ml's schema: Azure drops or "
                       "rejects it)", fix)


def _walk_field(doc: YamlDoc, key: KeyPath, value: Any, field) -> Found:  # noqa: C901 (one dispatch table)
    from marshmallow import fields as mf

    from phitune.compat import aml_schema_fields

    af = aml_schema_fields()

    if value is None or field.dump_only:
        return []
    if isinstance(field, af.ExperimentalField):
        return _walk_field(doc, key, value, field.experimental_field)
    if isinstance(field, af.UnionField):
        return _walk_union(doc, key, value, field)
    if is_binding(value):
        return []
    if isinstance(field, mf.Nested):
        if field.many:
            if not isinstance(value, list):
                return [doc.problem(key, f"expected a list, got {_shown(value)}")]
            return [p for i, item in enumerate(value) for p in _walk_schema(doc, key + (str(i),), item, field.schema)]
        return _walk_schema(doc, key, value, field.schema)
    if isinstance(field, mf.List):
        if not isinstance(value, list):
            return [doc.problem(key, f"expected a list, got {_shown(value)}")]
        return [p for i, item in enumerate(value) for p in _walk_field(doc, key + (str(i),), item, field.inner)]
    if isinstance(field, mf.Dict):
        if not isinstance(value, dict):
            return [doc.problem(key, f"expected a mapping, got {_shown(value)}")]
        if field.value_field is None:
            return []
        return [p for k, item in value.items() for p in _walk_field(doc, key + (str(k),), item, field.value_field)]
    if isinstance(field, af.StringTransformedEnum):
        allowed = field.allowed_values or []
        if not isinstance(value, str) or field.casing_transform(value) not in allowed:
            shown = [as_written(str(a)) for a in allowed]
            return [doc.problem(key, f"{_shown(value)} is not one of {', '.join(shown)}", _closest(value, shown))]
        return []
    problem = _leaf_problem(value, field)
    if problem:
        quote = isinstance(field, mf.String) and not isinstance(value, (dict, list))
        return [doc.problem(key, problem, f'quote it: "{value}"' if quote else None)]
    return _validator_problems(doc, key, value, field)


def _walk_union(doc: YamlDoc, key: KeyPath, value: Any, field) -> Found:
    from phitune.compat import aml_schema_fields, aml_union_candidates_for_type

    af = aml_schema_fields()

    if is_binding(value):
        return []
    candidates = list(field.union_fields)
    if isinstance(field, af.TypeSensitiveUnionField) and isinstance(value, dict):
        kind = value.get(field.type_field_name)
        if kind in PREVIEW_NODE_TYPES:
            return []
        if kind is not None and kind in field.allowed_types:
            candidates = aml_union_candidates_for_type(field, kind)
        elif kind is not None and not any(not _has_type_enum(c) for c in candidates):
            allowed = field.allowed_types
            return [doc.problem(key + (field.type_field_name,), f"{_shown(kind)} is not one of {', '.join(allowed)}",
                                _closest(kind, allowed))]
    mistyped = _type_misfit(doc, key, value, candidates)
    if mistyped:
        return mistyped
    best: Found | None = None
    for candidate in candidates:
        if not _shape_fits(value, candidate):
            continue
        found = _walk_field(doc, key, value, candidate)
        if not found:
            return []
        if best is None or len(found) < len(best):
            best = found
    if best is not None:
        return best
    return [doc.problem(key, f"{_shown(value)} is not valid here (expected {_expected(candidates)})")]


def _type_misfit(doc: YamlDoc, key: KeyPath, value: Any, candidates) -> Found:
    """A mapping whose `type:` no candidate schema accepts: one problem listing every accepted type,
    rather than the complaints of whichever candidate came closest."""
    from phitune.compat import aml_schema_fields

    StringTransformedEnum = aml_schema_fields().StringTransformedEnum

    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return []
    allowed: list[str] = []
    for candidate in candidates:
        schema = _nested_schema(candidate)
        if schema is False:
            continue
        if schema is None:
            return []  # a candidate without a typed schema (a free-form mapping) may take it
        field = schema.fields.get("type")
        if not isinstance(field, StringTransformedEnum):
            return []
        if field.casing_transform(value["type"]) in (field.allowed_values or []):
            return []
        allowed += [v for v in field.allowed_values or [] if v not in allowed]
    if not allowed:
        return []
    return [doc.problem(key + ("type",), f"{value['type']!r} is not one of {', '.join(allowed)}",
                        _closest(value["type"], allowed))]


def _nested_schema(field):
    from marshmallow import fields as mf

    from phitune.compat import aml_schema_fields

    af = aml_schema_fields()

    if isinstance(field, af.ExperimentalField):
        return _nested_schema(field.experimental_field)
    if isinstance(field, mf.Nested) and not field.many:
        return field.schema
    if isinstance(field, (mf.Nested, mf.Dict, mf.List, af.UnionField)) or type(field) is mf.Field:
        return None
    return False  # a scalar field: cannot take a mapping, so it does not count


def _has_type_enum(field) -> bool:
    from marshmallow import fields as mf

    return isinstance(field, mf.Nested) and "type" in getattr(field.schema, "fields", {})


def _shape_fits(value: Any, field) -> bool:
    """Whether `value`'s YAML shape (mapping, list, scalar) can be what `field` reads."""
    from marshmallow import fields as mf

    from phitune.compat import aml_schema_fields

    af = aml_schema_fields()

    if isinstance(field, af.ExperimentalField):
        return _shape_fits(value, field.experimental_field)
    if isinstance(field, af.UnionField):
        return any(_shape_fits(value, f) for f in field.union_fields)
    if isinstance(field, mf.Nested):
        if field.many:
            return isinstance(value, list)
        return isinstance(value, dict) or (isinstance(value, str) and value.startswith("file:"))
    if isinstance(field, mf.List):
        return isinstance(value, list)
    if isinstance(field, mf.Dict):
        return isinstance(value, dict)
    if isinstance(value, (dict, list)):
        return type(field) is mf.Field or isinstance(field, mf.Raw)
    return _leaf_problem(value, field) is None


def _leaf_problem(value: Any, field) -> str | None:
    """marshmallow's own coercion for numbers and booleans; a string field takes only a string
    (marshmallow does not turn 1 into "1")."""
    from marshmallow import fields as mf

    if isinstance(field, mf.Boolean):
        ok = value in field.truthy or value in field.falsy if not isinstance(value, (dict, list)) else False
        return None if ok else f"{_shown(value)} is not a boolean (use true or false)"
    if isinstance(field, mf.Integer):
        if isinstance(value, bool):
            return f"{_shown(value)} is not an integer"
        try:
            number = float(value)
            if number != int(number) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            return f"{_shown(value)} is not an integer"
        return None
    if isinstance(field, mf.Number):
        if isinstance(value, bool):
            return f"{_shown(value)} is not a number"
        try:
            float(value)
        except (TypeError, ValueError):
            return f"{_shown(value)} is not a number"
        return None
    if isinstance(field, mf.String) and not isinstance(value, str):
        return f"expected a string, got {_shown(value)}"
    return None


def _validator_problems(doc: YamlDoc, key: KeyPath, value: Any, field) -> Found:
    """marshmallow validators (Range, OneOf, Length...) the SDK attached to the field."""
    from marshmallow import ValidationError
    from marshmallow import fields as mf

    validators = list(getattr(field, "validators", []) or [])
    if not validators or (isinstance(value, str) and PLACEHOLDER.search(value)):
        return []  # a documented template's `<SUBSCRIPTION_ID>` is the user's to fill in
    if isinstance(field, mf.Integer):
        value = int(float(value))
    elif isinstance(field, mf.Number):
        value = float(value)
    problems = []
    for validator in validators:
        try:
            validator(value)
        except ValidationError as err:
            problems.append(doc.problem(key, f"{_shown(value)}: {' '.join(map(str, err.messages))}"))
        except Exception:  # a validator that needs the loaded object: not judged here  # noqa: BLE001
            continue
    return problems


def _file_ref(doc: YamlDoc, key: KeyPath, value: str) -> Found:
    from pathlib import Path

    path = Path(value[len("file:"):])
    if not path.is_absolute():
        path = doc.path.parent / path
    return [] if path.exists() else [doc.problem(key, f"{value}: file does not exist (relative to {doc.path.parent})")]


def _expected(candidates) -> str:
    from marshmallow import fields as mf

    kinds = set()
    for c in candidates:
        if isinstance(c, (mf.Nested, mf.Dict)):
            kinds.add("a mapping")
        elif isinstance(c, mf.List):
            kinds.add("a list")
        elif isinstance(c, mf.Boolean):
            kinds.add("a boolean")
        elif isinstance(c, mf.Number):
            kinds.add("a number")
        else:
            kinds.add("a string")
    return " or ".join(sorted(kinds)) or "something else"


def as_written(value: str) -> str:
    """An enum value as YAML spells it: azure-ai-ml keeps some in camelCase (`chatCompletion`) and
    compares after turning the YAML's `chat_completion` into that."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), value)


def _closest(value: Any, allowed) -> str:
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(map(str, allowed))}"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
