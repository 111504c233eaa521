"""phitune's own description of the KAITO `kaito.sh/v1beta1` Workspace, for the offline check in
kaito_schema.py: the types, required keys and enums the API server enforces on the fields phitune
writes, in a compact form of phitune's making.

The facts follow KAITO v0.12.0's Workspace CRD (config/crd/bases/kaito.sh_workspaces.yaml, version
v1beta1, the stored one). Where that CRD leaves a part free (`x-kubernetes-preserve-unknown-fields`:
the tuning volume sources) or phitune never writes it (`inference`, `status`), the part is `OPEN`: any
object passes. `metadata` is Kubernetes' ObjectMeta (the CRD says only "object"); the keys phitune
writes are described and the rest left open. The CRD declares no enum for `tuning.method`: that lora |
qlora is KAITO's admission rule (api/v1beta1/workspace_validation.go), checked in kaito_schema.py.
To follow a newer KAITO, compare this with the new CRD's v1beta1 schema and update KAITO_VERSION.

Vocabulary: each node is a dict with `type` (string, integer, boolean, array, object) and, as needed,
`enum`, `minimum`, `items` (array element), `fields` + `required` (an object's known keys), `values`
(a map's value type) and `open` (keys beyond `fields` allowed).
"""

from __future__ import annotations


def string(*enum: str) -> dict:
    return {"type": "string", "enum": list(enum)} if enum else {"type": "string"}


def integer(minimum: int | None = None) -> dict:
    return {"type": "integer"} if minimum is None else {"type": "integer", "minimum": minimum}


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def record(*required: str, open: bool = False, **fields: dict) -> dict:
    """An object with known keys; unknown keys are errors unless `open`."""
    node = {"type": "object", "fields": fields, "required": list(required)}
    return {**node, "open": True} if open else node


def map_of(values: dict) -> dict:
    return {"type": "object", "values": values}


OPEN = {"type": "object", "open": True}
STRINGS = array(string())

_LABEL_SELECTOR = record(
    matchLabels=map_of(string()),
    matchExpressions=array(record("key", "operator", key=string(), operator=string(), values=STRINGS)),
)

_RESOURCE = record(
    "labelSelector",
    count=integer(),  # KAITO defaults it to 1; admission allows only 1 for tuning
    instanceType=string(),
    labelSelector=_LABEL_SELECTOR,
    preferredNodes=STRINGS,
    partition=record("mode", mode=string("mig", "accelerator"), count=integer(minimum=1), profile=string()),
)

_PRESET = record(
    "name",
    name=string(),
    accessMode=string("public", "private"),
    presetOptions=record(image=string(), imagePullSecrets=STRINGS, modelAccessSecret=string()),
)

_TUNING = record(
    "input", "output",
    preset=_PRESET,
    method=string(),
    config=string(),  # name of the ConfigMap holding training_config.yaml, same namespace
    input=record(name=string(), urls=STRINGS, image=string(), imagePullSecrets=STRINGS, volumeSource=OPEN),
    output=record(image=string(), imagePushSecret=string(), volumeSource=OPEN),
)

_METADATA = record(
    open=True,
    name=string(),
    namespace=string(),
    labels=map_of(string()),
    annotations=map_of(string()),
)

WORKSPACE = record(
    apiVersion=string(),
    kind=string(),
    metadata=_METADATA,
    resource=_RESOURCE,
    tuning=_TUNING,
    inference=OPEN,
    status=OPEN,
)
