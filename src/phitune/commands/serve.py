"""`phitune serve EXPORT_DIR --port P`: an OpenAI-compatible /v1/chat/completions (FastAPI on uvicorn)."""

from __future__ import annotations

import os

API_KEY_ENV = "PHITUNE_API_KEY"


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve an ONNX export: OpenAI-compatible /v1/chat/completions")
    p.add_argument("export_dir", help="folder written by `phitune export RUN_DIR --onnx`")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0 picks a free one; default 8000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default 127.0.0.1; anything beyond loopback wants --api-key)")
    p.add_argument("--api-key", default=None,
                   help=f"require this key on /v1/* in an `Authorization: Bearer` header (how OpenAI clients send "
                        f"their api_key); default: ${API_KEY_ENV}, else no key")
    p.add_argument("--max-tokens", type=int, default=512, help="cap on max_tokens per request (default 512)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a request may take, queueing included (default 60; then 503 timeout)")
    p.add_argument("--queue", type=int, default=64,
                   help="requests that may wait behind the running generation (default 64; then 503)")
    p.add_argument("--keep-alive", type=float, default=5.0, help="seconds an idle connection stays open (default 5)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default one per core)")
    p.set_defaults(handler=run)


def run(args) -> int:
    import sys

    from phitune.errors import ExportError, Problem

    problems = []
    if not 0 <= args.port <= 65535:
        problems.append(Problem("--port", f"{args.port} is not in 0..65535"))
    for flag, value, low in (("--max-tokens", args.max_tokens, 1), ("--timeout", args.timeout, 0.001),
                             ("--queue", args.queue, 0), ("--keep-alive", args.keep_alive, 0.001)):
        if value < low:
            problems.append(Problem(flag, f"{value:g} is below {low:g}"))
    if problems:
        raise ExportError("invalid option", problems)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    from phitune.serve.openai_http import is_loopback, make_server

    server = make_server(args.export_dir, host=args.host, port=args.port, max_tokens_cap=args.max_tokens,
                         threads=args.threads, api_key=api_key, timeout=args.timeout, max_waiting=args.queue,
                         keep_alive=args.keep_alive)
    host, port = server.server_address[:2]
    if api_key is None and not is_loopback(args.host):
        print(f"WARNING: listening on {args.host} with NO API KEY: anyone who can reach port {port} can use this "
              f"model.\nWARNING: set {API_KEY_ENV} (or --api-key) to require a key (`Authorization: Bearer` header).",
              file=sys.stderr, flush=True)
    shown = f"[{host}]" if ":" in host else host
    auth = " (API key required)" if api_key else ""
    print(f"serving {server.chat_model.name} on http://{shown}:{port}/v1/chat/completions{auth} (Ctrl-C to stop)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
