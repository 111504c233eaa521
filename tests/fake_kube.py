"""A small stand-in for the Kubernetes API server, for the kaito target's tests.

An http.server on 127.0.0.1 (a thread) implementing only the REST calls phitune makes: ConfigMap
create/get/replace, Workspace (kaito.sh/v1beta1 custom object) create/get/delete, pod list and pod log.
Errors are answered the way the API server answers them (a `Status` object; a plain-text
"404 page not found" for a resource type the server does not have).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

TOKEN = "stub-token"
WS_PATH = re.compile(r"^/apis/kaito\.sh/v1beta1/namespaces/([^/]+)/workspaces(?:/([^/]+))?$")
CM_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$")
POD_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)/log)?$")


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return body


@dataclass
class FakeKube:
    namespaces: set = field(default_factory=lambda: {"default", "ml"})
    forbidden: set = field(default_factory=set)        # namespaces the user may not write to
    kaito_installed: bool = True
    reject_workspace: dict | None = None               # a 422 cause {"field": ..., "message": ...}
    created_status: dict | None = None                 # the status KAITO's controller gives a new Workspace
    configmaps: dict = field(default_factory=dict)     # (ns, name) -> object
    workspaces: dict = field(default_factory=dict)
    pods: dict = field(default_factory=dict)           # (ns, name) -> (labels, {container: log})
    requests: list = field(default_factory=list)       # (method, path)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeKube":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                parts = urlsplit(self.path)
                stub.requests.append((method, parts.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, status(401, "Unauthorized", "Unauthorized"))
                code, answer = stub.route(method, parts.path, parse_qs(parts.query), body)
                self._send(code, answer)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path, namespace: str | None = "ml") -> Path:
        """A kubeconfig with context `stub` (valid token, current) and `stale` (a rejected token)."""
        context = {"cluster": "stub", "user": "dev", **({"namespace": namespace} if namespace else {})}
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "stub",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "dev", "user": {"token": TOKEN}}, {"name": "old", "user": {"token": "expired"}}],
            "contexts": [{"name": "stub", "context": context},
                         {"name": "stale", "context": {"cluster": "stub", "user": "old"}}]}))
        return path

    # --- the API -----------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict, body) -> tuple[int, object]:
        for pattern, handler in ((WS_PATH, self._workspaces), (CM_PATH, self._configmaps), (POD_PATH, self._pods)):
            match = pattern.match(path)
            if match:
                ns, name = match.groups()
                if pattern is WS_PATH and not self.kaito_installed:
                    return 404, "404 page not found\n"
                if ns not in self.namespaces:
                    return 404, status(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
                if method != "GET" and ns in self.forbidden:
                    kind = "workspaces" if pattern is WS_PATH else "configmaps"
                    return 403, status(403, "Forbidden", f'{kind} is forbidden: User "dev" cannot {method.lower()} '
                                       f'resource "{kind}" in the namespace "{ns}"', {"kind": kind})
                return handler(method, ns, name, query, body)
        return 404, "404 page not found\n"

    def _store(self, store: dict, kind: str, group: str, method: str, ns: str, name: str | None, body):
        key = (ns, name or (body or {}).get("metadata", {}).get("name"))
        details = {"name": key[1], "group": group, "kind": kind} if group else {"name": key[1], "kind": kind}
        label = f"{kind}.{group}" if group else kind
        if method == "POST":
            if key in store:
                return 409, status(409, "AlreadyExists", f'{label} "{key[1]}" already exists', details)
            store[key] = {**body, "metadata": {**body["metadata"], "namespace": ns, "resourceVersion": "1",
                                               "uid": f"uid-{key[1]}"}}
            return 201, store[key]
        if key not in store:
            return 404, status(404, "NotFound", f'{label} "{key[1]}" not found', details)
        if method == "GET":
            return 200, store[key]
        if method == "PUT":
            version = body["metadata"].get("resourceVersion")
            if version and version != store[key]["metadata"]["resourceVersion"]:
                return 409, status(409, "Conflict", "the object has been modified", details)
            store[key] = {**body, "metadata": {**body["metadata"], "namespace": ns,
                                               "resourceVersion": str(int(store[key]["metadata"]["resourceVersion"]) + 1)}}
            return 200, store[key]
        if method == "DELETE":
            store.pop(key)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": details}
        return 405, status(405, "MethodNotAllowed", method)

    def _configmaps(self, method, ns, name, query, body):
        return self._store(self.configmaps, "configmaps", "", method, ns, name, body)

    def _workspaces(self, method, ns, name, query, body):
        if method == "POST" and self.reject_workspace:
            cause = {"reason": "FieldValueInvalid", **self.reject_workspace}
            ws = body["metadata"]["name"]
            return 422, status(422, "Invalid", f'Workspace.kaito.sh "{ws}" is invalid: {cause["field"]}: '
                               f'{cause["message"]}', {"name": ws, "group": "kaito.sh", "kind": "Workspace",
                                                       "causes": [cause]})
        code, answer = self._store(self.workspaces, "workspaces", "kaito.sh", method, ns, name, body)
        if method == "POST" and code == 201 and self.created_status:
            answer["status"] = self.created_status
        return code, answer

    def _pods(self, method, ns, name, query, body):
        if name is None:
            selector = dict(s.split("=", 1) for s in query.get("labelSelector", [""])[0].split(",") if "=" in s)
            items = [{"metadata": {"name": pod, "namespace": ns, "labels": labels,
                                   "creationTimestamp": "2026-12-01T10:00:00Z"},
                      "spec": {"containers": [{"name": c, "image": "kaito-base"} for c in logs]}}
                     for (pod_ns, pod), (labels, logs) in self.pods.items()
                     if pod_ns == ns and all(labels.get(k) == v for k, v in selector.items())]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        if (ns, name) not in self.pods:
            return 404, status(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        logs = self.pods[(ns, name)][1]
        container = query.get("container", [next(iter(logs))])[0]
        if container not in logs:
            return 400, status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        return 200, logs[container]
