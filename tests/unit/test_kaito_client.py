"""How the kaito target finds its cluster (kubeconfig, or the pod's service account) and reads a
Workspace's conditions; the API calls themselves are in tests/integration/test_submit_kaito.py."""

from __future__ import annotations

import pytest

from phitune.errors import SubmitError
from phitune.targets import kaito_client
from phitune.targets.kaito import workspace_status


def test_in_a_pod_without_kubeconfig_the_service_account_is_used(tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("pod-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "namespace").write_text("team-a\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setattr(kaito_client, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cluster = kaito_client.connect()
    assert (cluster.host, cluster.namespace, cluster.context) == ("https://10.0.0.1:443", "team-a", None)
    assert kaito_client.connect(namespace="ml").namespace == "ml"


def test_no_kubeconfig_outside_a_pod_is_one_error_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SubmitError) as err:
        kaito_client.connect()
    assert err.value.problems[0].location == "target.context" and "KUBECONFIG" in err.value.problems[0].fix


def cond(kind, status, reason, message="m"):
    return {"type": kind, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize("conditions, expected", [
    ([], "Preparing"),
    ([cond("ResourceReady", "False", "NodeClaimNotReady", "waiting for nodes")], "Preparing"),
    ([cond("JobStarted", "False", "WorkspaceTuningJobStatusPending")], "Preparing"),
    ([cond("JobStarted", "True", "WorkspaceTuningJobStatusStarted"),
      cond("WorkspaceSucceeded", "False", "workspacePending")], "Running"),
    ([cond("JobStarted", "False", "WorkspaceTuningJobStatusFailed"),
      cond("WorkspaceSucceeded", "False", "workspaceFailed", "tuning job failed")], "Failed"),
    ([cond("WorkspaceSucceeded", "True", "workspaceSucceeded")], "Completed"),
])
def test_workspace_conditions_map_to_phitune_statuses(conditions, expected):
    status, lines = workspace_status({"status": {"conditions": conditions}})
    assert status == expected and len(lines) == len(conditions)
