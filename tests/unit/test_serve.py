"""`phitune serve` without a model: request checks, the listening socket, and the generation queue
(with a stand-in model whose generation yields pieces only when the test releases them, so queueing,
overload and timeouts are exact)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from phitune.export.runtime import Generation
from phitune.serve.errors import ApiError
from phitune.serve.schema import parse_chat_request
from phitune.serve.worker import Finished, GenerationQueue, Job, StopCutter

HI = b'{"messages": [{"role": "user", "content": "hi"}]'


class GatedModel:
    """chat() returns a generation that yields one piece per `release()`."""

    def __init__(self):
        self.gate = threading.Semaphore(0)
        self.started = threading.Event()
        self.pieces_made = 0

    def chat(self, messages, max_new_tokens, temperature, top_p, adapter=None, seed=None) -> Generation:
        result = Generation(iter(()), prompt_tokens=3)

        def pieces():
            self.started.set()
            for _ in range(max_new_tokens):
                self.gate.acquire()
                self.pieces_made += 1
                result.tokens.append(1)
                yield "ab"
            result.finish_reason = "length"

        result.pieces = pieces()
        return result

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.release()


def job(tokens: int = 2, stream: bool = True) -> Job:
    return Job([{"role": "user", "content": "hi"}], tokens, 1.0, 1.0, None, [], None, stream=stream)


async def collect(events) -> list:
    return [event async for event in events]


def test_a_full_queue_answers_503_and_queued_requests_run_in_order():
    async def scenario():
        model = GatedModel()
        queue = GenerationQueue(model, max_waiting=1, timeout=30)
        first, second = queue.run(job()), queue.run(job(stream=False))
        first_task = asyncio.ensure_future(collect(first))
        second_task = asyncio.ensure_future(collect(second))
        await asyncio.sleep(0)  # both admitted: one running, one waiting
        assert queue.pending == 2
        with pytest.raises(ApiError) as refused:
            await anext(queue.run(job()))
        model.release(4)
        results = await asyncio.gather(first_task, second_task)
        queue.close()
        return refused.value, results, queue.pending

    refused, results, pending = asyncio.run(scenario())
    assert refused.status == 503 and refused.code == "server_overloaded" and refused.body()["error"]["type"] == "server_error"
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    done = ("end", Finished("abab", "length", usage))
    assert results == [[("piece", "ab"), ("piece", "ab"), done], [done]]  # not streamed: only the finished answer
    assert pending == 0


def test_a_request_past_its_timeout_gets_503_and_its_generation_stops():
    async def scenario():
        model = GatedModel()
        queue = GenerationQueue(model, max_waiting=4, timeout=0.3)
        with pytest.raises(ApiError) as late:
            await collect(queue.run(job(tokens=50)))
        model.release(50)  # the worker sees the request is gone and makes at most one more piece
        await asyncio.sleep(0.2)
        queue.close()
        return late.value, model.pieces_made

    late, made = asyncio.run(scenario())
    assert late.status == 503 and late.code == "timeout" and "phitune serve --timeout" in str(late)
    assert made <= 1


def test_stop_strings_cut_even_when_split_across_pieces():
    cutter = StopCutter(["END"])
    sent = [cutter.feed(p) for p in ["hello E", "N", "D more"]]
    assert "".join(sent) == "hello " and cutter.stopped and all("E" not in s for s in sent)
    plain = StopCutter([])
    assert plain.feed("ab") + plain.feed("c") + plain.flush() == "abc"


@pytest.mark.parametrize("raw, status, param, code", [
    (b"not json", 400, None, "invalid_json"),
    (b"[1, 2]", 400, None, "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, 400, None, "invalid_json"),  # nesting past the parser's limit: not a crash
    (b'{"messages": []}', 400, "messages", "invalid_value"),
    (b'{"messages": [{"role": "robot", "content": "hi"}]}', 400, "messages[0].role", "invalid_value"),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', 400, "messages[0].content", "invalid_value"),
    (HI + b', "max_tokens": true}', 400, "max_tokens", "invalid_value"),  # a boolean is not a number
    (HI + b', "max_tokens": "12"}', 400, "max_tokens", "invalid_value"),
    (HI + b', "temperature": 2.5}', 400, "temperature", "invalid_value"),
    (HI + b', "top_p": 0}', 400, "top_p", "invalid_value"),
])
def test_invalid_requests_are_400_naming_the_parameter(raw, status, param, code):
    with pytest.raises(ApiError) as err:
        parse_chat_request(raw)
    assert (err.value.status, err.value.param, err.value.code) == (status, param, code)


@pytest.mark.parametrize("extra, param", [
    (b', "n": 2', "n"), (b', "tools": [{"type": "function"}]', "tools"), (b', "logprobs": true', "logprobs"),
    (b', "response_format": {"type": "json_object"}', "response_format"), (b', "presence_penalty": 0.5', "presence_penalty"),
])
def test_openai_features_this_server_lacks_are_422_not_ignored(extra, param):
    request = parse_chat_request(HI + extra + b"}")
    with pytest.raises(ApiError) as err:
        request.refuse_unsupported()
    assert (err.value.status, err.value.param, err.value.code) == (422, param, "unsupported_parameter")


def test_defaults_follow_openai_and_the_server_cap():
    request = parse_chat_request(HI + b', "n": 1, "logprobs": false, "stop": "x", "metadata": {"a": [[1]]}}')
    request.refuse_unsupported()  # OpenAI's defaults, sent explicitly by some clients, are fine
    assert request.sampling() == (1.0, 1.0) and request.stop_strings() == ["x"]
    assert request.max_new_tokens(cap=512) == 256 and request.max_new_tokens(cap=100) == 100
    with pytest.raises(ApiError) as err:
        parse_chat_request(HI + b', "max_tokens": 600}').max_new_tokens(cap=512)
    assert err.value.param == "max_tokens" and "--max-tokens" in str(err.value)
    developer = parse_chat_request(b'{"messages": [{"role": "developer", "content": [{"type": "text", "text": "be terse"}]}]}')
    assert developer.chat_messages() == [{"role": "system", "content": "be terse"}]


def test_accepted_connections_have_nagle_off():
    """With Nagle on, each response (written in two parts) waited ~40 ms for a delayed ACK: 17 req/s instead of ~60."""
    import socket

    from phitune.serve.openai_http import _bind

    listener = _bind("127.0.0.1", 0)
    try:
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert accepted.proto == socket.IPPROTO_TCP  # what asyncio checks before setting TCP_NODELAY itself
    finally:
        listener.close()
