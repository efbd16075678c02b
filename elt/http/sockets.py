"""Two CPU savings under httpcore's HTTP/1.1 connections, which `elt publish` sends through.

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

Everything else is delegated to the backend httpx chose.
"""

from __future__ import annotations

import select
import ssl
import typing
from collections.abc import Iterable

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


def pooled_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport, its pool's streams wrapped (see the module docstring). If a
    future httpx or httpcore lays its pool out differently the transport is returned as
    it is: slower by the check above, never wrong (a test says when that happens)."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and isinstance(
            backend, httpcore.AsyncNetworkBackend):
        pool._network_backend = CachedSocketBackend(backend)
    return transport
