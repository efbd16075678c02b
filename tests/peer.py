"""A tiny loopback HTTP server with canned answers, for what the sandbox cannot produce
(401/403 on data routes, 4xx with a body, redirect loops, echoes)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes]
Route = Answer | Callable[[str, str, dict[str, str], bytes], Answer]


class Peer:
    """A tiny HTTP/1.1 server on a free loopback port; `routes` maps (method, path) -> answer.

    An answer is (status, headers, body) or a function of (method, path, headers, body). GET of
    any path ending in /heartbeat answers 200 unless routed. Every request is kept in `seen`.
    """

    def __init__(self, routes: dict[tuple[str, str], Route] | None = None) -> None:
        self.routes: dict[tuple[str, str], Route] = dict(routes or {})
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                headers = dict(self.headers.items())
                peer.seen.append((self.command, path, headers, body))
                route = peer.routes.get((self.command, path))
                if route is None and self.command == "GET" and path.endswith("/heartbeat"):
                    route = (200, {"Content-Type": "application/json"}, b'{"version": "peer"}')
                if route is None:
                    route = (404, {"Content-Type": "application/json"}, b'{"detail":"Not Found"}')
                status, extra, content = route(self.command, path, headers, body) \
                    if callable(route) else route
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Peer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
