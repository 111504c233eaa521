"""`phitune serve` over real HTTP on 127.0.0.1: the official `openai` client (answers, streaming, errors
as its exception types), malformed requests on a raw socket (always OpenAI's JSON error shape), the
CLI; and `phitune generate --onnx`, the other front-end of an ONNX export."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from conftest import REPO, run_cli
from phitune.export.onnx_export import export_onnx
from phitune.export.runtime import OnnxChatModel

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Describe the sea."}]
KEY = "sk-test-key"


@pytest.fixture(scope="module")
def export_dir(tiny_model_dir, tmp_path_factory) -> Path:
    out, _ = export_onnx(tiny_model_dir, "fp32", tmp_path_factory.mktemp("serve") / "tiny-onnx", progress=False)
    return out


@contextlib.contextmanager
def running(export_dir, **options):
    from phitune.serve.openai_http import make_server

    server = make_server(export_dir, port=0, quiet=True, **options)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def base_url(export_dir):
    with running(export_dir, header_timeout=1.5) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=60)


def post(url: str, body: dict) -> tuple[int, dict | str]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if resp.headers["Content-Type"] == "application/json" else text
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_openai_client_gets_the_model_answer(client, export_dir):
    answer = client.chat.completions.create(model="tiny-phi3", messages=MESSAGES, max_tokens=12, temperature=0)
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-") and answer.model == "tiny-phi3"
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    expected = OnnxChatModel(export_dir).chat(MESSAGES, 12).complete()
    assert choice.message.content == expected.text and expected.text
    assert answer.usage.prompt_tokens == expected.prompt_tokens and 1 <= answer.usage.completion_tokens <= 12
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_openai_client_streams_chunks_that_add_up_to_the_same_answer(client):
    whole = client.chat.completions.create(model="tiny-phi3", messages=MESSAGES, max_tokens=12, temperature=0)
    chunks = list(client.chat.completions.create(model="tiny-phi3", messages=MESSAGES, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].usage == whole.usage


def test_openai_client_lists_models_and_unknown_names_are_not_found(client):
    assert [m.id for m in client.models.list()] == ["tiny-phi3"]
    assert client.models.retrieve("tiny-phi3").id == "tiny-phi3"
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4)
    assert err.value.code == "model_not_found" and err.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_openai_client_raises_bad_request_and_unprocessable(client):
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="tiny-phi3", messages=MESSAGES, temperature=3)
    assert bad.value.body["param"] == "temperature" and bad.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model="tiny-phi3", messages=MESSAGES, max_tokens=100_000)
    assert too_many.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as too_long:  # the tiny model's context is 4096 tokens
        client.chat.completions.create(model="tiny-phi3", messages=[{"role": "user", "content": "sea " * 5000}], max_tokens=4)
    assert too_long.value.code == "context_length_exceeded" and too_long.value.body["param"] == "messages"
    with pytest.raises(openai.UnprocessableEntityError) as unsupported:
        client.chat.completions.create(model="tiny-phi3", messages=MESSAGES, n=2)
    assert unsupported.value.code == "unsupported_parameter" and unsupported.value.body["param"] == "n"


def test_api_key_is_required_as_a_bearer_token(export_dir):
    with running(export_dir, api_key=KEY) as url:
        with pytest.raises(openai.AuthenticationError) as err:
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
        status, body = post(f"{url}/v1/chat/completions", {"messages": MESSAGES})  # no Authorization header
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        keyed = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        answer = keyed.chat.completions.create(model="tiny-phi3", messages=MESSAGES, max_tokens=4, temperature=0)
        assert answer.choices[0].message.role == "assistant"
        with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:  # probes need no key
            assert json.loads(resp.read()) == {"status": "ok"}


def test_sampling_is_seeded_and_stop_strings_cut_the_answer(base_url):
    body = {"messages": MESSAGES, "max_tokens": 16, "temperature": 0.9, "top_p": 0.95, "seed": 7}
    first, second = post(f"{base_url}/v1/chat/completions", body)[1], post(f"{base_url}/v1/chat/completions", body)[1]
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    _, greedy = post(f"{base_url}/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 16, "temperature": 0})
    full = greedy["choices"][0]["message"]["content"]
    stop = full[len(full) // 2:][:2]
    _, cut = post(f"{base_url}/chat/completions", {"messages": MESSAGES, "max_tokens": 16, "temperature": 0, "stop": stop})
    assert cut["choices"][0]["message"]["content"] == full[:full.index(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"


def test_serve_samples_by_default_as_openai_does(base_url):
    """The documented difference from `phitune generate`: no temperature = 1 (sampled), not greedy."""
    ask = lambda **extra: post(f"{base_url}/v1/chat/completions",  # noqa: E731
                               {"messages": MESSAGES, "max_tokens": 12, "seed": 11, **extra})[1]["choices"][0]["message"]
    default = ask()
    assert default == ask(temperature=1) and default != ask(temperature=0)


def raw_exchange(base_url: str, data: bytes, wait: float = 30) -> tuple[int | None, dict | None, bytes]:
    """Send bytes, read until the server closes: (status, JSON body, raw answer)."""
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer:
        return None, None, answer
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), answer


def request(method: str, path: str, headers: str = "", body: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode() + body


@pytest.mark.parametrize("data, status", [
    (request("POST", "/v1/chat/completions", "Content-Length: -1\r\n"), 400),
    (request("POST", "/v1/chat/completions", "Content-Length: abc\r\n"), 400),
    (b"HELLO THERE\r\n\r\n", 400),
    (request("GET", "/v1/models", "X-Big: " + "a" * 200_000 + "\r\n"), 431),
    (request("GET", "/v1/models", "X-Big: " + "a" * 17_000 + "\r\n"), 431),
    (request("DELETE", "/v1/chat/completions"), 405),
    (request("GET", "/v1/chat/completions"), 405),
    (request("POST", "/v1/completions", "Content-Type: application/json\r\nContent-Length: 2\r\n", b"{}"), 404),
    (request("POST", "/v1/chat/completions", "Content-Type: text/plain\r\nContent-Length: 2\r\n", b"hi"), 415),
    (request("POST", "/v1/chat/completions", "Content-Type: application/json\r\nContent-Length: 2\r\n", b"hi"), 400),
    (request("POST", "/v1/chat/completions", "Content-Type: application/json\r\nContent-Length: 9000000\r\n"), 413),
    (request("POST", "/v1/chat/completions", "Content-Type: application/json\r\nContent-Length: 200000\r\n",
             b"[" * 100_000 + b"]" * 100_000), 400),
])
def test_malformed_requests_get_openai_json_errors(base_url, data, status):
    got, body, answer = raw_exchange(base_url, data)
    assert got == status, answer[:300]
    assert b"content-type: application/json" in answer.lower()
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"


def test_a_trickling_request_times_out_and_an_idle_connection_is_closed(base_url):
    got, body, _ = raw_exchange(base_url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # headers never end
    assert got == 408 and body["error"]["code"] == "timeout"
    assert raw_exchange(base_url, b"") == (None, None, b"")  # said nothing: closed without an answer


def test_cli_serve_warns_when_exposed_without_a_key_and_stops_on_ctrl_c(export_dir):
    proc = subprocess.Popen([sys.executable, "-m", "phitune.cli", "serve", str(export_dir), "--host", "0.0.0.0",
                             "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PHITUNE_API_KEY"})
    try:
        line = proc.stdout.readline()
        assert "http://0.0.0.0:" in line, proc.stderr.read() if proc.poll() is not None else line
        port = int(line.split("0.0.0.0:", 1)[1].split("/", 1)[0])
        status, body = post(f"http://127.0.0.1:{port}/v1/chat/completions",
                            {"messages": MESSAGES, "max_tokens": 4, "temperature": 0})
        assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr[-2000:]
    assert "WARNING: listening on 0.0.0.0 with NO API KEY" in stderr and "PHITUNE_API_KEY" in stderr
    # The access log goes to stderr: stdout is the "serving" line only, so a caller that reads just that line
    # cannot stall the server on a full pipe (which hung it after ~900 requests).
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in stderr and proc.stdout.read() == ""


def test_cli_generate_onnx_streams_the_same_reply(export_dir):
    result = run_cli("generate", str(export_dir), "--onnx", "--prompt", "Describe the sea.", "--system", "You are terse.",
                     "--max-new-tokens", "12")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = OnnxChatModel(export_dir).chat(MESSAGES, 12).complete().text
    expected = expected.replace("\r\n", "\n").replace("\r", "\n")  # run_cli reads text with universal newlines
    assert expected and result.stdout == expected + "\n"
    sampled = [run_cli("generate", str(export_dir), "--onnx", "--prompt", "Describe the sea.", "--system", "You are terse.",
                       "--max-new-tokens", "12", "--temperature", "1", "--seed", "5").stdout for _ in range(2)]
    assert sampled[0] == sampled[1] != result.stdout  # --temperature samples, --seed repeats
    refused = run_cli("generate", str(export_dir), "--onnx", "--prompt", "hi", "--adapter", "other")
    assert refused.returncode == 2 and "this export has no adapters" in refused.stderr
