"""The two Kubernetes objects of a KAITO fine-tuning run: a ConfigMap holding `training_config.yaml`,
and a `kaito.sh/v1beta1` Workspace whose `tuning:` section names the preset, method, data and output.

`dump_manifests` writes them as one multi-document YAML, ConfigMap first: KAITO's admission webhook
reads the ConfigMap when the Workspace is created, so `kubectl apply -f kaito.yaml` must create it first.
"""

from __future__ import annotations

import re

import yaml

from phitune.targets.kaito_config import is_url

API_VERSION = "kaito.sh/v1beta1"
GROUP, VERSION, PLURAL = "kaito.sh", "v1beta1", "workspaces"
MANAGED_BY = {"app.kubernetes.io/managed-by": "phitune"}
HASH_ANNOTATION = "phitune/recipe-content-hash"


def workspace_name(recipe, spec) -> str:
    """target.name, else the recipe name as a Kubernetes name (lowercase letters, digits, '-')."""
    if spec.name:
        return spec.name
    name = re.sub(r"[^a-z0-9-]+", "-", recipe.name.lower()).strip("-")[:63].rstrip("-")
    return name or "phitune"


def configmap_name(workspace: str) -> str:
    return f"{workspace}-tuning"


def configmap(name: str, namespace: str | None, training_config_yaml: str, content_hash: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(name, namespace, content_hash),
            "data": {"training_config.yaml": training_config_yaml}}


def workspace(recipe, spec, name: str, namespace: str | None, preset_name: str) -> dict:
    tuning = {"preset": {"name": preset_name}, "method": recipe.method.type, "config": configmap_name(name),
              "input": _input(recipe, spec), "output": _output(spec)}
    resource = {"labelSelector": {"matchLabels": dict(spec.label_selector or {"app": name})}}
    if spec.instance_type:
        resource = {"instanceType": spec.instance_type, **resource}
    return {"apiVersion": API_VERSION, "kind": "Workspace",
            "metadata": _metadata(name, namespace, recipe.content_hash()),
            "resource": resource, "tuning": tuning}


def _metadata(name: str, namespace: str | None, content_hash: str) -> dict:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict(MANAGED_BY)
    meta["annotations"] = {HASH_ANNOTATION: content_hash}
    return meta


def _input(recipe, spec) -> dict:
    if spec.input_volume:
        return {"volumeSource": {"persistentVolumeClaim": {"claimName": spec.input_volume}}}
    return {"urls": [recipe.data.train]} if is_url(recipe.data.train) else {}


def _output(spec) -> dict:
    out = {}
    if spec.output_image:
        out["image"] = spec.output_image
    if spec.image_push_secret:
        out["imagePushSecret"] = spec.image_push_secret
    if spec.output_volume:
        out["volumeSource"] = {"persistentVolumeClaim": {"claimName": spec.output_volume}}
    return out


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the embedded training_config.yaml) as literal blocks, readable in kubectl."""


def _str(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def dump_yaml(document: dict) -> str:
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=120, allow_unicode=True)


def dump_manifests(config_map: dict, workspace_obj: dict) -> str:
    return "---\n" + dump_yaml(config_map) + "---\n" + dump_yaml(workspace_obj)
