"""The ASGI app of `phitune serve` (FastAPI): OpenAI's chat completions over an ONNX export.

Routes: POST /v1/chat/completions (also /chat/completions, as Azure AI serverless endpoints accept),
GET /v1/models and /v1/models/{id}, GET /health (never needs the key: for load balancers and probes).
Every error is OpenAI's JSON shape (phitune.serve.errors); request bodies are read here, with a size
cap and a deadline, and validated by phitune.serve.schema.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from phitune.serve.errors import ApiError
from phitune.serve.schema import parse_chat_request
from phitune.serve.worker import GenerationQueue, Job

log = logging.getLogger("phitune.serve")
MAX_BODY = 1 << 20  # bytes; a chat request is far smaller
MAX_HEADERS = 16 << 10  # bytes; h11 refuses a longer header block only when it arrives in several reads
JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class ServeSettings:
    max_tokens_cap: int = 512
    api_key: str | None = None
    timeout: float = 60.0  # seconds for a whole request: reading the body, queueing and generating
    max_waiting: int = 64  # requests queued behind the running one before 503 server_overloaded


def create_app(chat_model, settings: ServeSettings) -> FastAPI:
    queue = GenerationQueue(chat_model, max_waiting=settings.max_waiting, timeout=settings.timeout)
    app = FastAPI(title="phitune serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.queue = queue
    app.add_middleware(HeaderSizeLimit)
    _install_error_handlers(app)

    async def require_key(request: Request) -> None:  # async: a plain def would cost a thread hop per request
        if settings.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            raise ApiError(401, "missing or incorrect API key: send `Authorization: Bearer KEY` "
                                "(the key given to phitune serve --api-key)", code="invalid_api_key")

    api = APIRouter(dependencies=[Depends(require_key)])
    names = _model_names(chat_model)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @api.get("/v1/models")
    @api.get("/models", include_in_schema=False)
    async def models() -> dict:
        return {"object": "list", "data": [_model_card(n) for n in names]}

    @api.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict:
        _check_model(model_id, names)
        return _model_card(model_id)

    @api.post("/v1/chat/completions")
    @api.post("/chat/completions", include_in_schema=False)
    async def chat(request: Request):
        started = time.monotonic()
        raw = await _read_body(request, settings.timeout)
        body = parse_chat_request(raw)
        body.refuse_unsupported()
        if body.model is not None:
            _check_model(body.model, names)
        temperature, top_p = body.sampling()
        job = Job(body.chat_messages(), body.max_new_tokens(settings.max_tokens_cap), temperature, top_p,
                  body.seed, body.stop_strings(), body.model, stream=bool(body.stream), admitted=started)
        name = body.model or chat_model.name
        events = queue.run(job)
        # A full queue, a too-long prompt, ... get their own status before any byte.
        first = await _first_event_unless_client_leaves(request, events, queue, job)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_sse(first, events, name, include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        done = first[1]  # not streamed: the only event is the finished answer
        await events.aclose()
        # A JSONResponse as is: FastAPI's encoder would walk this plain dict again, on every request.
        return JSONResponse({"id": _ident(), "object": "chat.completion", "created": int(time.time()), "model": name,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                                          "finish_reason": done.finish_reason, "logprobs": None}],
                             "usage": done.usage})

    app.include_router(api)
    return app


class ClientLeft(Exception):
    pass


async def _first_event_unless_client_leaves(request: Request, events, queue: GenerationQueue, job: Job):
    """The first event of a generation; if the client disconnects before it (e.g. its own timeout while queued),
    its job is abandoned so the worker never spends time on an answer nobody reads."""
    event = asyncio.ensure_future(anext(events))
    left = asyncio.ensure_future(request.receive())  # the body is read: this returns when the client disconnects
    try:
        await asyncio.wait({event, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
    if event.done():
        return event.result()
    queue.abandon(job)
    event.cancel()
    raise ClientLeft()


async def _sse(first, events, name: str, include_usage: bool):
    ident, created = _ident(), int(time.time())

    def chunk(delta: dict, finish: str | None, usage: dict | None = None) -> bytes:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage is not None:
            body = {**body, "choices": [], "usage": usage}
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""}, None)
    kind, value = first
    try:
        while True:
            if kind == "piece":
                yield chunk({"content": value}, None)
            else:
                yield chunk({}, value.finish_reason)
                if include_usage:
                    yield chunk({}, None, value.usage)
                break
            kind, value = await anext(events)
    except ApiError as exc:  # the status line is out: end the stream with the error, as OpenAI does
        yield f"data: {json.dumps(exc.body())}\n\n".encode()
    finally:
        await events.aclose()
    yield b"data: [DONE]\n\n"


async def _read_body(request: Request, timeout: float) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise ApiError(415, f"Content-Type {media_type} is not supported: send the body as application/json "
                            "(curl: -H 'Content-Type: application/json')", code="unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > MAX_BODY:  # the HTTP layer already refused a non-number
        raise _too_large()
    async def read() -> bytes:
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > MAX_BODY:
                raise _too_large()
        return bytes(data)

    try:
        return await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:g} s", code="timeout") from None


def _too_large() -> ApiError:
    return ApiError(413, f"the request body is over {MAX_BODY} bytes", code="request_too_large")


class HeaderSizeLimit:
    """431 for a request whose target and headers together exceed MAX_HEADERS, however they arrived."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) + sum(
                len(k) + len(v) + 4 for k, v in scope["headers"])
            if size > MAX_HEADERS:
                error = ApiError(431, f"the request headers are too large (over {MAX_HEADERS >> 10} KB)",
                                 code="headers_too_large")
                await JSONResponse(error.body(), status_code=431, headers={"Connection": "close"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path} (see /v1/chat/completions, /v1/models)"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        error = ApiError(exc.status_code, message, code={404: "not_found", 405: "method_not_allowed"}.get(exc.status_code))
        return JSONResponse(error.body(), status_code=exc.status_code, headers=dict(exc.headers or {}))

    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = ApiError(400, f"invalid request: {exc.errors()[0].get('msg', '')}", code="invalid_value")
        return JSONResponse(error.body(), status_code=400)

    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected failure: %s: %s", type(exc).__name__, exc)
        error = ApiError(500, f"internal error: {type(exc).__name__}", code="server_error")
        return JSONResponse(error.body(), status_code=500)

    async def client_left(_: Request, exc: ClientLeft) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": only the access log sees it

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ClientLeft, client_left)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, server_error)


def _model_names(chat_model) -> list[str]:
    from phitune.export.runtime import BASE

    extra = [BASE, *chat_model.adapter_names] if chat_model.adapters else []
    return list(dict.fromkeys([chat_model.name, *extra]))


def _check_model(name: str, names: list[str]) -> None:
    if name not in names:
        raise ApiError(404, f"the model {name!r} does not exist here; this server has: {', '.join(names)}",
                       param="model", code="model_not_found")


def _model_card(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "phitune"}


def _ident() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"
