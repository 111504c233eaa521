"""Azure ML registries (`azureml`, `azureml-meta`, ...) faked at the HTTP level, on top of FakeAzure.

azure-ai-ml reaches a registry through its discovery endpoint, then the registry's regional
front end: GET .../registries/<r>/{models,components}/<name>/versions[/<v>]. Components are served
from the interfaces phitune ships (optionally changed by a test); models carry the tags a test gives.
"""

from __future__ import annotations

import copy
import re

from fake_azure import FakeAzure, _json
from phitune.targets.registry_interfaces import _asset

DISCOVERY = "https://eastus.api.azureml.ms/registrymanagement/v1.0/registries/"
REGISTRY_HOST = "https://eastus.api.azureml.ms/mferp/managementfrontend"
REGISTRY_RG = "/subscriptions/reg-sub/resourceGroups/reg-rg/providers/Microsoft.MachineLearningServices/registries/"


def component_spec(name: str) -> dict:
    """The shipped interface of `name` as a registry componentSpec (a copy a test may change)."""
    raw = copy.deepcopy(_asset()["components"][name])
    inputs = {}
    for key, spec in raw["inputs"].items():
        spec = dict(spec)
        if not spec.get("optional"):
            spec.pop("optional", None)
        inputs[key] = spec
    return {"name": name, "version": raw["version"], "type": "pipeline", "inputs": inputs, "outputs": raw["outputs"]}


class FakeRegistryAzure(FakeAzure):
    def __init__(self, models: dict[str, dict] | None = None, components: dict[str, dict] | None = None):
        """`models`: "registry/name" -> {"version": "14", "tags": {...}}; `components`: name -> componentSpec."""
        super().__init__()
        self.models = models or {}
        self.components = components or {}

    def _route(self, request):
        url = request.url
        if url.startswith(DISCOVERY):
            self.calls.append((request.method, url, None))
            registry = url[len(DISCOVERY):].split("/")[0]
            return _json(200, {"registryName": registry, "primaryRegionResourceProviderUri": "https://eastus.api.azureml.ms/",
                               "subscriptionId": "reg-sub", "resourceGroup": "reg-rg", "registryFqdns": {}})
        if url.startswith(REGISTRY_HOST):
            self.calls.append((request.method, url, None))
            return self._registry_route(request.method, url[len(REGISTRY_HOST):].split("?")[0])
        return super()._route(request)

    def _registry_route(self, method: str, path: str):
        match = re.fullmatch(re.escape(REGISTRY_RG) + r"([^/]+)/(models|components)/([^/]+)/versions(?:/([^/]+))?", path)
        if method != "GET" or not match:
            return _json(418, {"error": {"code": "Unexpected", "message": f"{method} {path}"}})
        registry, kind, name, version = match.groups()
        body = self._model(registry, name) if kind == "models" else self._component(registry, name)
        if body is None or (version and body["name"] != version):
            return _json(404, {"error": {"code": "NotFound", "message": f"{kind} {name} {version or ''} not found"}})
        return _json(200, body if version else {"value": [body]})

    def _model(self, registry: str, name: str) -> dict | None:
        model = self.models.get(f"{registry}/{name}")
        if model is None:
            return None
        version = str(model["version"])
        return {"id": f"azureml://registries/{registry}/models/{name}/versions/{version}", "name": version,
                "properties": {"tags": dict(model.get("tags", {})), "properties": {}, "modelType": "mlflow_model",
                               "modelUri": f"azureml://registries/{registry}/models/{name}/versions/{version}",
                               "flavors": {}, "isArchived": False}}

    def _component(self, registry: str, name: str) -> dict | None:
        spec = self.components.get(name) or (component_spec(name) if name in _asset()["components"] else None)
        if spec is None:
            return None
        return {"id": f"{REGISTRY_RG}{registry}/components/{name}/versions/{spec['version']}", "name": spec["version"],
                "properties": {"componentSpec": spec, "description": "", "tags": {}, "properties": {},
                               "isAnonymous": False, "isArchived": False}}
