"""A small OpenAI-compatible chat server over an ONNX export (stdlib http.server + onnxruntime-genai).

POST /v1/chat/completions (also /chat/completions, as Azure AI serverless endpoints accept) takes the
OpenAI request shape: model, messages, max_tokens (or max_completion_tokens), temperature, top_p, seed,
stop, stream. `stream: true` answers with server-sent events (`chat.completion.chunk`, then `[DONE]`).
`model` picks an adapter of a multi-LoRA export (`base` = no adapter); omitted, the export's own model.
GET /v1/models lists what can be asked for; GET /health answers {"status": "ok"}.

Generations run one at a time (a lock around the model): this is for one device, not a fleet.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from phitune.errors import PhituneError

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MAX_BODY = 1 << 20
ROLES = ("system", "user", "assistant")


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, chat_model, max_tokens_cap: int, quiet: bool):
        super().__init__(address, ChatHandler)
        self.chat_model = chat_model
        self.max_tokens_cap = max_tokens_cap
        self.quiet = quiet
        self.lock = threading.Lock()


def make_server(export_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, max_tokens_cap: int = 512,
                quiet: bool = False, threads: int | None = None) -> ChatServer:
    """Load the export and bind (port 0 = a free port); call `serve_forever()` to serve."""
    from phitune.export.runtime import OnnxChatModel

    return ChatServer((host, port), OnnxChatModel(export_dir, threads=threads), max_tokens_cap, quiet)


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer
    server_version = "phitune-serve"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            return self._json(200, {"status": "ok"})
        if path in ("/v1/models", "/models"):
            model = self.server.chat_model
            ids = [model.name, *(["base"] if model.adapters else []), *model.adapter_names]
            return self._json(200, {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "phitune"}
                                                               for i in dict.fromkeys(ids)]})
        self._error(BadRequest(f"no route GET {path}", status=404, code="not_found"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in CHAT_PATHS:
            return self._error(BadRequest(f"no route POST {path}", status=404, code="not_found"))
        try:
            request = parse_request(self._body(), self.server.max_tokens_cap)
            model = self.server.chat_model
            name = request["model"] or model.name
            with self.server.lock:
                generation = model.chat(request["messages"], request["max_tokens"], request["temperature"],
                                        request["top_p"], adapter=request["model"], seed=request["seed"])
                if request["stream"]:
                    self._stream(generation, name, request)
                else:
                    text, finish = _until_stop(generation, request["stop"])
                    self._json(200, completion_body(name, text, finish, generation))
        except BadRequest as exc:
            self._error(exc)
        except PhituneError as exc:
            status, code = (404, "model_not_found") if exc.problems and exc.problems[0].location == "adapter" else (400, None)
            self._error(BadRequest(str(exc), param="model" if status == 404 else "messages", status=status, code=code))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a runtime failure must not kill the server; no traceback to the client
            print(f"phitune serve: {type(exc).__name__}: {exc}", file=sys.stderr)
            error = BadRequest(f"generation failed: {type(exc).__name__}", status=500, code="server_error")
            if getattr(self, "_streaming", False):  # headers are out: end the event stream with the error
                body = {"error": {"message": str(error), "type": "server_error", "param": None, "code": error.code}}
                self.wfile.write(f"data: {json.dumps(body)}\n\ndata: [DONE]\n\n".encode())
            else:
                self._error(error)

    def _stream(self, generation, name: str, request: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self._streaming = True
        ident, created = _ident(), int(time.time())

        def send(delta: dict, finish: str | None, usage: dict | None = None) -> None:
            body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage is not None:
                body = {**body, "choices": [], "usage": usage}
            self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
            self.wfile.flush()

        send({"role": "assistant", "content": ""}, None)
        sent = ""
        text, finish = "", None
        for piece in generation:
            text += piece
            cut = _stop_index(text, request["stop"])
            if cut is not None:
                if text[:cut][len(sent):]:
                    send({"content": text[:cut][len(sent):]}, None)
                finish = "stop"
                break
            send({"content": piece}, None)
            sent = text
        send({}, finish or generation.finish_reason)
        if request["include_usage"]:
            send({}, None, usage=_usage(generation))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest(f"request body over {MAX_BODY} bytes", status=413)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, exc: BadRequest) -> None:
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        self._json(exc.status, {"error": {"message": str(exc), "type": kind, "param": exc.param, "code": exc.code}})

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def parse_request(body: dict, max_tokens_cap: int) -> dict:
    """Validate an OpenAI chat request; raise BadRequest naming the parameter."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}", f"messages[{i}].role")
        clean.append({"role": message["role"], "content": _text(message.get("content"), i)})
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 256))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= max_tokens_cap:
        raise BadRequest(f"max_tokens must be an integer in 1..{max_tokens_cap}", "max_tokens")
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise BadRequest("top_p must be greater than 0", "top_p")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported", "n")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadRequest("seed must be an integer", "seed")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise BadRequest("stop must be a string or up to 4 strings", "stop")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model must be a string", "model")
    options = body.get("stream_options") or {}
    return {"messages": clean, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
            "stop": stop, "stream": bool(body.get("stream", False)), "model": model or None,
            "include_usage": bool(isinstance(options, dict) and options.get("include_usage"))}


def completion_body(name: str, text: str, finish: str, generation) -> dict:
    return {
        "id": _ident(), "object": "chat.completion", "created": int(time.time()), "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                     "logprobs": None}],
        "usage": _usage(generation),
    }


def _until_stop(generation, stop: list[str]) -> tuple[str, str]:
    text = ""
    for piece in generation:
        text += piece
        cut = _stop_index(text, stop)
        if cut is not None:
            return text[:cut], "stop"
    return text, generation.finish_reason or "stop"


def _stop_index(text: str, stop: list[str]) -> int | None:
    hits = [text.find(s) for s in stop if s in text]
    return min(hits) if hits else None


def _usage(generation) -> dict:
    return {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
            "total_tokens": generation.prompt_tokens + generation.completion_tokens}


def _ident() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _text(content, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise BadRequest(f"messages[{i}].content must be a string or a list of text parts", f"messages[{i}].content")


def _number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number in {low:g}..{high:g}", key)
    return float(value)
