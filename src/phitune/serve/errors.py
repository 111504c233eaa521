"""Every failure of `phitune serve` in OpenAI's error shape:
`{"error": {"message", "type", "param", "code"}}`, so OpenAI clients raise their typed exceptions
(401 AuthenticationError, 404 NotFoundError, 400 BadRequestError, 422 UnprocessableEntityError, ...).

`raw_response` builds the same body as bytes for the few answers given below the ASGI app, by the
HTTP protocol itself (a malformed request line, oversized headers, a request that never arrives).
"""

from __future__ import annotations

import json
from http import HTTPStatus


class ApiError(Exception):
    """An HTTP error answer. `type` follows OpenAI: invalid_request_error for 4xx, server_error for 5xx."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.param, self.code, self.headers = status, param, code, headers or {}

    @property
    def type(self) -> str:
        return "invalid_request_error" if self.status < 500 else "server_error"

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


def raw_response(error: ApiError) -> bytes:
    """A complete HTTP/1.1 response (connection closed after it) for `error`, written straight to a socket."""
    data = json.dumps(error.body(), separators=(",", ":")).encode()
    phrase = HTTPStatus(error.status).phrase
    head = (f"HTTP/1.1 {error.status} {phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + data
