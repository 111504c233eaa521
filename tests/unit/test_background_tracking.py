"""The background tracker: training goes on while MLflow starts; nothing is lost, reordered or hidden."""

from __future__ import annotations

import threading

import pytest

from phitune.background_tracking import BackgroundTracker
from phitune.tracking import MlflowTracker, Tracker


def _store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlruns.db'}"


def test_calls_reach_a_real_mlflow_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default artifact folder is ./mlruns
    uri = _store(tmp_path)
    tracker = BackgroundTracker(lambda: MlflowTracker("bg", run_name="r", uri=uri))
    assert isinstance(tracker, Tracker)
    tracker.log_params({"train.lr": 0.001, "method.type": "lora"})
    for step in range(1, 6):
        tracker.log_metrics({"train_loss": 1.0 / step}, step=step)
    artifact = tmp_path / "metrics.json"
    artifact.write_text("{}")
    tracker.log_artifact(artifact)
    artifact.unlink()  # log_artifact returned: the copy is already in the store
    run_id = tracker.run_id
    tracker.close("FINISHED")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.001", "method.type": "lora"}
    history = client.get_metric_history(run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    assert {a.path for a in client.list_artifacts(run_id)} == {"metrics.json"}


class _SlowStart:
    """A tracker whose start waits until the test lets it go; records which thread does what."""

    def __init__(self, gate: threading.Event):
        self.gate, self.calls, self.run_id = gate, [], "run-1"

    def __call__(self):
        self.gate.wait(timeout=30)
        self.started_on = threading.current_thread().name
        return self

    def log_params(self, params):
        self.calls.append(("params", dict(params), threading.current_thread().name))

    def log_metrics(self, metrics, step):
        self.calls.append(("metrics", step, threading.current_thread().name))

    def log_artifact(self, path):
        self.calls.append(("artifact", str(path), threading.current_thread().name))

    def close(self, status="FINISHED"):
        self.calls.append(("close", status, threading.current_thread().name))


def test_the_caller_does_not_wait_for_the_start():
    gate = threading.Event()
    slow = _SlowStart(gate)
    tracker = BackgroundTracker(slow)
    params = {"a": 1}
    tracker.log_params(params)  # returns although the tracker has not started
    tracker.log_metrics({"loss": 1.0}, step=1)
    params["a"] = 2  # the caller's later change does not reach the logged copy
    assert slow.calls == [] and not gate.is_set()
    gate.set()
    assert tracker.run_id == "run-1"
    tracker.close("KILLED")
    assert [c[:2] for c in slow.calls] == [("params", {"a": 1}), ("metrics", 1), ("close", "KILLED")]
    assert {c[2] for c in slow.calls} == {"phitune-tracking"} and slow.started_on == "phitune-tracking"


def test_a_start_failure_is_raised_in_the_training_thread():
    def broken():
        raise PermissionError("cannot create mlruns.db")

    tracker = BackgroundTracker(broken)
    with pytest.raises(PermissionError, match="mlruns.db"):
        _ = tracker.run_id
    tracker.close("FAILED")  # after the failure: nothing left to raise, returns


def test_a_logging_failure_stops_later_calls():
    class FailsOnMetrics(_SlowStart):
        def log_metrics(self, metrics, step):
            raise OSError(28, "No space left on device")

    gate = threading.Event()
    gate.set()
    tracker = BackgroundTracker(FailsOnMetrics(gate))
    tracker.log_metrics({"loss": 1.0}, step=1)
    with pytest.raises(OSError, match="No space left"):
        tracker.log_artifact("metrics.json")  # waits for the queue, so the failure is known here
    with pytest.raises(RuntimeError, match="closed"):
        tracker.log_metrics({"loss": 0.5}, step=2)


def test_a_tracker_closed_before_any_call_creates_no_run(tmp_path, monkeypatch):
    """A run stopped by bad data before logging anything leaves no FAILED run behind."""
    monkeypatch.chdir(tmp_path)
    started = []

    def start():
        started.append(True)
        return MlflowTracker("bg", uri=_store(tmp_path))

    tracker = BackgroundTracker(start)
    tracker.close("FAILED")
    assert started == [] and not (tmp_path / "mlruns.db").exists()
    assert tracker.run_id is None


def test_a_held_tracker_opens_its_run_at_begin():
    gate = threading.Event()
    gate.set()
    slow = _SlowStart(gate)
    opened = []
    tracker = BackgroundTracker(lambda: (opened.append(True), slow)[1], held=True)
    tracker.log_params({"a": 1})
    tracker.log_metrics({"loss": 1.0}, step=1)
    assert opened == [] and slow.calls == []  # queued, the run not opened
    tracker.begin()
    tracker.close()
    assert opened == [True]
    assert [c[:2] for c in slow.calls] == [("params", {"a": 1}), ("metrics", 1), ("close", "FINISHED")]


def test_a_held_tracker_opens_its_run_when_its_id_is_needed():
    gate = threading.Event()
    gate.set()
    tracker = BackgroundTracker(_SlowStart(gate), held=True)
    assert tracker.run_id == "run-1"
    tracker.close()
