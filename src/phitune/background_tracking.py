"""A tracker that starts on a thread of its own, so training does not wait for it.

Opening an MLflow run costs seconds before anything is logged (importing mlflow, SQLAlchemy and
pandas, creating the store's tables), and each batch of metrics is a database write.
`BackgroundTracker` starts the real tracker on a worker thread when the first call arrives and passes
every call to it in order through a queue, so training goes on meanwhile, and a run that stops on
bad data before logging anything creates no tracked run. On a GPU the main thread mostly waits for
kernels (the before-training evaluation, the steps), so the worker's time is free. On the CPU the
two threads share the interpreter: measured on the 2-core demo, the first optimizer step comes no
sooner (7.2-7.5 s either way), and importing mlflow on the worker from the start of the run, while
the main thread imports torch and transformers, made it 0.7 s later, so the worker does not start early.

What must not be deferred is not: `run_id` and `describe()` wait for the start; `log_artifact`
waits until the file is copied (the run folder may be moved right after); `close` waits for every
queued call. A failure on the worker (an unreachable tracking server, a full disk) is raised in the
training thread at the next call, as the same exception, so a broken store still stops the run.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Mapping


class BackgroundTracker:
    """Wraps `start()` (which returns a `phitune.tracking.Tracker`) run on a worker thread."""

    def __init__(self, start: Callable[[], Any], *, held: bool = False):
        """held: queue calls without opening the run until `begin()` (or until something needs the
        run: `run_id`, `describe`, `log_artifact`, `close`)."""
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._go = threading.Event()
        if not held:
            self._go.set()
        self._started = threading.Event()
        self._tracker: Any = None
        self._error: BaseException | None = None
        self._closed = False
        self._used = False  # a call was made: the real tracker starts (or has started)
        self._thread = threading.Thread(target=self._work, args=(start,), name="phitune-tracking", daemon=True)
        self._thread.start()

    # --- the Tracker protocol -------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._send("log_params", dict(params))  # a copy: the caller may change its dict afterwards

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._send("log_metrics", dict(metrics), step)

    def log_artifact(self, path: str | os.PathLike) -> None:
        self._send("log_artifact", path)
        self._wait_for_queue()

    def begin(self) -> None:
        """Let a held tracker open its run now (on its thread; this returns at once)."""
        self._go.set()

    def close(self, status: str = "FINISHED") -> None:
        if self._closed:
            return
        self._closed = True
        self._go.set()
        if self._used:  # else no run was created and there is nothing to close
            self._calls.put(("close", (status,), None))
        self._calls.put(None)
        self._thread.join()
        self._raise_failure()

    # --- what needs the started tracker ---------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        return getattr(self._started_tracker(), "run_id", None)

    def describe(self) -> str:
        tracker = self._started_tracker()
        return tracker.describe() if hasattr(tracker, "describe") else type(tracker).__name__

    # --- the worker -----------------------------------------------------------------------------

    def _work(self, start: Callable[[], Any]) -> None:
        item = self._calls.get()
        if item is None:
            self._started.set()
            return  # closed before anything was tracked: no run was created
        self._go.wait()
        try:
            self._tracker = start()
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread
            self._error = exc
        finally:
            self._started.set()
        while item is not None:
            name, args, done = item
            if name is not None and self._error is None:  # name None: only a marker to wait for
                try:
                    getattr(self._tracker, name)(*args)
                except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                    self._error = exc
            if done is not None:
                done.set()
            item = self._calls.get()

    def _send(self, name: str, *args: Any) -> None:
        self._raise_failure()
        if self._closed:
            raise RuntimeError(f"{name} after the tracker was closed")
        self._used = True
        self._calls.put((name, args, None))

    def _wait_for_queue(self) -> None:
        self._go.set()
        done = threading.Event()
        self._calls.put((None, (), done))
        done.wait()
        self._raise_failure()

    def _started_tracker(self) -> Any:
        self._go.set()
        if not self._started.is_set() and not self._closed:
            self._used = True
            self._calls.put((None, (), None))  # starts the tracker if nothing has yet
        self._started.wait()
        self._raise_failure()
        return self._tracker

    def _raise_failure(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if not self._closed:  # nothing more reaches a tracker that failed: let the worker end
                self._closed = True
                self._calls.put(None)
            raise error
