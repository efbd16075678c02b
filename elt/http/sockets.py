"""Three CPU savings under httpcore's HTTP/1.1 connections, which `elt publish` sends through.

1. The idle check. Before every request, and again when every answer is released, httpcore
   asks each pooled connection whether it has expired; for an idle one that means "is its
   socket readable" (a readable idle socket is a server-side close). httpcore's anyio
   stream answers by building anyio's whole dict of socket attributes each time: with 8
   connections, 7% of `elt publish`'s CPU (py-spy, scale 0.1). The streams below remember
   the raw socket at connect and poll it directly: the same check, without the rebuild.
2. One write per request. httpcore writes a request's head, then its body, then an empty
   end-of-message: three trips through anyio, two system calls. The streams hold a short
   head back and send it with what follows (the body, the end of the message, or before
   any read), so a request leaves in one `send`.
3. A lean pool. httpcore's pool re-plans every queued request against every connection
   on each request and on each release (its `_assign_requests_to_connections`: 13% of the
   per-request CPU, measured against a bare loopback server). `LeanPool` keeps idle
   connections on a stack and hands one out, or opens one while under the limit, or waits
   for a release: the same connections (httpcore's, created by the pool's own factory),
   limits and pool timeout.

Everything else is delegated to the backend httpx chose.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import typing
from collections import deque
from collections.abc import AsyncIterator, Iterable

import anyio
import httpcore
import httpx


def is_readable(sock: typing.Any) -> bool:
    """Whether a read would return at once (data or EOF); a closed socket counts as
    readable, as in httpcore."""
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


HOLD_BACK = 16 * 1024  # a head shorter than this waits for the body that follows it


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")
        self._held = b""

    async def _flush(self, timeout: float | None) -> None:
        if self._held:
            held, self._held = self._held, b""
            await self._inner.write(held, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not self._held and buffer and len(buffer) < HOLD_BACK:
            self._held = bytes(buffer)  # a head: wait for the rest of the request
            return
        if self._held:
            buffer, self._held = self._held + buffer, b""
        if buffer:
            await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        self._held = b""  # nothing half-sent is worth a write on a closing connection
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)  # a proxy's CONNECT, before the handshake
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable" and self._socket is not None:
            return is_readable(self._socket)
        return self._inner.get_extra_info(info)


class CachedSocketBackend(httpcore.AsyncNetworkBackend):
    """Wraps a network backend so that its streams answer `is_readable` cheaply."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[typing.Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self.inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[typing.Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self.inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class LeanPool(httpcore.AsyncConnectionPool):
    """httpcore's pool for plain HTTP/1.1 keep-alive (no HTTP/2, no proxy), without its
    per-request re-planning; see the module docstring."""

    def __init__(self, base: httpcore.AsyncConnectionPool) -> None:
        self.__dict__.update(base.__dict__)  # its settings, factory and (empty) state
        self._idle: list[httpcore.AsyncConnectionInterface] = []
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if request.url.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{request.url.scheme.decode()}://'.")
        timeout = request.extensions.get("timeout", {}).get("pool")
        while True:
            connection = await self._acquire(request.url.origin, timeout)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:  # it went away meanwhile: another one
                await self._release(connection)
                continue
            except BaseException:
                await self._release(connection)
                raise
            return httpcore.Response(status=response.status, headers=response.headers,
                                     content=_Released(response.stream, self, connection),
                                     extensions=response.extensions)

    async def _acquire(self, origin: httpcore.Origin, timeout: float | None
                       ) -> httpcore.AsyncConnectionInterface:
        while True:
            for i in range(len(self._idle) - 1, -1, -1):  # the most recently used first
                connection = self._idle[i]
                if connection.can_handle_request(origin):
                    del self._idle[i]
                    if connection.is_idle() and not connection.has_expired():
                        return connection
                    await self._drop(connection)  # the server closed it, or it expired
                    break
            else:
                if len(self._connections) >= self._max_connections and self._idle:
                    await self._drop(self._idle.pop(0))  # another origin's, least recent
                if len(self._connections) < self._max_connections:
                    connection = self.create_connection(origin)
                    self._connections.append(connection)
                    return connection
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await asyncio.wait_for(waiter, timeout)
                except TimeoutError:
                    raise httpcore.PoolTimeout("no connection free in time") from None
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    async def _release(self, connection: httpcore.AsyncConnectionInterface) -> None:
        """Back on the idle stack if it can be reused, else closed; a waiter is woken."""
        if (connection.is_idle() and not connection.is_closed()
                and len(self._idle) < self._max_keepalive_connections):
            self._idle.append(connection)
        else:
            await self._drop(connection)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _drop(self, connection: httpcore.AsyncConnectionInterface) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
        with anyio.CancelScope(shield=True):
            await connection.aclose()

    async def aclose(self) -> None:
        self._idle.clear()
        await super().aclose()


class _Released:
    """A response stream that gives its connection back to the pool when closed."""

    def __init__(self, stream: typing.Any, pool: LeanPool,
                 connection: httpcore.AsyncConnectionInterface) -> None:
        self._stream, self._pool, self._connection = stream, pool, connection
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            try:
                if hasattr(self._stream, "aclose"):
                    await self._stream.aclose()
            finally:
                await self._pool._release(self._connection)


def pooled_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport, its pool lean and its pool's streams wrapped (see the module
    docstring). If a future httpx or httpcore lays its pool out differently the transport
    is returned as it is: slower, never wrong (a test says when that happens)."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and isinstance(
            backend, httpcore.AsyncNetworkBackend):
        pool._network_backend = CachedSocketBackend(backend)
        if (type(pool) is httpcore.AsyncConnectionPool and not pool._http2
                and getattr(pool, "_proxy", None) is None and hasattr(pool, "create_connection")
                and isinstance(getattr(pool, "_connections", None), list)):
            transport._pool = LeanPool(pool)
    return transport
