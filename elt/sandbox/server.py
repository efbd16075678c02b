"""The sandbox receiver: FlowKit (REST), UOIS (GraphQL) and a plain CRUD API (crud.py) on one
local port, with faults.

Plain `http.server` on real sockets, not an ASGI app: the publisher is tested against what
it meets in production (keep-alive, 303s, connection resets, slow answers), and a reset
needs raw control of the socket (SO_LINGER 0, then close). Faults are off by default and
never touch the /_sandbox/* control routes. What each service answers, and which real
behaviour each rule imitates: flowkit*.py, dataset.py, uois*.py; the faults: faults.py.

gzip (FlowKit, measured): `Content-Encoding: gzip` on a body that is not gzip, or a gzip
body without that header, answers 400 `{"detail":"There was an error parsing the body"}`.
The UOIS services never decode gzip (uois.py answers such a body with the same 400).

Control routes (never faulted, not counted):
  GET  /_sandbox/stats   {"since", "requests", "by_status": {"201": n, "reset": n},
                          "faults": {"500": n, ...}, "races": n, "ambiguous": n,
                          "ambiguous_keys": [key, ...], "in_flight": requests being
                          processed (a gateway fault's write goes on after its 504),
                          "flowkit": {"cat|ind|srid|trid|dt": {received, accepted, rejected,
                                      duplicates, inserted, patched, deleted, races,
                                      ambiguous}},
                          "uois": {entity id: {received, accepted, rejected, duplicates,
                                   inserted, races}}}
  POST /_sandbox/reset   clear the counters (204)
  GET  /_sandbox/faults  current settings (+ outage_remaining seconds)
  POST /_sandbox/faults  replace the settings (JSON object of Faults fields; 400 if invalid)
Per request: `X-Sandbox-Fault: 500|429|503|reset|reset_after|slow|slow_commit` and
`X-Sandbox-Delay: <seconds>` (a /v1/data write stays "in flight" that long).
"""

from __future__ import annotations

import gzip
import math
import random
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import elt.sandbox.crud as crud
import elt.sandbox.flowkit as flowkit
import elt.sandbox.uois as uois
from elt.sandbox.crud import Crud
from elt.sandbox.faults import Faults, Stats
from elt.sandbox.flowkit import FlowKit
from elt.sandbox.store import Store
from elt.sandbox.uois import Uois
from elt.sandbox.wire import Request, Response, internal_error, json_response, parse_json

ADMIN_CLIENT, UPDATER_CLIENT = list(flowkit.CLIENTS)
HEADER_FAULTS = ("500", "429", "503", "reset", "reset_after", "slow", "slow_commit", "gateway")
PARSE_ERROR = {"detail": "There was an error parsing the body"}
AUTH_ROUTES = ("/oauth/token", "/oauth/login3")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # a publisher opens many connections at once
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are no news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, lets the Sandbox answer it, writes the answer (or resets)."""

    protocol_version = "HTTP/1.1"
    server_version = "elt-sandbox"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle + delayed ACK add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, False)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_GET

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(json_response(400, {"detail": "bad request framing"}))
            return
        url = urlsplit(self.path)
        req = Request(self.command, url.path, dict(parse_qsl(url.query)), self.headers, body or b"")
        response = self.server.sandbox.dispatch(req)
        self._send(response)

    def _send(self, resp: Response) -> None:
        if resp.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # drop the makefile reference so close() really closes: RST
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        if self.command != "HEAD":  # headers and body in one write: one segment for small answers
            self._headers_buffer.append(b"\r\n" + resp.body)
            self.flush_headers()
        else:
            self.end_headers()


class Sandbox:
    """A local FlowKit + UOIS receiver on a background thread; the default publish target."""

    def __init__(self, store_path: Path | None = None, host: str = "127.0.0.1", port: int = 0,
                 *, null_sink: bool = False, fresh: bool = False,
                 strict_tokens: bool = False) -> None:
        self.store_path = store_path
        self.strict_tokens = strict_tokens  # FlowKit: also check expiry and audience
        self.host, self.port = host, port
        self.null_sink = null_sink
        self.fresh = fresh  # applies at the first start only
        self.stats = Stats()
        self.faults = Faults()
        self._rng = random.Random()
        self._outage_until = 0.0
        self._fault_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._busy = 0
        self._conns_lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.store: Store | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Open the store and serve on a daemon thread; port 0 picks a free port."""
        if self._server is not None:
            return self
        self.store = Store(self.store_path, fresh=self.fresh)
        self.fresh = False
        self.flowkit = FlowKit(self.store, self.stats.count, null_sink=self.null_sink,
                               strict_tokens=self.strict_tokens)
        self.uois = Uois(self.store, self.stats.count, null_sink=self.null_sink)
        self.crud = Crud(self.store, self.stats.count)
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.05}, name=f"elt-sandbox:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running requests finish, drop idle keep-alives, close the store."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._conns_lock:
            self._conns_lock.wait_for(lambda: self._busy == 0, timeout=timeout)
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox is not running: call start() first")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def endpoint_config(self, name: str) -> dict[str, Any]:
        """The endpoint mapping the publisher uses for `flowkit`, `flowkit_admin`, `uois` or
        `crud`."""
        url = self.url
        if name in ("flowkit", "flowkit_admin"):
            return {"url": f"{url}/v1", "heartbeat": "/heartbeat", "auth": {
                "type": "oauth2_client_credentials", "token_url": f"{url}/oauth/token",
                "client_id": ADMIN_CLIENT if name == "flowkit_admin" else UPDATER_CLIENT,
                "client_secret": flowkit.SECRET, "audience": flowkit.AUDIENCE}}
        if name == "uois":
            return {"url": url, "graphql_path": "/api/gql", "heartbeat": None, "auth": {
                "type": "login3", "login_url": f"{url}/oauth/login3",
                "username": uois.USERNAME, "password": uois.PASSWORD}}
        if name == "crud":
            return {"url": f"{url}/crud", "heartbeat": None,
                    "headers": {crud.API_KEY_HEADER: crud.API_KEY}}
        raise ValueError(f"unknown sandbox endpoint {name!r}: use flowkit, flowkit_admin, uois "
                         "or crud")

    # -- faults and stats -------------------------------------------------------------------
    def set_faults(self, **settings: Any) -> Faults:
        """Replace all fault settings (unnamed ones go back to off); ValueError on bad input."""
        faults = Faults.parse(settings)
        with self._fault_lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._outage_until = time.monotonic() + faults.outage_seconds
        return faults

    def _pick_fault(self, req: Request) -> str | None:
        header = req.header("X-Sandbox-Fault")
        if header:
            return header.strip().lower()
        if req.path in AUTH_ROUTES and not self.faults.faults_on_auth:
            return None
        with self._fault_lock:
            if time.monotonic() < self._outage_until:
                return "503"
            if req.path == "/v1/heartbeat":  # a health check, not a data route: outages only
                return None
            f = self.faults
            draw, edge = self._rng.random(), 0.0
            for kind, rate in (("reset", f.reset_rate), ("reset_after", f.reset_after_rate),
                               ("500", f.error_rate), ("429", f.throttle_rate),
                               ("slow", f.slow_rate), ("slow_commit", f.slow_commit_rate),
                               ("gateway", f.gateway_rate)):
                edge += rate
                if draw < edge:
                    return kind
        return None

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        """Answer one request: control routes, faults, gzip, then the emulated service."""
        if req.path.startswith("/_sandbox/"):
            return self._control(req)
        self._busy_by(1)
        try:
            response = self._dispatch(req)
        except Exception:
            traceback.print_exc()
            response = internal_error()
        finally:
            self._busy_by(-1)
        self.stats.bump("status", "reset" if response.reset else str(response.status))
        return response

    def _dispatch(self, req: Request) -> Response:
        self.stats.bump("requests", "")
        fault = self._pick_fault(req)
        if fault is not None:
            if fault not in HEADER_FAULTS:
                return json_response(400, {"detail": f"X-Sandbox-Fault: unknown fault {fault!r}"})
            self.stats.bump("faults", fault)
            if fault == "503":
                return Response(503, b"Service Unavailable", "text/plain; charset=utf-8")
            if fault == "reset":
                return Response(0, reset=True)
            if fault == "500":
                return internal_error()
            if fault == "429":
                return json_response(429, "Too Many Requests",
                                     {"Retry-After": str(math.ceil(self.faults.retry_after))})
            if fault == "slow":
                req.delay += self.faults.slow_seconds
            if fault == "slow_commit":
                req.delay += self.faults.slow_commit_seconds
                req.commit_late = True
            if fault == "gateway":
                req.delay += self.faults.gateway_seconds
                self._busy_by(1)  # until processed: stop() waits for it
                threading.Thread(target=self._behind_gateway, args=(req,), daemon=True).start()
                return Response(504, b"Gateway Timeout", "text/plain; charset=utf-8")
        return self._serve(req, fault)

    def _behind_gateway(self, req: Request) -> None:
        """The request a gateway answered 504 for goes on: held in flight, then processed."""
        try:
            self._serve(req, None)
        except Exception:
            traceback.print_exc()
        finally:
            self._busy_by(-1)

    def _busy_by(self, n: int) -> None:
        """Count requests being processed (stop() waits for none; stats show them)."""
        with self._conns_lock:
            self._busy += n
            self._conns_lock.notify_all()

    def _serve(self, req: Request, fault: str | None) -> Response:
        try:
            req.delay += min(max(float(req.header("X-Sandbox-Delay") or 0), 0.0), 60.0)
        except ValueError:
            return json_response(400, {"detail": "X-Sandbox-Delay must be a number of seconds"})
        req.gzipped = "gzip" in (req.header("Content-Encoding") or "").lower()
        if req.path.startswith(("/v1/", "/crud/")) and (req.gzipped
                                                        or req.body[:2] == b"\x1f\x8b"):
            try:  # a gzip header on a plain body, or a gzip body without the header: 400
                if not req.gzipped:
                    raise OSError("gzip body without Content-Encoding: gzip")
                req.body = gzip.decompress(req.body)
            except (OSError, EOFError, zlib.error):
                return json_response(400, PARSE_ERROR)
        held_inside = (req.path == "/v1/data" or req.path.startswith("/crud/")
                       or (req.path == "/api/gql" and req.commit_late))
        if req.delay and not held_inside:  # /v1/data holds its delay "in flight"
            time.sleep(req.delay)
        if self.faults.setup_head_bug and (req.method, req.path) == ("POST", "/v1/setup"):
            return json_response(500, "Something went wrong: (1054, \"Unknown column 'id' in "
                                      "'SET'\")")
        response = self._route(req)
        if fault in ("reset_after", "slow_commit"):
            response.reset = True
        return response

    def _route(self, req: Request) -> Response:
        if req.path == "/oauth/token" and req.method == "POST":
            return self.flowkit.token(req)
        if req.path == "/oauth/login3":
            return self.uois.login(req)
        if req.path == "/v1" or req.path.startswith("/v1/"):
            return self.flowkit.handle(req)
        if req.path == "/api/gql":
            return self.uois.graphql(req)
        if req.path.startswith("/crud/"):
            return self.crud.handle(req)
        return json_response(404, {"detail": "Not Found"})

    def _control(self, req: Request) -> Response:
        route = (req.method, req.path)
        if route == ("GET", "/_sandbox/stats"):
            with self._conns_lock:
                busy = self._busy
            return json_response(200, {**self.stats.snapshot(), "in_flight": busy,
                                        "ambiguous_keys": self.flowkit.ambiguous_keys()})
        if route == ("POST", "/_sandbox/reset"):
            self.stats.reset()
            return Response(204)
        if route == ("GET", "/_sandbox/faults"):
            remaining = max(0.0, self._outage_until - time.monotonic())
            return json_response(200, {**asdict(self.faults), "outage_remaining": remaining})
        if route == ("POST", "/_sandbox/faults"):
            try:
                settings = parse_json(req.body or b"{}")
                if not isinstance(settings, dict):
                    raise ValueError("expected a JSON object")
                return json_response(200, asdict(self.set_faults(**settings)))
            except ValueError as exc:
                return json_response(400, {"detail": str(exc)})
        return json_response(404, {"detail": "Not Found"})


__all__ = ["Faults", "Sandbox", "Stats"]
