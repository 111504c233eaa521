"""Generation is CPU-bound and the model is one object: one worker thread owns it, requests queue in
arrival order, and the queue is bounded.

`GenerationQueue.run()` refuses (503, `server_overloaded`) when `max_waiting` requests already wait;
an admitted request that is not finished within `timeout` seconds (waiting included) is ended with a
503 `timeout`, and its generation stops at the next token. A client that goes away (a closed stream)
stops its generation the same way, and so does one that leaves while its request waits. The event loop never runs the model, so it keeps accepting,
answering errors and streaming while a generation runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from phitune.errors import PhituneError
from phitune.serve.errors import ApiError

log = logging.getLogger("phitune.serve")


@dataclass
class Job:
    messages: list[dict]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stops: list[str]
    adapter: str | None
    stream: bool = False  # send each piece as it comes; else only the finished text (one hand-off, not one per token)
    deadline: float = 0.0
    admitted: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Finished:
    text: str  # the whole answer, cut at a stop string
    finish_reason: str
    usage: dict


class StopCutter:
    """Text pieces in, text out, cut before the first stop string. Holds back the last len(stop) - 1
    characters, so a stop string split across two pieces is never half sent."""

    def __init__(self, stops: list[str]):
        self.stops, self.hold = stops, max((len(s) for s in stops), default=1) - 1
        self.text, self.sent, self.stopped = "", 0, False

    def feed(self, piece: str) -> str:
        self.text += piece
        hits = [self.text.find(s) for s in self.stops if s in self.text]
        end = min(hits) if hits else len(self.text) - self.hold
        self.stopped = bool(hits)
        out = self.text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return out

    def flush(self) -> str:
        out, self.sent = self.text[self.sent:], len(self.text)
        return out


class GenerationQueue:
    def __init__(self, model, *, max_waiting: int, timeout: float):
        self.model, self.max_waiting, self.timeout = model, max_waiting, timeout
        self.pending = 0  # admitted and not yet finished; touched only on the event loop
        self.abandoned = 0  # requests whose client left before their answer started
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phitune-generate")
        self._closing = threading.Event()

    async def run(self, job: Job) -> AsyncIterator[tuple[str, object]]:
        """Yields ("piece", text) ... (when job.stream) then ("end", Finished); raises ApiError on failure,
        the queue being full included (so it is known before a response starts)."""
        if self.pending > self.max_waiting:  # one running + max_waiting queued
            raise ApiError(503, f"the server is busy: {self.pending} requests ahead (phitune serve --queue "
                                f"{self.max_waiting}); retry later", code="server_overloaded")
        self.pending += 1
        job.deadline = job.admitted + self.timeout
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        future = loop.run_in_executor(self._executor, self._generate, job,
                                      lambda item: loop.call_soon_threadsafe(events.put_nowait, item))
        future.add_done_callback(lambda _: self._finished())
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(events.get(), max(0.0, job.deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    raise self._timeout(job) from None
                if kind == "error":
                    raise value
                yield kind, value
                if kind == "end":
                    return
        finally:
            job.cancelled.set()  # finished, failed, timed out or the client left: stop at the next token

    def abandon(self, job: Job) -> None:
        """The client left: the job is skipped if it still waits, or stops at its next token."""
        job.cancelled.set()
        self.abandoned += 1

    def close(self) -> None:
        self._closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _finished(self) -> None:
        self.pending -= 1

    def _timeout(self, job: Job) -> ApiError:
        waited = time.monotonic() - job.admitted
        return ApiError(503, f"the request did not finish within {self.timeout:g} s (phitune serve --timeout); "
                             f"{waited:.1f} s since it arrived", code="timeout")

    def _generate(self, job: Job, put: Callable[[tuple[str, object]], None]) -> None:
        """Runs on the worker thread."""
        if job.cancelled.is_set():  # the client left or the deadline passed while it waited
            return
        if self._closing.is_set():
            put(("error", ApiError(503, "the server is shutting down", code="shutting_down")))
            return
        try:
            generation = self.model.chat(job.messages, job.max_new_tokens, job.temperature, job.top_p,
                                         adapter=job.adapter, seed=job.seed)
            cutter = StopCutter(job.stops)
            for piece in generation:
                if job.cancelled.is_set():
                    return
                if self._closing.is_set():
                    put(("error", ApiError(503, "the server is shutting down", code="shutting_down")))
                    return
                text = cutter.feed(piece)
                if text and job.stream:
                    put(("piece", text))
                if cutter.stopped:
                    break
            else:
                text = cutter.flush()
                if text and job.stream:
                    put(("piece", text))
            finish = "stop" if cutter.stopped else generation.finish_reason or "length"
            usage = {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                     "total_tokens": generation.prompt_tokens + generation.completion_tokens}
            put(("end", Finished(cutter.text[:cutter.sent], finish, usage)))
        except PhituneError as exc:  # the runtime's own checks: prompt over the context length, unknown adapter
            location = exc.problems[0].location if exc.problems else None
            if location == "adapter":
                put(("error", ApiError(404, str(exc), param="model", code="model_not_found")))
            else:
                detail = "; ".join(p.message for p in exc.problems)
                put(("error", ApiError(400, f"{exc}: {detail}" if detail else str(exc), param="messages",
                                       code="context_length_exceeded" if "context length" in detail else None)))
        except Exception as exc:  # a runtime failure must not kill the worker; no traceback to the client
            log.exception("generation failed")
            put(("error", ApiError(500, f"generation failed: {type(exc).__name__}", code="server_error")))
