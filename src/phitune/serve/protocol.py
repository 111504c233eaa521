"""uvicorn's HTTP/1.1 protocol (h11), with the answers it gives on its own in OpenAI's JSON error shape.

uvicorn answers a request that never reaches the app in text/plain: a malformed request line or
Content-Length (`-1`, `abc`), or headers over h11's 16 KB limit. Here those are JSON (400, or 431 for
oversized headers). Two limits uvicorn lacks are added:
- a deadline for a request's headers (from the connection opening or the previous response ending):
  a client that trickles bytes gets a 408 and is closed; one that says nothing is closed;
- a cap on open connections: one over it gets a 503 and is closed at once.
"""

from __future__ import annotations

import sys

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from phitune.serve.errors import ApiError, raw_response


def protocol_class(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """The protocol uvicorn builds for each connection, with these limits."""
    return type("OpenAIErrorsH11Protocol", (OpenAIErrorsH11Protocol,),
                {"header_timeout": header_timeout, "max_connections": max_connections})


class OpenAIErrorsH11Protocol(H11Protocol):
    header_timeout = 10.0
    max_connections = 512
    linger = 1.0  # seconds to drain what a client still sends after an error answer, so it can read that answer
    _deadline = None
    _answered = False
    _heard = False  # bytes arrived since the deadline was armed

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._answer(ApiError(503, f"too many open connections (over {self.max_connections}); retry later",
                                  code="server_overloaded"))
            return
        self._arm_header_deadline()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._answered:  # after an error answer the rest is read and dropped until the close
            self._heard = True
            super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this from inside `except h11.RemoteProtocolError`, so the error is at hand.
        error = sys.exc_info()[1]
        detail = str(error) if isinstance(error, h11.RemoteProtocolError) else msg
        too_large = getattr(error, "error_status_hint", 400) == 431
        if too_large:
            self._answer(ApiError(431, "the request headers are too large (over 16 KB)", code="headers_too_large"))
            return
        self._answer(ApiError(400, f"malformed HTTP request: {detail}", code="bad_request"))

    def _arm_header_deadline(self) -> None:
        self._disarm()
        waiting_for = self.cycle  # a new request replaces the cycle: until then, this is the wait
        self._heard = False

        def expire() -> None:
            if self.cycle is not waiting_for or self.transport.is_closing():
                return
            if self._heard:
                self._answer(ApiError(408, f"no complete request within {self.header_timeout:g} s", code="timeout"))
            else:  # an idle connection: an answer nobody asked for would be read as the next request's
                self.transport.close()

        self._deadline = self.loop.call_later(self.header_timeout, expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _answer(self, error: ApiError) -> None:
        # Closing with unread bytes pending makes the kernel send a reset, which can destroy the answer
        # before the client reads it: half-close, drain, then close.
        self._disarm()
        self._answered = True
        self.transport.write(raw_response(error))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(self.linger, self.transport.close)
