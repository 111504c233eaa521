"""`phitune serve`'s queue over real HTTP, with a stand-in model whose generation advances only when the test
says so: one generation at a time, a full queue answers 503 in OpenAI's shape, and a request whose client
leaves while it waits is never generated."""

from __future__ import annotations

import json
import socket
import threading
import time

from phitune.export.runtime import Generation
from phitune.serve.app import ServeSettings
from phitune.serve.openai_http import ChatServer

BODY = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()
REQUEST = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY


class GatedModel:
    name, adapters, adapter_names = "gated", None, []

    def __init__(self):
        self.gate = threading.Semaphore(0)
        self.chats = 0

    def chat(self, messages, max_new_tokens, temperature, top_p, adapter=None, seed=None) -> Generation:
        self.chats += 1
        result = Generation(iter(()), prompt_tokens=1)

        def pieces():
            for _ in range(max_new_tokens):
                self.gate.acquire()
                result.tokens.append(1)
                yield "ab"
            result.finish_reason = "length"

        result.pieces = pieces()
        return result


def until(condition, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
            data.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]):
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_one_generation_at_a_time_a_bounded_queue_and_abandoned_requests_skipped():
    model = GatedModel()
    server = ChatServer(model, ServeSettings(max_waiting=1, timeout=60), "127.0.0.1", 0, keep_alive=5,
                        header_timeout=10, max_connections=16, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    queue = server.app.state.queue
    address = server.server_address
    try:
        running, waiting, refused = (socket.create_connection(address, timeout=30) for _ in range(3))
        running.sendall(REQUEST)
        until(lambda: model.chats == 1, "the first generation to start")
        waiting.sendall(REQUEST)
        until(lambda: queue.pending == 2, "the second request to queue")
        refused.sendall(REQUEST)
        status, body = answer(refused)
        assert status == 503 and body["error"]["code"] == "server_overloaded" and body["error"]["type"] == "server_error"
        waiting.close()  # its client gives up while it waits
        until(lambda: queue.abandoned == 1, "the server to notice")
        model.gate.release(2)
        status, body = answer(running)
        assert status == 200 and body["choices"][0]["message"]["content"] == "abab"
        until(lambda: queue.pending == 0, "the queue to drain")
        assert model.chats == 1  # the abandoned request was never generated
        running.close()
        refused.close()
    finally:
        server.shutdown()
        server.server_close()


class FailsOnce(GatedModel):
    """Generation fails the first time (as a runtime error inside the model would), then works."""

    def chat(self, messages, max_new_tokens, temperature, top_p, adapter=None, seed=None) -> Generation:
        self.chats += 1
        if self.chats == 1:
            def broken():
                raise RuntimeError("CUDA error: an illegal memory access was encountered at /secret/path/kernel.cu")
                yield  # a generator: the failure happens while generating, not before
            return Generation(broken(), prompt_tokens=1)
        result = Generation(iter(["ok"]), prompt_tokens=1)
        result.finish_reason = "stop"
        return result


def test_a_failed_generation_is_a_500_in_openai_shape_and_the_server_keeps_serving():
    server = ChatServer(FailsOnce(), ServeSettings(max_waiting=4, timeout=60), "127.0.0.1", 0, keep_alive=5,
                        header_timeout=10, max_connections=16, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(server.server_address, timeout=30) as first:
            first.sendall(REQUEST)
            status, body = answer(first)
        assert status == 500
        assert body["error"]["type"] == "server_error" and body["error"]["code"] == "server_error"
        assert body["error"]["message"] == "generation failed: RuntimeError"  # no detail, path or traceback leaks
        with socket.create_connection(server.server_address, timeout=30) as second:
            second.sendall(REQUEST)
            status, body = answer(second)
        assert status == 200 and body["choices"][0]["message"]["content"] == "ok"
    finally:
        server.shutdown()
        server.server_close()
