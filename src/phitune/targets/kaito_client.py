"""The Kubernetes API calls of the kaito target, with the official `kubernetes` client (extra `kaito`).

The client is built from the kubeconfig ($KUBECONFIG, else ~/.kube/config; `context` selects the
context), or from the pod's service account when running in a cluster without a kubeconfig. Every
call goes through `kube_call`, which turns the API server's refusals into one message with a fix.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phitune.errors import Problem, SubmitError
from phitune.targets.kaito_manifest import GROUP, PLURAL, VERSION
from phitune.targets.kaito_schema import recipe_field

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
WORKSPACE_LABEL = "kaito.sh/workspace"  # KAITO labels the tuning job's pods with their Workspace


@dataclass
class Cluster:
    api: object        # kubernetes.client.ApiClient
    namespace: str
    context: str | None

    @property
    def host(self) -> str:
        return self.api.configuration.host


def connect(context: str | None = None, namespace: str | None = None, field: str = "target.context") -> Cluster:
    """An API client for `context` (None: the kubeconfig's current one) and the namespace to use."""
    try:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise SubmitError("the kaito target needs the Kubernetes client", [Problem(
            "target.type", "the `kubernetes` package is not installed", "pip install 'phitune[kaito]'")]) from None
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    files = [f for f in kubeconfig.split(os.pathsep) if f]
    if context is None and not any(Path(f).is_file() for f in files) and os.environ.get("KUBERNETES_SERVICE_HOST"):
        from kubernetes import client

        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise SubmitError("no usable in-cluster configuration", [Problem(
                field, f"running in a pod, but its service account cannot be used: {exc}",
                "mount the pod's service account token, or point KUBECONFIG at a kubeconfig")]) from None
        in_pod = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.is_file() else "default"
        return Cluster(client.ApiClient(configuration), namespace or in_pod, None)
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        names = [c["name"] for c in contexts]
        if context is not None and context not in names:
            raise SubmitError("unknown kubeconfig context", [Problem(
                field, f"{context!r} is not a context of {kubeconfig}", f"use one of: {', '.join(names)}")])
        chosen = next(c for c in contexts if c["name"] == (context or current["name"]))
        api = config.new_client_from_config(config_file=kubeconfig, context=chosen["name"], persist_config=False)
    except (ConfigException, OSError, StopIteration, TypeError) as exc:
        raise SubmitError("no usable kubeconfig", [Problem(
            field, f"cannot load {kubeconfig}: {exc}",
            "point KUBECONFIG at your cluster's kubeconfig (e.g. `az aks get-credentials`), or run in a pod")]) from None
    api.configuration.retries = 1  # a refused connection is reported, not retried for minutes
    default_ns = (chosen.get("context") or {}).get("namespace") or "default"
    return Cluster(api, namespace or default_ns, chosen["name"])


@contextmanager
def kube_call(action: str, cluster: Cluster, name: str = "", kind: str = "Workspace"):
    """Turn ApiException / connection errors into one SubmitError naming what to fix."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        raise _api_error(exc, action, cluster, name, kind) from None
    except HTTPError as exc:
        raise SubmitError(f"{action}: cannot reach the Kubernetes API server", [Problem(
            "target.context", f"{cluster.host}: {type(exc).__name__}",
            "check that the cluster is running and the kubeconfig context points at it")]) from None


def _api_error(exc, action: str, cluster: Cluster, name: str, kind: str) -> SubmitError:
    status = _status_body(exc)
    message = status.get("message") or exc.reason or ""
    ns, where = cluster.namespace, f"namespace {cluster.namespace!r}"
    details = status.get("details") or {}
    code = exc.status
    if code == 401:
        problem = Problem("target.context", f"the API server rejected the credentials of context {cluster.context!r}: "
                          f"{message}", "refresh the kubeconfig credentials (e.g. `az aks get-credentials`) and retry")
    elif code == 403:
        problem = Problem("target.namespace", f"forbidden: {message}",
                          f"ask for RBAC permission on ConfigMaps and workspaces.kaito.sh in {where}, or use another "
                          "target.namespace")
    elif code == 404 and details.get("kind") == "namespaces":
        problem = Problem("target.namespace", f"{where} does not exist", f"kubectl create namespace {ns}, or set "
                          "target.namespace")
    elif code == 404 and details.get("kind"):  # the API server knows the resource type: this object is missing
        problem = Problem("target.name", f"no {kind} {name!r} in {where}", "check the name and --namespace / --context")
    elif code == 404:  # no Status naming the object: the resource type itself is unknown
        problem = Problem("target", f"the API server has no workspaces.kaito.sh resource: is KAITO installed? "
                          f"({message or 'not found'})", "install KAITO's workspace controller (its Helm chart) on "
                          "the cluster")
    elif code == 409:
        problem = _name_taken(cluster, name, kind)
    elif code == 422:
        causes = details.get("causes") or []
        problems = [Problem(recipe_field(c.get("field", "").removeprefix("spec.")) if c.get("field") else "target",
                            f"{c.get('field', '')}: {c.get('message', '')}".strip(": "),
                            "correct that recipe field") for c in causes]
        return SubmitError(f"{action}: the API server refused the {kind} ({message})",
                           problems or [Problem("target", message, "correct the recipe and retry")])
    else:
        problem = Problem("target", f"HTTP {code} {exc.reason}: {message}", "retry; if it persists, check the cluster")
    return SubmitError(f"{action}: Kubernetes API error {code}", [problem])


def _name_taken(cluster: Cluster, name: str, kind: str) -> Problem:
    return Problem("target.name", f"a {kind} named {name!r} already exists in namespace {cluster.namespace!r}",
                   f"`phitune cancel {name} --target kaito --namespace {cluster.namespace}` deletes it, or set "
                   "target.name")


def _status_body(exc) -> dict:
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def apply(cluster: Cluster, config_map: dict, workspace: dict) -> dict:
    """Create (or replace) the ConfigMap, then create the Workspace. An existing Workspace of that name
    is an error, found before its ConfigMap is touched."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core, custom, ns = client.CoreV1Api(cluster.api), client.CustomObjectsApi(cluster.api), cluster.namespace
    name, cm_name = workspace["metadata"]["name"], config_map["metadata"]["name"]
    with kube_call("looking for an existing KAITO Workspace", cluster, name):
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404 or (_status_body(exc).get("details") or {}).get("kind") != PLURAL:
                raise  # a missing namespace or CRD, or any other refusal
        else:
            raise SubmitError("the Workspace name is taken", [_name_taken(cluster, name, "Workspace")])
    with kube_call("creating the tuning ConfigMap", cluster, cm_name, "ConfigMap"):
        try:
            core.create_namespaced_config_map(ns, config_map)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = core.read_namespaced_config_map(cm_name, ns)
            body = {**config_map, "metadata": {**config_map["metadata"],
                                               "resourceVersion": current.metadata.resource_version}}
            core.replace_namespaced_config_map(cm_name, ns, body)
    with kube_call("creating the KAITO Workspace", cluster, name):
        return custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, workspace)


def get_workspace(cluster: Cluster, name: str) -> dict:
    from kubernetes import client

    with kube_call(f"getting Workspace {name}", cluster, name):
        return client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(GROUP, VERSION, cluster.namespace,
                                                                                 PLURAL, name)


def delete_workspace(cluster: Cluster, name: str) -> None:
    from kubernetes import client

    with kube_call(f"deleting Workspace {name}", cluster, name):
        client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(GROUP, VERSION, cluster.namespace,
                                                                             PLURAL, name)


def tuning_logs(cluster: Cluster, name: str) -> tuple[str | None, str]:
    """(pod name, log of its tuning container) for the newest pod of Workspace `name`'s job."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.api)
    with kube_call(f"listing the pods of Workspace {name}", cluster, name, "pod"):
        pods = core.list_namespaced_pod(cluster.namespace, label_selector=f"{WORKSPACE_LABEL}={name}").items
    if not pods:
        return None, ""
    pod = max(pods, key=lambda p: (p.metadata.creation_timestamp is not None, p.metadata.creation_timestamp))
    with kube_call(f"reading the log of pod {pod.metadata.name}", cluster, pod.metadata.name, "pod"):
        # KAITO names the tuning container after the Workspace.
        # Raw bytes: the generated client would otherwise try to parse the log as JSON.
        raw = core.read_namespaced_pod_log(pod.metadata.name, cluster.namespace, container=name,
                                           _preload_content=False)
    return pod.metadata.name, raw.data.decode("utf-8", errors="replace")
