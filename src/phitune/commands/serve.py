"""`phitune serve EXPORT_DIR --port P`: an OpenAI-compatible /v1/chat/completions on localhost."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve an ONNX export: OpenAI-compatible /v1/chat/completions")
    p.add_argument("export_dir", help="folder written by `phitune export RUN_DIR --onnx`")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0 picks a free one; default 8000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default 127.0.0.1; there is no authentication, so think before 0.0.0.0)")
    p.add_argument("--max-tokens", type=int, default=512, help="cap on max_tokens per request (default 512)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default one per core)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.commands.quiet import quiet_libraries

    quiet_libraries()
    from phitune.errors import ExportError, Problem

    if not 0 <= args.port <= 65535:
        raise ExportError("invalid port", [Problem("--port", f"{args.port} is not in 0..65535")])
    from phitune.serve.openai_http import make_server

    server = make_server(args.export_dir, host=args.host, port=args.port, max_tokens_cap=args.max_tokens,
                         threads=args.threads)
    host, port = server.server_address[:2]
    print(f"serving {server.chat_model.name} on http://{host}:{port}/v1/chat/completions (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
