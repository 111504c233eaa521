"""Stopping a training run by signal. SIGTERM (what Azure ML sends before it preempts a low-priority
node, and what Kubernetes and `docker stop` send) is handled exactly like SIGINT (Ctrl-C): the run
stops at an optimizer-step boundary, writes a checkpoint, says how to resume, and exits with
130 after SIGINT or 143 after SIGTERM (128 + the signal number, as a shell reports it).

Inside the training loop a signal only sets a flag (`StopRequests`): the step in progress finishes,
then the loop writes the checkpoint and raises `KeyboardInterrupt` (`Terminated` for SIGTERM). A
second Ctrl-C stops at once, from the last completed step (the update and its bookkeeping are never
separated: `deferred`). Outside the loop (loading data, the model) a signal raises at once.
DeepSpeed ranks share their flags in the all-reduce each step already makes, so all ranks stop
after the same step and write the checkpoint together (a rank raising on its own would leave the
others waiting in a collective).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM during training: handled wherever Ctrl-C is (it is a KeyboardInterrupt)."""


def exit_code(stop: BaseException | None) -> int:
    return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 128 + signal.SIGINT


def signal_name(stop: BaseException | None) -> str:
    return "SIGTERM" if isinstance(stop, Terminated) else "SIGINT (Ctrl-C)"


def stop_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside: SIGTERM raises `Terminated` (SIGINT already raises KeyboardInterrupt)."""
    if not _main_thread():
        yield
        return

    def _raise(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the weights and the step counter change together; a signal that
    arrived meanwhile is raised on exit (main thread only: elsewhere signals are not delivered)."""
    if not _main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    except ValueError:  # not allowed here (e.g. an embedded interpreter)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if received:
            # re-deliver to whatever handles it outside (a StopRequests flag, or a raise)
            handler = signal.getsignal(max(received))
            if callable(handler):
                handler(max(received), None)
            else:
                raise stop_for(max(received))


class StopRequests:
    """While inside: SIGINT / SIGTERM are recorded, not raised; the training loop stops after the step
    in progress (a DeepSpeed rank: after the step all ranks agree on). With `second_raises`, a second
    signal raises at once (Ctrl-C pressed twice: stop now, from the last completed step)."""

    def __init__(self, second_raises: bool = False) -> None:
        self.signum = 0
        self.second_raises = second_raises
        self._previous: dict = {}

    def __enter__(self) -> "StopRequests":
        if _main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._record)
        return self

    def _record(self, signum, frame) -> None:
        again = self.signum != 0
        self.signum = max(self.signum, int(signum))
        if again and self.second_raises:
            raise stop_for(self.signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
