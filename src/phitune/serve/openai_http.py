"""`phitune serve`'s HTTP server: the FastAPI app (phitune.serve.app) on uvicorn, on a socket bound here.

Binding before serving means the port is known at once (port 0 = a free port) and connections queue
in a deep listen backlog from the first moment. `make_server(...).serve_forever()` blocks; from another
thread `shutdown()` stops it gracefully (running generations end, open streams are closed).

Limits (all answered in OpenAI's JSON error shape): request bodies 1 MB (413); headers 16 KB (431);
a request's headers must arrive within `header_timeout` s (408); idle keep-alive connections close
after `keep_alive` s; `max_connections` open connections (503 beyond); one generation at a time with
`max_waiting` queued behind it (503 `server_overloaded` beyond); a request must finish within
`timeout` s, queueing included (503 `timeout`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from pathlib import Path

from phitune.serve.app import ServeSettings, create_app

BACKLOG = 2048  # the old server's backlog of 5 overflowed at 50 clients


class ChatServer:
    def __init__(self, chat_model, settings: ServeSettings, host: str, port: int, *, keep_alive: float,
                 header_timeout: float, max_connections: int, quiet: bool):
        import uvicorn

        from phitune.serve.protocol import protocol_class

        self.chat_model, self.settings = chat_model, settings
        self.app = create_app(chat_model, settings)
        self.socket = _bind(host, port)
        self.server_address = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app, http=protocol_class(header_timeout, max_connections), loop="asyncio", lifespan="off",
            ws="none", backlog=BACKLOG, timeout_keep_alive=keep_alive, timeout_graceful_shutdown=5,
            log_level="info", access_log=not quiet, server_header=False, log_config=_log_config(),
            proxy_headers=False,  # no X-Forwarded-* trusted: the server is reached directly
        )
        # No start-up chatter; warnings (e.g. malformed requests) stay unless quiet.
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR if quiet else logging.WARNING)
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.app.state.queue.close()
            self._stopped.set()

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop serving (from another thread) and wait until serve_forever has returned."""
        self._server.should_exit = True
        self.app.state.queue.close()
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()


def _log_config() -> dict:
    """uvicorn's logging, with the access log on stderr like the rest: stdout carries only the "serving"
    line, and a reader that stops reading it must not stall the server on a full pipe."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def make_server(export_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, max_tokens_cap: int = 512,
                quiet: bool = False, threads: int | None = None, *, api_key: str | None = None,
                timeout: float = 60.0, max_waiting: int = 64, keep_alive: float = 5.0,
                header_timeout: float = 10.0, max_connections: int = 512) -> ChatServer:
    """Load the export and bind; call `serve_forever()` to serve."""
    from phitune.export.runtime import OnnxChatModel

    settings = ServeSettings(max_tokens_cap=max_tokens_cap, api_key=api_key or None, timeout=timeout,
                             max_waiting=max_waiting)
    return ChatServer(OnnxChatModel(export_dir, threads=threads), settings, host, port, keep_alive=keep_alive,
                      header_timeout=header_timeout, max_connections=max_connections, quiet=quiet)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: resolve it as the bind will
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
        except OSError:
            return False


def _bind(host: str, port: int) -> socket.socket:
    from phitune.errors import ExportError, Problem

    sock = None
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        # proto must be IPPROTO_TCP: asyncio turns Nagle off only on sockets that say so, and with Nagle on
        # every response waits ~40 ms for a delayed ACK (it is written in two parts).
        sock = socket.socket(info[0], socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets on Linux
        sock.bind(info[4])
        sock.listen(BACKLOG)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise ExportError(f"cannot listen on {host}:{port}", [Problem("--host/--port", exc.strerror or str(exc),
                          "pick another --port (0 = any free port) or stop what uses it")]) from None
    sock.set_inheritable(True)
    return sock
