"""Serving an ONNX export: `phitune serve` (OpenAI-compatible chat completions over HTTP).

openai_http (the server: uvicorn on a socket bound here, `make_server`), app (the FastAPI routes), schema (the
request as pydantic models), worker (the one thread that runs generations, and its bounded queue), protocol
(uvicorn's HTTP/1.1 protocol with JSON error answers and a header deadline), errors (OpenAI's error shape).
"""
