"""Experiment tracking behind a four-method `Tracker` protocol, so the training loop never knows
which backend it talks to, and distributed ranks other than 0 get the `NullTracker`.

MLflow is the default: `MLFLOW_TRACKING_URI` when set, else `sqlite:///<cwd>/mlruns.db` with
artifacts under `./mlruns` (works offline; the file store is in maintenance mode). `tracking: none`
gives the null tracker. mlflow is imported only when a run actually tracks (it costs seconds); its
telemetry and logs are switched off by phitune.process at the entry points. Metrics are buffered and
sent in batches: one sqlite round-trip per optimizer step would cost more than a tiny model's whole step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

from phitune.redact import redact, redact_params

if TYPE_CHECKING:
    from phitune.recipe.schema import Recipe

_FLUSH_EVERY_S = 5.0
_FLUSH_EVERY_N = 500


@runtime_checkable
class Tracker(Protocol):
    """What the training loop needs from a tracking backend."""

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_artifact(self, path: str | os.PathLike) -> None: ...

    def close(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracks nothing: `tracking: none`, and every distributed rank but 0."""

    uri: str | None = None
    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass

    def describe(self) -> str:
        return "tracking off (tracking: none)"


class MlflowTracker:
    """One MLflow run, talked to through `MlflowClient` (no global active-run state to leak)."""

    def __init__(self, experiment: str, run_name: str | None = None, uri: str | None = None,
                 resume_run_id: str | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri or default_tracking_uri()
        self._client = MlflowClient(tracking_uri=self.uri)
        exp = self._client.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if self.uri == default_tracking_uri() and "MLFLOW_TRACKING_URI" not in os.environ:
                location = (tracking_home() / "mlruns").resolve().as_uri()
            experiment_id = self._client.create_experiment(experiment, artifact_location=location)
        else:
            experiment_id = exp.experiment_id
        self.experiment_id = experiment_id
        self.run_id = self._reopen(resume_run_id) or self._client.create_run(experiment_id, run_name=run_name).info.run_id
        self._pending: list = []
        self._closed = False
        self._last_flush = time.monotonic()

    def _reopen(self, run_id: str | None) -> str | None:
        """A resumed training run continues its MLflow run (same store), so the curves stay whole."""
        if not run_id:
            return None
        from mlflow.exceptions import MlflowException

        try:
            run = self._client.get_run(run_id)
        except MlflowException:
            return None
        if run.info.experiment_id != self.experiment_id:
            return None
        self._client.update_run(run_id, status="RUNNING")
        return run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in redact_params(params).items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if len(self._pending) >= _FLUSH_EVERY_N or time.monotonic() - self._last_flush > _FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        for i in range(0, len(self._pending), 1000):
            self._client.log_batch(self.run_id, metrics=self._pending[i : i + 1000])
        self._pending = []
        self._last_flush = time.monotonic()

    def log_artifact(self, path: str | os.PathLike) -> None:
        self._client.log_artifact(self.run_id, str(path))

    def close(self, status: str = "FINISHED") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._client.set_terminated(self.run_id, status=status)

    def describe(self) -> str:
        return f"MLflow run {self.run_id} (experiment id {self.experiment_id}) at {redact(self.uri)}"


def make_tracker(recipe: "Recipe", rank: int = 0, resume_run_id: str | None = None, held: bool = False) -> Tracker:
    """The tracker a recipe asks for. Only rank 0 tracks. `resume_run_id` continues that MLflow run
    when it still exists in the store (a resumed training run). MLflow opens its run on a thread of its
    own at the first call (phitune.background_tracking): opening the store costs seconds. `held`: calls
    are queued and the run opens at `begin()` (training begins it after its first step)."""
    if rank != 0 or recipe.tracking.backend == "none":
        return NullTracker()
    from phitune.background_tracking import BackgroundTracker

    return BackgroundTracker(lambda: MlflowTracker(recipe.tracking.experiment, resume_run_id=resume_run_id,
                                                   run_name=recipe.tracking.run_name or recipe.name), held=held)


def default_tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri else f"sqlite:///{(tracking_home() / 'mlruns.db').resolve()}"


def tracking_home() -> Path:
    """The folder of the default store: where the user ran phitune. A local pipeline runs each step in
    its own working folder and passes the user's folder down in PHITUNE_TRACKING_HOME."""
    home = os.environ.get("PHITUNE_TRACKING_HOME")
    return Path(home) if home else Path.cwd()

