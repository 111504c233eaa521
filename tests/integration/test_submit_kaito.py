"""`phitune submit --target kaito` and `phitune status|logs|cancel --target kaito` with the official
kubernetes client against a local stub of the Kubernetes API (tests/fake_kube.py), reached through a
kubeconfig the test writes."""

from __future__ import annotations

import socket

import pytest
import yaml
from fake_kube import FakeKube

from phitune.cli import main

RECIPE = {
    "name": "phi3-support",
    "model": "microsoft/Phi-3-mini-4k-instruct",
    "data": {"train": "https://data.example.com/support/train.jsonl", "validation_split": 0.1},
    "method": {"type": "qlora", "r": 16, "alpha": 32},
    "train": {"epochs": 2, "lr": 1.0e-4},
    "target": {"type": "kaito", "output_image": "myregistry.azurecr.io/phi3-adapter:0.1",
               "image_push_secret": "acr-push"},
}
WS = ("ml", "phi3-support")


@pytest.fixture
def stub(tmp_path, monkeypatch):
    kube = FakeKube().start()
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield kube
    kube.stop()


def write_recipe(tmp_path, **changes) -> str:
    body = {**RECIPE, **changes}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def condition(kind: str, status: str, reason: str, message: str) -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-12-01T10:00:00Z"}


def test_dry_run_writes_configmap_then_workspace_and_sends_nothing(stub, tmp_path, capsys):
    code, out, _ = run(capsys, "submit", write_recipe(tmp_path), "--target", "kaito", "--dry-run",
                       "--output", str(tmp_path / "D"))
    assert code == 0 and "DryRun" in out
    docs = list(yaml.safe_load_all((tmp_path / "D" / "kaito.yaml").read_text()))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [("v1", "ConfigMap"), ("kaito.sh/v1beta1", "Workspace")]
    assert docs[1]["tuning"]["config"] == docs[0]["metadata"]["name"] == "phi3-support-tuning"
    assert stub.requests == []


def test_submit_applies_both_and_status_logs_cancel_follow_the_workspace(stub, tmp_path, capsys):
    code, out, err = run(capsys, "submit", write_recipe(tmp_path), "--output", str(tmp_path / "S"))
    assert code == 0, err
    assert "submitted: phi3-support" in out
    assert "phitune status phi3-support --target kaito --namespace ml --context stub" in out
    applied = list(yaml.safe_load_all((tmp_path / "S" / "kaito.yaml").read_text()))
    assert stub.configmaps[("ml", "phi3-support-tuning")]["data"] == applied[0]["data"]
    assert stub.workspaces[WS]["tuning"] == applied[1]["tuning"]
    assert applied[1]["metadata"]["namespace"] == "ml"  # the kubeconfig context's namespace

    def status(*conditions) -> str:
        stub.workspaces[WS]["status"] = {"conditions": list(conditions)}
        code, out, err = run(capsys, "status", "phi3-support", "--target", "kaito")
        assert code == 0, err
        return out

    assert status(condition("ResourceReady", "False", "NodeClaimNotReady", "waiting for GPU nodes")).startswith("Preparing")
    out = status(condition("ResourceReady", "True", "ok", "ready"),
                 condition("JobStarted", "True", "WorkspaceTuningJobStatusStarted", "Tuning job has started"))
    assert out.startswith("Running: phi3-support") and "Tuning job has started" in out
    out = status(condition("JobStarted", "False", "WorkspaceTuningJobStatusFailed", "tuning job failed"),
                 condition("WorkspaceSucceeded", "False", "workspaceFailed", "tuning job failed"))
    assert out.startswith("Failed") and "workspaceFailed" in out
    assert status(condition("WorkspaceSucceeded", "True", "workspaceSucceeded", "workspace succeeds")).startswith("Completed")

    code, out, _ = run(capsys, "logs", "phi3-support", "--target", "kaito")
    assert code == 0 and "no tuning pod yet" in out
    stub.pods[("ml", "phi3-support-7x2kq")] = ({"kaito.sh/workspace": "phi3-support"},
                                                {"phi3-support": "{'loss': 1.84, 'epoch': 0.5}\n", "pause": ""})
    stub.pods[("ml", "other-abcde")] = ({"kaito.sh/workspace": "other"}, {"other": "not this one\n"})
    code, out, _ = run(capsys, "logs", "phi3-support", "--target", "kaito", "--namespace", "ml")
    assert code == 0 and "==> pod phi3-support-7x2kq <==" in out and "'loss': 1.84" in out
    assert "not this one" not in out

    code, _, err = run(capsys, "download", "phi3-support", "--target", "kaito", "--output", str(tmp_path / "dl"))
    assert code == 2 and "image myregistry.azurecr.io/phi3-adapter:0.1" in err

    code, out, _ = run(capsys, "cancel", "phi3-support", "--target", "kaito")
    assert code == 0 and "deleted" in out and WS not in stub.workspaces
    code, _, err = run(capsys, "status", "phi3-support", "--target", "kaito")
    assert code == 2 and "no Workspace 'phi3-support' in namespace 'ml'" in err


def test_name_clash_is_an_error_and_leaves_the_running_config_alone(stub, tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    assert run(capsys, "submit", recipe, "--output", str(tmp_path / "A"))[0] == 0
    changed = write_recipe(tmp_path, train={"epochs": 5, "lr": 1.0e-4})
    code, _, err = run(capsys, "submit", changed, "--output", str(tmp_path / "B"))
    assert code == 2
    assert "target.name: a Workspace named 'phi3-support' already exists in namespace 'ml'" in err
    assert "phitune cancel phi3-support --target kaito" in err
    assert stub.configmaps[("ml", "phi3-support-tuning")]["metadata"]["resourceVersion"] == "1"  # not replaced


def test_resubmit_after_cancel_replaces_the_configmap(stub, tmp_path, capsys):
    assert run(capsys, "submit", write_recipe(tmp_path), "--output", str(tmp_path / "A"))[0] == 0
    assert run(capsys, "cancel", "phi3-support", "--target", "kaito")[0] == 0
    changed = write_recipe(tmp_path, train={"epochs": 5, "lr": 1.0e-4})
    code, _, err = run(capsys, "submit", changed, "--output", str(tmp_path / "B"))
    assert code == 0, err
    cm = stub.configmaps[("ml", "phi3-support-tuning")]
    assert cm["metadata"]["resourceVersion"] == "2" and "num_train_epochs: 5" in cm["data"]["training_config.yaml"]
    assert ("PUT", "/api/v1/namespaces/ml/configmaps/phi3-support-tuning") in stub.requests


@pytest.mark.parametrize("setup, args, field, words", [
    (lambda s: None, ["--set", "target.context=stale"], "target.context", "rejected the credentials"),
    (lambda s: s.forbidden.add("ml"), [], "target.namespace", "forbidden"),
    (lambda s: None, ["--set", "target.namespace=research"], "target.namespace", "kubectl create namespace research"),
    (lambda s: setattr(s, "kaito_installed", False), [], "target", "is KAITO installed?"),
    (lambda s: setattr(s, "reject_workspace", {"field": "resource.instanceType", "message":
                                               "Unsupported value: \"Standard_XYZ\""}),
     [], "target.instance_type", "Standard_XYZ"),
    (lambda s: None, ["--set", "target.context=elsewhere"], "target.context", "one of: stub, stale"),
])
def test_api_errors_become_one_message_with_a_fix(stub, tmp_path, capsys, setup, args, field, words):
    setup(stub)
    code, _, err = run(capsys, "submit", write_recipe(tmp_path), "--output", str(tmp_path / "S"), *args)
    assert code == 2
    assert f"  - {field}: " in err and words in err and "fix:" in err
    assert "Traceback" not in err


def test_unreachable_api_server_is_reported(stub, tmp_path, capsys, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    code, _, err = run(capsys, "status", "phi3-support", "--target", "kaito")
    assert code == 2 and "cannot reach the Kubernetes API server" in err


def test_local_data_file_never_reaches_the_cluster(stub, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    code, _, err = run(capsys, "submit", write_recipe(tmp_path, data={"train": str(data)}), "--output", str(tmp_path / "S"))
    assert code == 2
    assert "data.train:" in err and "cluster cannot read" in err and "target.input_volume" in err and "https" in err
    assert stub.requests == [] and not (tmp_path / "S").exists()


def test_a_sas_url_reaches_the_manifest_whole_and_never_the_terminal(stub, tmp_path, capsys):
    url = "https://acct.blob.core.windows.net/data/train.jsonl?sv=2024-01-01&se=2030-01-01&sp=r&sig=c2VjcmV0U2ln"
    private = url.replace("acct.blob.core.windows.net", "10.1.2.3")
    code, out, err = run(capsys, "submit", write_recipe(tmp_path, data={"train": private}), "--output", str(tmp_path / "P"))
    assert code == 2 and "https://10.1.2.3/data/train.jsonl?sv=2024-01-01&se=REDACTED&sp=r&sig=REDACTED" in err
    assert "c2VjcmV0U2ln" not in out + err
    code, out, err = run(capsys, "submit", write_recipe(tmp_path, data={"train": url}), "--output", str(tmp_path / "S"))
    assert code == 0 and "c2VjcmV0U2ln" not in out + err
    assert stub.workspaces[WS]["tuning"]["input"]["urls"] == [url]  # what KAITO's downloader needs


@pytest.mark.parametrize("final, exit_code", [("Completed", 0), ("Failed", 1)])
def test_submit_wait_follows_the_workspace_to_its_end(stub, tmp_path, capsys, final, exit_code):
    succeeded = [condition("WorkspaceSucceeded", "True", "workspaceSucceeded", "workspace succeeds")]
    failed = [condition("JobStarted", "False", "WorkspaceTuningJobStatusFailed", "tuning job failed")]
    stub.created_status = {"conditions": succeeded if final == "Completed" else failed}
    code, out, _ = run(capsys, "submit", write_recipe(tmp_path), "--output", str(tmp_path / "S"), "--wait")
    assert code == exit_code and f"{final}: phi3-support" in out


def test_python_api_returns_a_handle_that_follows_the_workspace(stub, tmp_path):
    from phitune.recipe.load import load_recipe
    from phitune.targets.submit import submit

    handle = submit(load_recipe({**RECIPE, "target": {"type": "maap"}}), target={**RECIPE["target"], "name": "api-run"},
                    output_dir=tmp_path / "S")
    assert handle.id == "api-run" and handle.url.endswith("/apis/kaito.sh/v1beta1/namespaces/ml/workspaces/api-run")
    assert handle.status() == "Preparing"
    stub.workspaces[("ml", "api-run")]["status"] = {"conditions": [
        condition("WorkspaceSucceeded", "True", "workspaceSucceeded", "workspace succeeds")]}
    assert handle.wait(timeout=5) == "Completed"
