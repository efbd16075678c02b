"""The Transport's data path (straight to httpx's transport) against a scripted server.

Each test starts an asyncio server on a free port whose handler answers with exact bytes,
then sends through a real Transport: keep-alive reuse, the three ways an answer's body
ends, and the failures the retry policy tells apart (never connected vs maybe arrived).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from elt.core.errors import PublishError
from elt.http.messages import RawJSON, Request
from elt.http.transport import Reply, Transport
from elt.publish.sinks.base import Row
from elt.publish.sinks.rest import RestSink

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(head, body) of one request, None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def answer(status: int, body: bytes = b"", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


async def exchange(handler: Handler, requests: list[Request], **endpoint: Any
                   ) -> tuple[list[Reply], dict[str, Any]]:
    """Send `requests` one after the other through a Transport to a server running `handler`
    (once per connection); returns the replies and what the server recorded."""
    seen: dict[str, Any] = {"connections": 0, "requests": []}

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            await handler(reader, writer, seen)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    replies = []
    try:
        async with Transport("t", {"url": f"http://127.0.0.1:{port}", "max_attempts": 1,
                                   **endpoint}) as transport:
            for request in requests:
                replies.append(await transport.send(request))
                await asyncio.sleep(0.01)  # let the server see a close before the next one
    finally:
        server.close()
        await server.wait_closed()
    return replies, seen


def post(body: bytes = b'{"a":1}') -> Request:
    return Request("POST", "/data?x=1", body, {"Content-Type": "application/json"})


def run(handler: Handler, requests: list[Request], **endpoint: Any
        ) -> tuple[list[Reply], dict[str, Any]]:
    return asyncio.run(exchange(handler, requests, **endpoint))


def test_keep_alive_reuses_one_connection_and_sends_exact_requests() -> None:
    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        while (req := await read_request(reader)) is not None:
            seen["requests"].append(req)
            writer.write(answer(201, b'{"mdid": %d}' % len(seen["requests"])))

    replies, seen = run(handler, [post(b'{"n":1}'), post(b'{"n":2}'), post(b'{"n":3}')])
    assert [(r.status, r.body) for r in replies] == [
        (201, b'{"mdid": 1}'), (201, b'{"mdid": 2}'), (201, b'{"mdid": 3}')]
    assert seen["connections"] == 1
    head, body = seen["requests"][1]
    assert head.startswith(b"POST /data?x=1 HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in head.lower()
    assert b"\r\ncontent-length: 7\r\n" in head.lower()
    assert b"\r\nuser-agent: elt-publish\r\n" in head.lower()
    assert body == b'{"n":2}'


def test_chunked_answer_with_interim_100_and_trailers() -> None:
    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n")

    replies, seen = run(handler, [post(), post()])
    assert [(r.status, r.body) for r in replies] == [(200, b"Wikipedia")] * 2
    assert seen["connections"] == 1


def test_answer_ended_by_closing_the_connection_then_a_new_one() -> None:
    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        await writer.drain()

    replies, seen = run(handler, [post(), post()])
    assert [(r.status, r.body) for r in replies] == [(200, b"until the end")] * 2
    assert seen["connections"] == 2


def test_connection_close_answer_and_idle_close_by_server_open_a_new_connection() -> None:
    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        await read_request(reader)
        close = "Connection: close\r\n" if seen["connections"] == 1 else ""
        writer.write(answer(204, extra=close))
        await writer.drain()  # then the server closes even a keep-alive connection

    replies, seen = run(handler, [post(), post(), post()])
    assert [r.status for r in replies] == [204, 204, 204]
    assert all(r.error is None for r in replies)
    assert seen["connections"] == 3


def test_disconnect_without_an_answer_may_have_arrived() -> None:
    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        await read_request(reader)  # read it, then hang up

    replies, _ = run(handler, [post()])
    assert replies[0].status is None and replies[0].reached
    assert "disconnected" in (replies[0].error or "")


def test_read_timeout_is_unknown_not_resent() -> None:
    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        await read_request(reader)
        seen["requests"].append(1)
        await asyncio.sleep(2)

    replies, seen = run(handler, [post()], timeout=0.3, max_attempts=3)
    assert replies[0].status is None and replies[0].reached and replies[0].attempts == 1
    assert "timed out" in (replies[0].error or "")
    assert len(seen["requests"]) == 1


def test_refused_connection_never_reached_the_server() -> None:
    async def go() -> Reply:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with Transport("t", {"url": f"http://127.0.0.1:{port}",
                                   "max_attempts": 1}) as transport:
            return await transport.send(post())

    reply = asyncio.run(go())
    assert reply.status is None and not reply.reached
    assert "cannot connect" in (reply.error or "")


def test_large_body_is_written_whole() -> None:
    big = b"x" * (8 * 1024 * 1024)

    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        while (req := await read_request(reader)) is not None:
            seen["requests"].append(len(req[1]))
            writer.write(answer(201, b"1"))

    replies, seen = run(handler, [post(big), post(b"{}")])
    assert [r.status for r in replies] == [201, 201]
    assert seen["requests"] == [len(big), 2]


def test_malformed_status_line_is_a_protocol_error() -> None:
    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    replies, _ = run(handler, [post()])
    assert replies[0].status is None and "status line" in (replies[0].error or "")


def test_gzip_level_is_an_endpoint_setting(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="gzip_level"):
        Transport("t", {"url": "http://127.0.0.1:9", "gzip_level": 0})
    assert Transport("t", {"url": "http://127.0.0.1:9"}).gzip_level == 1
    assert Transport("t", {"url": "http://127.0.0.1:9", "gzip_level": "9"}).gzip_level == 9
    sink = RestSink("p", {"rest": {"compression": "gzip"}}, tmp_path)
    body = b'{"values": [%s]}' % b",".join(b"%d" % (i % 97) for i in range(20000))
    sizes = {}
    for level in (1, 9):
        sink.gzip_level = level
        (request,) = sink.encode([Row('["k"]', "insert", RawJSON(body.decode()), "h")])
        assert gzip.decompress(request.content) == body
        sizes[level] = len(request.content)
    assert sizes[9] < sizes[1]


def test_a_proxy_in_the_environment_sends_through_the_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not Transport("t", {"url": "http://api.test/v1"})._proxied
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    assert Transport("t", {"url": "http://api.test/v1"})._proxied  # the client routes it
    monkeypatch.setenv("NO_PROXY", "api.test")
    assert not Transport("t", {"url": "http://api.test/v1"})._proxied


def test_idle_check_polls_the_socket_remembered_at_connect() -> None:
    """The pool's streams keep their raw socket (see elt.http.sockets): readable means data
    or a close from the peer, and the Transport's pool uses them (an httpx that lays its
    pool out differently fails here, not silently in production's CPU)."""
    import socket

    from elt.http.sockets import CachedSocketBackend, is_readable

    left, right = socket.socketpair()
    try:
        assert not is_readable(left)
        right.send(b"x")
        assert is_readable(left) and left.recv(1) == b"x" and not is_readable(left)
        right.close()
        assert is_readable(left)  # EOF: a server-side close
    finally:
        left.close()
        right.close()
    assert is_readable(left) and is_readable(None)  # closed: treated as gone
    transport = Transport("t", {"url": "http://127.0.0.1:9"})
    assert isinstance(transport._direct._pool._network_backend,  # type: ignore[attr-defined]
                      CachedSocketBackend)


def test_a_request_leaves_in_one_write() -> None:
    """The head waits for the body (and the empty end-of-message adds nothing); a head
    with nothing after it goes before any read."""
    from elt.http.sockets import _Stream

    class Inner:
        def __init__(self) -> None:
            self.calls: list[tuple[str, bytes]] = []

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self.calls.append(("write", buffer))

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            self.calls.append(("read", b""))
            return b"HTTP/1.1 204 X\r\n\r\n"

        def get_extra_info(self, info: str) -> Any:
            return None

    async def scenario() -> list[tuple[str, bytes]]:
        inner = Inner()
        stream = _Stream(inner)  # type: ignore[arg-type]
        await stream.write(b"POST / HTTP/1.1\r\n\r\n")
        await stream.write(b'{"a":1}')
        await stream.write(b"")
        await stream.read(100)
        await stream.write(b"GET / HTTP/1.1\r\n\r\n")
        await stream.write(b"")
        await stream.read(100)
        big = b"x" * (1 << 20)
        await stream.write(big)
        return inner.calls

    assert asyncio.run(scenario()) == [
        ("write", b'POST / HTTP/1.1\r\n\r\n{"a":1}'), ("read", b""),
        ("write", b"GET / HTTP/1.1\r\n\r\n"), ("read", b""), ("write", b"x" * (1 << 20))]


def test_the_transport_pool_is_the_lean_one() -> None:
    """Data requests go through LeanPool (an httpcore that lays its pool out differently
    fails here, not silently in production's CPU)."""
    from elt.http.sockets import LeanPool

    transport = Transport("t", {"url": "http://127.0.0.1:9"})
    assert type(transport._direct._pool) is LeanPool  # type: ignore[attr-defined]


async def _pool_scenario(delay: float, scenario: Callable[[httpx.AsyncClient, str],
                                                           Awaitable[Any]]
                         ) -> tuple[Any, dict[str, int]]:
    """A server answering each request after `delay` s; `scenario` gets a client on a
    one-connection lean pool. Returns its result, connections and peak requests at once."""
    from elt.http.sockets import pooled_transport

    seen = {"connections": 0, "active": 0, "peak": 0}

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            while await read_request(reader) is not None:
                seen["active"] += 1
                seen["peak"] = max(seen["peak"], seen["active"])
                await asyncio.sleep(delay)
                seen["active"] -= 1
                writer.write(answer(201, b"ok"))
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    try:
        async with httpx.AsyncClient(transport=pooled_transport(limits)) as client:
            return await scenario(client, url), seen
    finally:
        server.close()
        await server.wait_closed()


def test_requests_beyond_the_limit_wait_for_the_connection() -> None:
    async def three(client: httpx.AsyncClient, url: str) -> list[int]:
        answers = await asyncio.gather(*(client.post(url, content=b"x") for _ in range(3)))
        return [a.status_code for a in answers]

    statuses, seen = asyncio.run(_pool_scenario(0.05, three))
    assert statuses == [201, 201, 201]
    assert seen["connections"] == 1 and seen["peak"] == 1


def test_waiting_longer_than_the_pool_timeout_fails_and_frees_nothing_twice() -> None:
    async def hold_then_wait(client: httpx.AsyncClient, url: str) -> tuple[str, int]:
        first = asyncio.create_task(client.post(url, content=b"x"))
        await asyncio.sleep(0.05)
        try:
            await client.post(url, content=b"y", timeout=httpx.Timeout(5, pool=0.05))
            late = "answered"
        except httpx.PoolTimeout:
            late = "pool timeout"
        await first
        return late, (await client.post(url, content=b"z")).status_code

    (late, after), seen = asyncio.run(_pool_scenario(0.3, hold_then_wait))
    assert late == "pool timeout" and after == 201 and seen["connections"] == 1


def test_a_cancelled_request_gives_its_connection_back() -> None:
    async def cancel_then_send(client: httpx.AsyncClient, url: str) -> int:
        task = asyncio.create_task(client.post(url, content=b"x"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        answer_ = await client.post(url, content=b"y", timeout=httpx.Timeout(5, pool=2))
        return answer_.status_code

    status, seen = asyncio.run(_pool_scenario(0.2, cancel_then_send))
    assert status == 201 and seen["connections"] == 2  # the cancelled one was closed


def test_a_refused_connection_frees_its_place() -> None:
    from elt.http.sockets import pooled_transport

    async def twice() -> list[str]:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        out = []
        async with httpx.AsyncClient(transport=pooled_transport(limits)) as client:
            for _ in range(2):
                try:
                    await client.get("http://127.0.0.1:9/", timeout=httpx.Timeout(5, pool=0.5))
                except httpx.HTTPError as exc:
                    out.append(type(exc).__name__)
        return out

    assert asyncio.run(twice()) == ["ConnectError", "ConnectError"]


def test_an_encoded_answer_is_decoded_a_plain_one_read_as_it_is() -> None:
    """Answers without Content-Encoding are read straight off the stream; gzip is decoded."""
    packed = gzip.compress(b'{"mdid": 7}')

    async def handler(reader: Any, writer: Any, seen: dict[str, Any]) -> None:
        while (req := await read_request(reader)) is not None:
            seen["requests"].append(req)
            writer.write(answer(201, packed, "Content-Encoding: gzip\r\n")
                         if len(seen["requests"]) == 1 else answer(201, packed))

    replies, _ = run(handler, [post(), post()])
    assert [(r.status, r.body) for r in replies] == [(201, b'{"mdid": 7}'), (201, packed)]
