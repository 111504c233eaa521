"""Offline checks of the two manifests before anything is written or sent: the Workspace against
phitune's description of KAITO's v1beta1 Workspace schema (kaito_workspace_schema.py; unknown fields
rejected the way `kubectl apply`'s strict field validation does), then KAITO's admission rules,
re-expressed here from api/v1beta1/workspace_validation.go and tuning_config_validation.go of the
KAITO release in KAITO_VERSION. Each failure names the recipe field it comes from.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

import yaml

from phitune.errors import Problem
from phitune.redact import redact
from phitune.targets.kaito_config import KAITO_SECTION_FIELDS, kaito_method
from phitune.targets.kaito_presets import KAITO_VERSION
from phitune.targets.kaito_workspace_schema import WORKSPACE

# Manifest path prefix -> the recipe field it is made from (longest prefix wins).
RECIPE_FIELD = {
    "metadata.name": "target.name",
    "metadata.namespace": "target.namespace",
    "resource.instanceType": "target.instance_type",
    "resource.labelSelector": "target.label_selector",
    "resource": "target",
    "tuning.preset": "model.name",
    "tuning.method": "method.type",
    "tuning.input.urls": "data.train",
    "tuning.input.volumeSource": "target.input_volume",
    "tuning.input": "data.train",
    "tuning.output.image": "target.output_image",
    "tuning.output.imagePushSecret": "target.image_push_secret",
    "tuning.output.volumeSource": "target.output_volume",
    "tuning.output": "target.output_image",
    "QuantizationConfig": "method.bits",
    "LoraConfig": "method",
    "TrainingArguments": "train",
    "DatasetConfig": "data",
}
KNOWN_SECTIONS = ("ModelConfig", "QuantizationConfig", "LoraConfig", "TrainingArguments", "DatasetConfig", "DataCollator")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# github.com/distribution/reference grammar: [domain[:port]/]path[:tag][@digest], lowercase path.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_IMAGE_REF = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
                        r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")
_METADATA_HOSTS = ("metadata.google.internal", "metadata.google", "instance-data.ec2.internal")


def recipe_field(path: str) -> str:
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RECIPE_FIELD:
            return RECIPE_FIELD[prefix]
    return path


def workspace_schema() -> dict:
    return WORKSPACE


def schema_errors(value, schema: dict, path: str = "") -> list[tuple[str, str]]:
    """(path, message) for every place `value` breaks a schema node of kaito_workspace_schema.py."""
    errors: list[tuple[str, str]] = []
    kind = schema.get("type")
    if kind and not _has_type(value, kind):
        return [(path, f"must be of type {kind}, got {type(value).__name__}")]
    if "enum" in schema and value not in schema["enum"]:
        errors.append((path, f"must be one of {', '.join(map(str, schema['enum']))}, got {value!r}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < schema.get("minimum", value):
        errors.append((path, f"must be at least {schema['minimum']}"))
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    return errors


def _object_errors(value: dict, schema: dict, path: str) -> list[tuple[str, str]]:
    errors = [(_join(path, key), "is required") for key in schema.get("required", []) if key not in value]
    fields, values = schema.get("fields", {}), schema.get("values")
    for key, item in value.items():
        where = _join(path, key)
        if key in fields:
            errors += schema_errors(item, fields[key], where)
        elif values is not None:
            errors += schema_errors(item, values, where)
        elif not schema.get("open"):
            errors.append((where, f"unknown field (KAITO {KAITO_VERSION}'s Workspace has no {key!r} here)"))
    return errors


def _has_type(value, kind: str) -> bool:
    checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    return checks.get(kind, lambda v: True)(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_manifests(config_map: dict, workspace: dict, tuning_presets) -> list[Problem]:
    """Every CRD-schema and admission problem of the pair, with the recipe field each comes from."""
    problems = [Problem(recipe_field(path), f"Workspace {path}: {message}", "this is what phitune generated from the "
                        f"recipe field; correct that field") for path, message in schema_errors(workspace, workspace_schema())]
    problems += workspace_admission(workspace, tuning_presets)
    problems += configmap_admission(config_map, str(workspace.get("tuning", {}).get("method", "")).lower())
    return problems


def workspace_admission(ws: dict, tuning_presets) -> list[Problem]:
    out, tuning = [], ws.get("tuning") or {}
    name = ws.get("metadata", {}).get("name", "")
    if not _DNS1123_LABEL.match(name) or len(name) > 63:
        out.append(Problem("target.name", f"{name!r} is not a Kubernetes name (lowercase letters, digits, '-', at "
                           "most 63)", "set target.name, e.g. phi3-tuning"))
    if ws.get("inference") is not None or not tuning:
        out.append(Problem("target", "a Workspace needs a tuning section and no inference section"))
    count = ws.get("resource", {}).get("count", 1)
    if isinstance(count, int) and count > 1:  # a non-integer count is the schema check's to report
        out.append(Problem("target", "KAITO tuning runs on one node (resource.count 1)"))
    if kaito_method(tuning.get("method", "")) is None:
        out.append(Problem("method.type", f"KAITO's tuning method must be lora or qlora, got {tuning.get('method')!r}",
                           "set method.type: lora or qlora"))
    preset = (tuning.get("preset") or {}).get("name")
    if preset not in tuning_presets:
        out.append(Problem("model.name", f"{preset!r} is not a KAITO tuning preset",
                           f"use one of: {', '.join(tuning_presets)}"))
    return out + _input_admission(tuning.get("input") or {}) + _output_admission(tuning.get("output") or {})


def _input_admission(source: dict) -> list[Problem]:
    out = [Problem("data.train", f"KAITO refuses the data URL {redact(url)!r}: {why}", "use a public https URL")
           for url in source.get("urls") or [] for why in [_url_problem(url)] if why]
    given = sum(bool(source.get(k)) for k in ("urls", "image", "volumeSource"))
    if given != 1:
        out.append(Problem("data.train", f"the tuning input needs exactly one of URLs, image or volume ({given} given)",
                           "set data.train to an https URL, or set target.input_volume"))
    return out


def _output_admission(dest: dict) -> list[Problem]:
    out = []
    image = dest.get("image")
    if image and not _IMAGE_REF.match(image):
        out.append(Problem("target.output_image", f"{image!r} is not an image reference",
                           "use REGISTRY/REPOSITORY:TAG in lowercase, e.g. myregistry.azurecr.io/phi3-adapter:0.1"))
    if image and not dest.get("imagePushSecret"):
        out.append(Problem("target.image_push_secret", "an output image needs the secret used to push it",
                           "create a docker-registry secret in the namespace and set target.image_push_secret"))
    if bool(image) + bool(dest.get("volumeSource")) != 1:
        out.append(Problem("target.output_image", "the tuning output needs exactly one of an image or a volume",
                           "set target.output_image (with target.image_push_secret) or target.output_volume, not both"))
    return out


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "data source URL must use HTTP or HTTPS"
    host = parts.hostname.lower()
    if host == "localhost" or host.endswith(".localhost") or host in _METADATA_HOSTS:
        return "it must not target a local or metadata endpoint"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if address.is_loopback or address.is_private or address.is_link_local:
        return "it must not target a loopback, private, or link-local address"
    return None


def configmap_admission(cm: dict, method: str) -> list[Problem]:
    text = (cm.get("data") or {}).get("training_config.yaml")
    if text is None:
        return [Problem("target", "the ConfigMap has no training_config.yaml")]
    try:
        sections = (yaml.safe_load(text) or {}).get("training_config")
    except yaml.YAMLError as exc:
        return [Problem("training_config.yaml", f"not YAML: {exc}")]
    if not isinstance(sections, dict):
        return [Problem("training_config.yaml", "expected a `training_config` map")]
    out = [Problem(f"training_config.{s}", f"KAITO does not know the section {s!r}", f"use {', '.join(KNOWN_SECTIONS)}")
           for s in sections if s not in KNOWN_SECTIONS]
    out += [Problem(f"training_config.{s}.{key}", f"KAITO's tuning image reads no key {key!r} in {s}",
                    f"use {', '.join(fields)}")
            for s, fields in KAITO_SECTION_FIELDS.items() if isinstance(sections.get(s), dict)
            for key in sections[s] if key not in fields]
    return out + _quantization_admission(sections, method) + _output_dir_admission(sections)


def _quantization_admission(sections: dict, method: str) -> list[Problem]:
    quant = sections.get("QuantizationConfig") or {}
    flags = {k: quant.get(k) for k in ("load_in_4bit", "load_in_8bit")}
    bad = [k for k, v in flags.items() if v is not None and not isinstance(v, bool)]
    if bad:
        return [Problem("method.bits", f"QuantizationConfig.{k} must be true or false") for k in bad]
    four, eight = bool(flags["load_in_4bit"]), bool(flags["load_in_8bit"])
    if four and eight:
        return [Problem("method.bits", "QuantizationConfig sets both load_in_4bit and load_in_8bit", "set method.bits: 4 or 8")]
    kind = kaito_method(method)
    if kind is not None and not kind.quantized_base and (four or eight):
        return [Problem("method.type", f"method {method} must not load the base in 4 or 8 bits (QuantizationConfig)",
                        "use method.type: qlora to quantize the base")]
    if kind is not None and kind.quantized_base and not (four or eight):
        return [Problem("method.bits", f"method {method} needs load_in_4bit or load_in_8bit in QuantizationConfig",
                        "set method.bits: 4 or 8")]
    return []


def _output_dir_admission(sections: dict) -> list[Problem]:
    output_dir = (sections.get("TrainingArguments") or {}).get("output_dir")
    if output_dir is None:
        return []
    if not isinstance(output_dir, str):
        return [Problem("training_config.TrainingArguments.output_dir", "must be a string")]
    # Go's filepath.Join("/mnt", dir) joins even an absolute dir under /mnt; Clean == normpath.
    clean = posixpath.normpath("/mnt/" + output_dir.lstrip("/")) if output_dir.strip("/") else "/mnt"
    if clean == "/mnt" or not clean.startswith("/mnt"):
        return [Problem("training_config.TrainingArguments.output_dir",
                        f"{output_dir!r} must be a directory under /mnt", "use a folder such as /mnt/output")]
    return []
