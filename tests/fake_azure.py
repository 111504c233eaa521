"""Azure ML faked at the HTTP level with `responses` (the only fake the house rules allow), so tests
run the real azure-ai-ml code path: uploads, anonymous components, environments, job PUTs.

`with FakeAzure() as az:` intercepts every request made through `requests` (azure-core's default
transport). Unknown calls get a 418 so a test fails loudly. `az.fail(...)` injects error responses.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field

import responses

SUB, RG, WS = "sub-0000", "rg-phitune", "ws-phitune"
ARM = "https://management.azure.com"
WS_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
BLOB = "https://fakestore.blob.core.windows.net"
SAS_SECRET = "sig=SUPERSECRETSASSIGNATURE"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class FakeCredential:
    """Unsigned JWTs whose `aud` is the requested scope (pipeline submits check `aud`)."""

    def __init__(self):
        self.requests = 0

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        self.requests += 1
        aud = scopes[0].removesuffix("/.default") if scopes else "https://management.azure.com"
        claims = {"aud": aud, "exp": int(time.time()) + 3600, "oid": "oid-1", "tid": "tenant-1", "upn": "u@x"}
        return AccessToken(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.", int(time.time()) + 3600)

    def get_token_info(self, *scopes, **kwargs):
        from azure.core.credentials import AccessTokenInfo

        token = self.get_token(*scopes)
        return AccessTokenInfo(token.token, token.expires_on)


@dataclass
class Failure:
    method: str
    pattern: re.Pattern
    status: int
    body: dict
    times: int | None
    headers: dict = field(default_factory=dict)


class FakeAzure:
    def __init__(self):
        self.calls: list[tuple[str, str, object]] = []
        self.failures: list[Failure] = []
        self.jobs: dict[str, dict] = {}
        self.code_versions: dict[str, dict] = {}  # content hash -> registered code version
        self.job_status = "Completed"
        self._mock = responses.RequestsMock(assert_all_requests_are_fired=False)

    def __enter__(self) -> "FakeAzure":
        self._mock.__enter__()
        for method in ("GET", "PUT", "POST", "HEAD", "PATCH", "DELETE"):
            self._mock.add_callback(method, re.compile(r".*"), callback=self._route)
        return self

    def __exit__(self, *exc) -> None:
        self._mock.__exit__(*exc)

    def fail(self, method: str, url_regex: str, status: int, code: str = "", message: str = "",
             times: int | None = None, headers: dict | None = None, details: list | None = None) -> None:
        body = {"error": {"code": code or str(status), "message": message or f"fake {status}"}}
        if details:
            body["error"]["details"] = details
        self.failures.append(Failure(method, re.compile(url_regex), status, body, times, headers or {}))

    def requests_to(self, method: str, fragment: str) -> list[tuple[str, str, object]]:
        return [c for c in self.calls if c[0] == method and fragment in c[1]]

    def job_bodies(self) -> list[dict]:
        return [c[2] for c in self.calls if c[0] == "PUT" and re.search(r"/jobs/[^/?]+\?", c[1])]

    # --- routing ------------------------------------------------------------------------------

    def _route(self, request):
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        elif body is not None and not isinstance(body, (bytes, str)):
            body = b"".join(chunk if isinstance(chunk, bytes) else str(chunk).encode() for chunk in body)
        if isinstance(body, bytes):
            try:
                body = body.decode()
            except UnicodeDecodeError:
                body = "<binary>"
        try:
            parsed = json.loads(body) if isinstance(body, str) and body[:1] in "{[" else body
        except ValueError:
            parsed = body
        self.calls.append((request.method, request.url, parsed))
        for failure in self.failures:
            if failure.method == request.method and failure.pattern.search(request.url) and failure.times != 0:
                if failure.times is not None:
                    failure.times -= 1
                return failure.status, {"Content-Type": "application/json", **failure.headers}, json.dumps(failure.body)
        path = request.url.split("?")[0]
        if path.startswith(BLOB):
            if request.method == "HEAD":
                return 404, {}, ""
            return (200 if "comp=" in request.url else 201), {}, ""
        if not path.startswith(ARM + WS_PATH):
            return _json(418, {"error": {"code": "Unexpected", "message": f"{request.method} {path}"}})
        query = request.url.partition("?")[2]
        return self._workspace_route(request.method, path[len(ARM + WS_PATH):], parsed, query)

    def _workspace_route(self, method: str, rel: str, body, query: str = ""):
        ws_id = WS_PATH
        if method == "GET" and rel == "":
            return _json(200, {"id": ws_id, "name": WS, "location": "eastus2", "properties": {
                "workspaceId": "11111111-2222-3333-4444-555555555555",
                "discoveryUrl": "https://eastus2.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://eastus2.api.azureml.ms/mlflow/v1.0{ws_id}"}})
        if method == "GET" and re.fullmatch(r"/(codes|environments|components)/[^/]+/versions", rel):
            # Like Azure, a code snapshot already uploaded with the same content hash is reused.
            digest = re.search(r"(?:^|&)hash=([0-9a-f]+)", query)
            known = self.code_versions.get(digest.group(1)) if digest else None
            return _json(200, {"value": [known] if known else []})
        if method == "POST" and rel.endswith("/startPendingUpload"):
            return _json(200, {"blobReferenceForConsumption": {
                "blobUri": f"{BLOB}/code/snap", "credential": {"credentialType": "SAS",
                                                               "sasUri": f"{BLOB}/code/snap?sv=2024&{SAS_SECRET}"}},
                "pendingUploadId": "p1", "pendingUploadType": "TemporaryBlobReference"})
        if method == "GET" and re.fullmatch(r"/codes/[^/]+/versions/[^/]+", rel):
            known = [v for v in self.code_versions.values() if v["id"] == ws_id + rel]
            return _json(200, known[0]) if known else _json(404, {"error": {"code": "NotFound", "message": rel}})
        if method == "PUT" and re.fullmatch(r"/(codes|environments|components)/[^/]+/versions/[^/]+", rel):
            stored = {**body, "id": ws_id + rel, "name": rel.split("/")[-1]}
            digest = ((body.get("properties") or {}).get("properties") or {}).get("hash_sha256")
            if rel.startswith("/codes/") and digest:
                self.code_versions[digest] = stored
            return _json(200, stored)
        if method == "GET" and rel.startswith("/datastores/"):
            return _json(200, {"id": ws_id + rel, "name": rel.split("/")[-1], "properties": {
                "datastoreType": "AzureBlob", "accountName": "fakestore", "containerName": "data",
                "endpoint": "core.windows.net", "protocol": "https", "credentials": {"credentialsType": "AccountKey"}}})
        if method == "POST" and rel.endswith("/listSecrets"):
            return _json(200, {"secretsType": "AccountKey", "key": "RkFLRUtFWQ=="})
        if method == "GET" and rel.startswith("/computes/"):
            return _json(200, {"id": ws_id + rel, "name": rel.split("/")[-1],
                               "properties": {"computeType": "AmlCompute", "properties": {}}})
        job = re.fullmatch(r"/jobs/([^/]+)(/cancel)?", rel)
        if job and method == "PUT":
            stored = {**body, "id": ws_id + rel, "name": job.group(1)}
            stored["properties"] = {**stored["properties"], "status": "NotStarted",
                                    "services": {"Studio": {"endpoint": f"https://ml.azure.com/runs/{job.group(1)}"}}}
            self.jobs[job.group(1)] = stored
            return _json(201, stored)
        if job and method == "GET" and job.group(1) in self.jobs:
            stored = json.loads(json.dumps(self.jobs[job.group(1)]))
            stored["properties"]["status"] = self.job_status
            return _json(200, stored)
        if job and method == "POST" and job.group(2):
            return 202, {"Location": f"{ARM}{ws_id}/jobs/{job.group(1)}/cancelstatus"}, ""
        if method == "GET" and rel.endswith("/cancelstatus"):
            return 200, {}, ""
        model = re.fullmatch(r"/models/([^/]+)/versions(/[^/]+)?", rel)
        if model and method == "GET":
            version = {"id": f"{ws_id}/models/{model.group(1)}/versions/3", "name": "3",
                       "properties": {"modelType": "mlflow_model", "modelUri": "azureml://x", "flavors": {}}}
            return _json(200, {"value": [version]} if model.group(2) is None else version)
        endpoint = re.fullmatch(r"/serverlessEndpoints/([^/]+)", rel)
        if endpoint and method in ("PUT", "GET"):
            payload = body if isinstance(body, dict) else {}
            return _json(200, {**payload, "id": ws_id + rel, "name": endpoint.group(1), "location": "eastus2",
                               "properties": {**payload.get("properties", {}), "provisioningState": "Succeeded",
                                              "inferenceEndpoint": {"uri": f"https://{endpoint.group(1)}.eastus2.models.ai.azure.com"}}})
        return _json(418, {"error": {"code": "Unexpected", "message": f"{method} {rel}"}})


def _json(status: int, body: dict):
    return status, {"Content-Type": "application/json"}, json.dumps(body)


def ml_client(credential=None, **options):
    """An MLClient built by phitune's one constructor, with a fake credential and fast retries."""
    from phitune.recipe.target import WorkspaceSpec
    from phitune.targets.workspace import make_ml_client

    return make_ml_client(WorkspaceSpec(subscription=SUB, resource_group=RG, name=WS),
                          credential=credential or FakeCredential(),
                          **{"retry_backoff_factor": 0.01, "retry_backoff_max": 0.05, **options})
