"""`phitune serve`: OpenAI-compatible chat completions over real HTTP on 127.0.0.1; and
`phitune generate --onnx`, the other front-end of an ONNX export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from phitune.export.onnx_export import export_onnx
from phitune.export.runtime import OnnxChatModel

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Describe the sea."}]


@pytest.fixture(scope="module")
def export_dir(tiny_model_dir, tmp_path_factory) -> Path:
    out, _ = export_onnx(tiny_model_dir, "fp32", tmp_path_factory.mktemp("serve") / "tiny-onnx", progress=False)
    return out


@pytest.fixture(scope="module")
def base_url(export_dir):
    from phitune.serve.openai_http import make_server

    server = make_server(export_dir, port=0, quiet=True)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post(url: str, body: dict) -> tuple[int, dict | str]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if resp.headers["Content-Type"] == "application/json" else text
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_chat_completion_has_the_openai_shape_and_the_model_answer(base_url, export_dir):
    status, body = post(f"{base_url}/v1/chat/completions",
                        {"model": "tiny-phi3", "messages": MESSAGES, "max_tokens": 12, "temperature": 0})
    assert status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "tiny-phi3"
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    expected = OnnxChatModel(export_dir).chat(MESSAGES, 12).complete()
    assert choice["message"]["content"] == expected.text and expected.text
    usage = body["usage"]
    assert usage["prompt_tokens"] == expected.prompt_tokens and 1 <= usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_streaming_sends_chunks_that_add_up_to_the_same_answer(base_url):
    _, whole = post(f"{base_url}/chat/completions", {"messages": MESSAGES, "max_tokens": 12, "temperature": 0})
    status, text = post(f"{base_url}/v1/chat/completions",
                        {"messages": MESSAGES, "max_tokens": 12, "temperature": 0, "stream": True,
                         "stream_options": {"include_usage": True}})
    assert status == 200
    events = [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks) and len({c["id"] for c in chunks}) == 1
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == whole["usage"]


def test_sampling_is_seeded_and_stop_strings_cut_the_answer(base_url):
    body = {"messages": MESSAGES, "max_tokens": 16, "temperature": 0.9, "top_p": 0.95, "seed": 7}
    first, second = post(f"{base_url}/v1/chat/completions", body)[1], post(f"{base_url}/v1/chat/completions", body)[1]
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    _, greedy = post(f"{base_url}/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 16, "temperature": 0})
    full = greedy["choices"][0]["message"]["content"]
    stop = full[len(full) // 2:][:2]
    _, cut = post(f"{base_url}/v1/chat/completions",
                  {"messages": MESSAGES, "max_tokens": 16, "temperature": 0, "stop": stop})
    assert cut["choices"][0]["message"]["content"] == full[:full.index(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 5}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": MESSAGES, "max_tokens": 100000}, "max_tokens"),
    ({"messages": MESSAGES, "temperature": 3}, "temperature"),
])
def test_bad_requests_get_a_400_naming_the_parameter(base_url, body, param):
    status, answer = post(f"{base_url}/v1/chat/completions", body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == param


def test_models_health_and_unknown_routes(base_url):
    with urllib.request.urlopen(f"{base_url}/v1/models", timeout=10) as resp:
        assert [m["id"] for m in json.loads(resp.read())["data"]] == ["tiny-phi3"]
    with urllib.request.urlopen(f"{base_url}/health", timeout=10) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
    assert post(f"{base_url}/v1/completions", {"prompt": "hi"})[0] == 404


def test_cli_serve_answers_over_http_then_stops(export_dir):
    proc = subprocess.Popen([sys.executable, "-m", "phitune.cli", "serve", str(export_dir), "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, proc.stderr.read() if proc.poll() is not None else line
        url = line.split("on ", 1)[1].split()[0]
        status, body = post(url, {"messages": MESSAGES, "max_tokens": 4, "temperature": 0})
        assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0


def test_cli_generate_onnx_streams_the_same_reply(export_dir):
    result = run_cli("generate", str(export_dir), "--onnx", "--prompt", "Describe the sea.", "--system", "You are terse.",
                     "--max-new-tokens", "12")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = OnnxChatModel(export_dir).chat(MESSAGES, 12).complete().text
    expected = expected.replace("\r\n", "\n").replace("\r", "\n")  # run_cli reads text with universal newlines
    assert expected and result.stdout == expected + "\n"
    refused = run_cli("generate", str(export_dir), "--onnx", "--prompt", "hi", "--adapter", "other")
    assert refused.returncode == 2 and "this export has no adapters" in refused.stderr
