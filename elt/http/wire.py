"""A lean HTTP/1.1 keep-alive connection pool under httpx, for plain `http://` endpoints.

Why: publishing sends one request per dataset, and httpcore's pool costs about a
millisecond of CPU per request (anyio streams, h11 events, a readability poll of every
idle connection before each request). On a machine whose cores the receiver shares, that
CPU is the publisher's throughput. This pool does the same job on asyncio protocols: the
event loop reports a connection's end (no polling), a request is one write, an answer is
parsed from one buffer.

It plugs in below httpx (`LeanTransport` is `AsyncHTTPTransport` with this pool), so the
client, its timeouts, and the exceptions the retry policy reads are httpx's own: a failure
to connect is `ConnectError` (the request never left), a missing answer after sending is
`ReadTimeout` / `RemoteProtocolError` / `ReadError` (it may have arrived). `https://` URLs
go to httpcore's pool, unchanged (TLS, certificates and proxies are its business).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpcore
import httpx

MAX_HEADER_BYTES = 64 * 1024
_NO_BODY = frozenset((204, 304))


class _Conn(asyncio.Protocol):
    """One keep-alive connection; the event loop feeds it bytes and tells it when it ends."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ended = False  # the peer closed, or the connection was lost
        self.error: BaseException | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._can_write: asyncio.Future[None] | None = None

    # -- protocol callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._wake()
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # -- used by the pool ---------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return not self.ended and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.ended = True
        if self.transport is not None:
            self.transport.close()

    async def write(self, parts: list[bytes], timeout: float | None) -> None:
        assert self.transport is not None
        if self.ended:  # closed after we picked it: nothing was sent
            raise httpcore.WriteError("connection closed before the request was written")
        self.transport.writelines(parts)
        if self._can_write is not None:  # a large body: wait for the kernel to take it
            try:
                async with asyncio.timeout(timeout):
                    await self._can_write
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out writing the request") from None
            if self.error is not None:
                raise httpcore.WriteError(str(self.error)) from self.error

    async def _more(self, deadline: float | None) -> None:
        """Wait for more bytes (or the end); ReadTimeout at the deadline."""
        if self.ended:
            if self.error is not None:
                raise httpcore.ReadError(str(self.error)) from self.error
            raise httpcore.RemoteProtocolError("Server disconnected without sending a "
                                               "complete response.")
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout_at(deadline):
                await self._wakeup
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out waiting for the answer") from None
        finally:
            self._wakeup = None

    async def read_response(self, method: bytes, timeout: float | None
                            ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
        """(status, reason, headers, body, keep-alive) of one answer."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:  # skip interim 1xx answers
            while (end := self.buf.find(b"\r\n\r\n")) < 0:
                if len(self.buf) > MAX_HEADER_BYTES:
                    raise httpcore.RemoteProtocolError("answer headers too large")
                try:
                    await self._more(deadline)
                except httpcore.RemoteProtocolError:
                    if self.buf:
                        raise
                    raise httpcore.RemoteProtocolError(
                        "Server disconnected without sending a response.") from None
            head = bytes(self.buf[:end])
            del self.buf[:end + 4]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise httpcore.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
            status = int(parts[1])
            if 100 <= status < 200:
                continue
            break
        version, reason = parts[0], parts[2] if len(parts) > 2 else b""
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = close = False
        keep_alive_10 = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpcore.RemoteProtocolError("malformed answer header")
            name, value = name.strip(), value.strip()
            headers.append((name, value))
            lname = name.lower()
            if lname == b"content-length":
                if not value.isdigit():
                    raise httpcore.RemoteProtocolError("bad Content-Length")
                length = int(value)
            elif lname == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lname == b"connection":
                tokens = value.lower()
                close = close or b"close" in tokens
                keep_alive_10 = b"keep-alive" in tokens
        keep = not close and (version == b"HTTP/1.1" or keep_alive_10)
        if method == b"HEAD" or status in _NO_BODY:
            body = b""
        elif chunked:
            body = await self._read_chunked(deadline)
        elif length is not None:
            while len(self.buf) < length:
                await self._more(deadline)
            body = bytes(self.buf[:length])
            del self.buf[:length]
        else:  # delimited by the end of the connection
            while not self.ended:
                with contextlib.suppress(httpcore.RemoteProtocolError):
                    await self._more(deadline)
            body, keep = bytes(self.buf), False
            self.buf.clear()
        return status, reason, headers, body, keep

    async def _read_chunked(self, deadline: float | None) -> bytes:
        out = bytearray()
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                await self._more(deadline)
            size_text = bytes(self.buf[:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpcore.RemoteProtocolError("bad chunk size") from None
            del self.buf[:eol + 2]
            if size == 0:  # trailers, then an empty line
                while (end := self.buf.find(b"\r\n")) != 0:
                    if end > 0:
                        del self.buf[:end + 2]
                    else:
                        await self._more(deadline)
                del self.buf[:2]
                return bytes(out)
            while len(self.buf) < size + 2:
                await self._more(deadline)
            out += self.buf[:size]
            del self.buf[:size + 2]


def _timeout(extensions: dict[str, Any], name: str) -> float | None:
    value = (extensions.get("timeout") or {}).get(name)
    return None if value is None else float(value)


class LeanPool:
    """httpcore's pool interface (handle_async_request, aclose) for http:// on asyncio."""

    def __init__(self, max_connections: int, fallback: Any) -> None:
        self.fallback = fallback  # httpcore's pool, for https
        self._idle: dict[tuple[bytes, int], list[_Conn]] = {}
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._open: set[_Conn] = set()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        if url.scheme != b"http":
            return await self.fallback.handle_async_request(request)
        ext = request.extensions
        try:
            async with asyncio.timeout(_timeout(ext, "pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpcore.PoolTimeout("no free connection") from None
        try:
            return await self._exchange(request, ext)
        finally:
            self._slots.release()

    async def _exchange(self, request: httpcore.Request, ext: dict[str, Any]
                        ) -> httpcore.Response:
        url = request.url
        port = url.port or 80
        conn = self._idle_conn((url.host, port)) or await self._connect(url.host, port, ext)
        ok = False
        try:
            head = [request.method, b" ", url.target, b" HTTP/1.1\r\n"]
            for name, value in request.headers:
                head += [name, b": ", value, b"\r\n"]
            head.append(b"\r\n")
            parts = [b"".join(head)]
            if isinstance(request.stream, httpx.ByteStream):
                parts += [chunk for chunk in request.stream]  # type: ignore[union-attr]
            else:
                parts += [chunk async for chunk in request.stream]  # type: ignore[union-attr]
            await conn.write(parts, _timeout(ext, "write"))
            status, reason, headers, body, keep = await conn.read_response(
                request.method, _timeout(ext, "read"))
            ok = keep
        finally:
            if ok and conn.usable and not conn.buf:
                self._idle.setdefault((url.host, port), []).append(conn)
            else:
                self._drop(conn)
        return httpcore.Response(status, headers=headers, content=body, extensions={
            "http_version": b"HTTP/1.1", "reason_phrase": reason})

    def _idle_conn(self, where: tuple[bytes, int]) -> _Conn | None:
        idle = self._idle.get(where)
        while idle:
            conn = idle.pop()
            if conn.usable and not conn.buf:
                return conn
            self._drop(conn)
        return None

    async def _connect(self, host: bytes, port: int, ext: dict[str, Any]) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(_timeout(ext, "connect")):
                _, conn = await loop.create_connection(_Conn, host.decode("ascii"), port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host.decode()}:{port}"
                                          ) from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        self._open.add(conn)
        return conn

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        self._open.discard(conn)

    async def aclose(self) -> None:
        for conn in list(self._open):
            self._drop(conn)
        self._idle.clear()
        await self.fallback.aclose()


class LeanTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the lean pool for http:// (mocking libraries that patch
    `AsyncHTTPTransport.handle_async_request` still see every request)."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self._pool = LeanPool(limits.max_connections or 100, self._pool)  # type: ignore
