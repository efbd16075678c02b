"""HTTP transport for one endpoint: keep-alive client, bounded concurrency, retries, pacing.

Retry policy (retry.py): connection errors, 429 and 5xx are retried up to `max_attempts`
with exponential backoff and full jitter (429/503 honour Retry-After); the same 5xx answer
is retried `same_error_retries` times (default 2). After any error where the
request may have reached the server, the next attempt waits at least 1 s. A request that
timed out waiting for its answer is NOT resent in the same run (unless the endpoint sets
`retry_timeouts: true`): the server may still be processing it, and the FlowKit backend
corrupts a key posted twice at the same time ("Ambiguous dataset", fixed only by database
surgery). Its outcome stays unknown; the next publish resends it, and a POST the first copy
did store then answers 303 (acknowledged). A write answered 502 or 504 is the same case: a
gateway gave up on the server behind it, which may still be writing; so is a write whose
connection dropped after it was sent (a reset, or a close without an answer: a proxy in
front may drop it while the server goes on).

Every request (token fetches included) is one line in the log (`elt.http`): method, path
(no query string), status or error, latency. Never bodies or headers; the log handler
redacts secrets as a second guard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, NamedTuple

import httpx

from elt.core import secrets
from elt.core.errors import PublishError
from elt.http.auth import make_auth
from elt.http.clock import Clock, SystemClock
from elt.http.messages import GZIP_LEVEL, Request
from elt.http.retry import RetryPolicy, retry_after_seconds, retryable_status
from elt.http.sockets import pooled_transport

RESEND_PAUSE = 1.0  # minimum wait after a timeout before resending (see module docstring)
GATEWAY_GAVE_UP = (502, 504)  # a proxy's answer: the server behind it may still be writing
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
http_log = logging.getLogger("elt.http")


def _log_answer(endpoint: str, method: str, path: str, status: int, begun: float | None
                ) -> None:
    ms = round((time.monotonic() - begun) * 1000, 1) if begun is not None else None
    http_log.info("%s %s %s %s %sms", endpoint, method, path, status, ms,
                  extra={"endpoint": endpoint, "method": method, "path": path,
                         "status": status, "ms": ms})


def _hooks(endpoint: str) -> dict[str, list[Any]]:
    """httpx event hooks logging one line per answered request the client sends (token
    fetches, logins; data requests log the same line themselves, see Transport._attempt)."""

    async def started(request: httpx.Request) -> None:
        request.extensions["elt_started"] = time.monotonic()

    async def answered(response: httpx.Response) -> None:
        request = response.request
        _log_answer(endpoint, request.method, request.url.path, response.status_code,
                    request.extensions.get("elt_started"))

    return {"request": [started], "response": [answered]}


class _Answer(NamedTuple):
    """An HTTP answer read whole: status, headers, body, and the request's path (logged)."""

    status: int
    headers: httpx.Headers
    content: bytes
    path: str


@dataclass(frozen=True)
class Reply:
    """The last answer to a request: a status and body, or an error text naming the endpoint."""

    status: int | None
    body: bytes
    error: str | None
    attempts: int
    location: str | None = None  # where a 3xx answer pointed (redirects are never followed)
    reached: bool = True  # False: no attempt ever connected (nothing can be processing)
    # an earlier attempt may have been processed (it reached the server and got no answer,
    # or a 5xx other than 503): an "already exists" now may be that copy's doing
    repeated: bool = False
    created: str | None = None  # the Location header of a non-redirect answer (a 201's new id)


def _number(endpoint: dict, key: str, default: float, where: str) -> float:
    value = endpoint.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PublishError(f"`{key}` must be a number, not {value!r}", where=where) from None
    if number < 0:
        raise PublishError(f"`{key}` must not be negative", where=where)
    return number


def _env_proxy(url: str) -> bool:
    """Whether HTTP(S)_PROXY / ALL_PROXY (and NO_PROXY) send `url` through a proxy."""
    proxies = urllib.request.getproxies_environment()
    parts = urllib.parse.urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)


def _path(value: Any) -> str:
    text = str(value or "")
    return text if not text or text.startswith("/") else "/" + text


def endpoint_headers(endpoint: dict, where: str) -> dict[str, str]:
    """The endpoint's `headers:` (an API key ...), sent with every request to it."""
    headers = endpoint.get("headers") or {}
    if not isinstance(headers, dict):
        raise PublishError("`headers` must be a mapping of header name -> value", where=where)
    return {str(k): str(v) for k, v in headers.items()}


def _stateless_cookies() -> CookieJar:
    """A jar that keeps nothing: credentials are sent explicitly, never from stale cookies."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class Transport:
    """One per endpoint; keep-alive httpx.AsyncClient; bounded concurrency.

    `requests` and `bytes_sent` count every attempt (progress); `retries` counts resends.
    """

    def __init__(self, name: str, endpoint: dict, *, concurrency: int | None = None,
                 clock: Clock | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 rng: random.Random | None = None) -> None:
        self.name = name
        self.url = str(endpoint.get("url") or "").rstrip("/")
        if not self.url:
            raise PublishError("no `url` configured", where=f"endpoint {name}")
        self.where = f"endpoint {name} ({self.url})"
        self.heartbeat_path = _path(endpoint.get("heartbeat"))
        self.graphql_path = _path(endpoint.get("graphql_path"))
        self.timeout = _number(endpoint, "timeout", 30.0, self.where) or 30.0
        self.concurrency = int(concurrency or _number(endpoint, "concurrency", 8, self.where) or 8)
        self.rate_limit = _number(endpoint, "rate_limit", 0.0, self.where)
        self.max_attempts = max(1, int(_number(endpoint, "max_attempts", 5, self.where)))
        same = int(_number(endpoint, "same_error_retries", 2, self.where))
        self.retry_timeouts = bool(endpoint.get("retry_timeouts", False))
        self.gzip_level = int(_number(endpoint, "gzip_level", GZIP_LEVEL, self.where))
        if not 1 <= self.gzip_level <= 9:
            raise PublishError("`gzip_level` must be 1 to 9", where=self.where)
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.policy = RetryPolicy(self.clock, self.rng, self.max_attempts, same)
        self.auth = make_auth(endpoint.get("auth"), endpoint=name, clock=self.clock,
                              policy=self.policy)
        limits = httpx.Limits(max_connections=self.concurrency,
                              max_keepalive_connections=self.concurrency)
        # Data requests go straight to the transport (no cookies, redirects, auth flow or
        # hooks to run: elt sets its own headers and follows nothing), skipping httpx's
        # client layers, a measurable CPU cost per request. The client sends the token
        # fetches and logins.
        self._direct: httpx.AsyncBaseTransport = transport or pooled_transport(limits)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout), limits=limits, transport=self._direct,
            follow_redirects=False, cookies=_stateless_cookies(),
            headers={"User-Agent": "elt-publish", **endpoint_headers(endpoint, self.where)},
            event_hooks=_hooks(name))
        self._base_headers = self.client.headers
        self._timeouts = httpx.Timeout(self.timeout).as_dict()
        self._urls: dict[str, httpx.URL] = {}
        self._proxied = transport is None and _env_proxy(self.url)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._next_start: float | None = None
        self.requests = 0
        self.bytes_sent = 0
        self.retries = 0

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- checks ------------------------------------------------------------------------
    async def heartbeat(self) -> str:
        """GET url + heartbeat (retried like data requests): the server's `version`, else
        "ok (no version)"; "ok" when no heartbeat is configured."""
        if not self.heartbeat_path:
            return "ok"
        probe = Request("GET", self.heartbeat_path, b"", {})
        reply = await self._exchange(probe, self.url + self.heartbeat_path, authorize=False)
        if reply.status is None:
            raise self._unreachable(reply)
        if not 200 <= reply.status < 300:
            hint = (f" (a redirect to {reply.location}, not followed: fix the url)"
                    if reply.location else "")
            raise PublishError(f"heartbeat {self.heartbeat_path} answered HTTP "
                               f"{reply.status}{hint}", where=self.where)
        try:
            data = json.loads(reply.body)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("version") not in (None, ""):
            return str(data["version"])
        return "ok (no version)"

    async def probe(self) -> int:
        """GET the base url without credentials: the HTTP status of whatever answers (any
        status means a server is there), for an endpoint without a heartbeat."""
        reply = await self._exchange(Request("GET", "", b"", {}), self.url, authorize=False)
        if reply.status is None:
            raise self._unreachable(reply)
        return reply.status

    def _unreachable(self, reply: Reply) -> PublishError:
        what = (reply.error or "no answer").removeprefix(f"{self.where}: ").removeprefix(
            secrets.redact(f"{self.where}: "))  # the error may be redacted already
        return PublishError(what if what.startswith("cannot connect")
                            else f"cannot connect: {what}", where=self.where)

    async def check_auth(self) -> None:
        """Fetch a token now; raises PublishError naming the endpoint and the status."""
        await self.auth.check(self.client)

    # -- sending -----------------------------------------------------------------------
    async def send(self, request: Request) -> Reply:
        """Send with retries; every outcome is a Reply except failing to get credentials,
        which raises PublishError (the whole endpoint is unusable, not this request)."""
        return await self._exchange(request, self.url + (request.path or self.graphql_path))

    async def _exchange(self, request: Request, url: str, *, authorize: bool = True) -> Reply:
        attempts = tries = 0
        refreshed = False
        repeats = self.policy.tracker()
        reached = False  # whether any attempt may have reached the server
        repeated = False  # whether an earlier attempt may have been processed
        while True:
            attempts += 1
            tries += 1
            status, body, exc, retry_after, generation, location = await self._attempt(
                request, url, authorize)
            created = None
            if location is not None and not httpx.codes.is_redirect(status or 0):
                created, location = location, None
            reached = reached or not isinstance(exc, httpx.ConnectError)
            if status == 401 and authorize and self.auth.refreshable and not refreshed:
                self.auth.invalidate(generation)  # one new token, one resend, not a "try"
                refreshed = True
                tries -= 1
                continue
            if (status in GATEWAY_GAVE_UP and request.method.upper() not in SAFE_METHODS
                    and not self.retry_timeouts):  # as a timeout: not resent in this run
                return Reply(None, body, f"{self.where}: HTTP {status} from a gateway (the "
                             "server behind it may still be processing the request)",
                             attempts, location, True, repeated)
            retryable = (exc is not None and self._retryable(exc, request.method)
                         ) or retryable_status(status)
            if (not retryable or tries >= self.max_attempts
                    or repeats.exhausted(status, body)):
                error = f"{self.where}: {self._describe(exc)}" if exc is not None else None
                return Reply(status, body, secrets.redact(error) if error else None, attempts,
                             location, reached, repeated, created)
            repeated = repeated or (exc is not None and not isinstance(exc, httpx.ConnectError)
                                    ) or (status is not None and status >= 500 and status != 503)
            delay = self.policy.delay(tries, retry_after)
            if exc is not None and not isinstance(exc, httpx.ConnectError):
                delay = max(delay, RESEND_PAUSE)  # it may have reached the server
            self.retries += 1
            await self.clock.sleep(delay)

    async def _attempt(self, request: Request, url: str, authorize: bool = True) -> tuple[
            int | None, bytes, BaseException | None, float | None, int, str | None]:
        async with self._slots:
            await self._pace()
            headers = dict(request.headers)
            cookies: dict[str, str] = {}
            if authorize:
                await self.auth.apply(self.client, headers, cookies)
            generation = self.auth.generation
            if cookies:
                jar = "; ".join(f"{k}={v}" for k, v in cookies.items())
                headers["Cookie"] = f"{headers['Cookie']}; {jar}" if "Cookie" in headers else jar
            self.requests += 1
            self.bytes_sent += len(request.content)
            begun = time.monotonic()
            try:
                resp = await self._send_direct(request.method, url, request.content, headers)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                try:
                    path = httpx.URL(url).path
                except (httpx.InvalidURL, ValueError):
                    path = "?"
                http_log.warning("%s %s %s failed: %s", self.name, request.method, path,
                                 self._describe(exc), extra={
                                     "endpoint": self.name, "method": request.method,
                                     "path": path, "status": None})
                return None, b"", exc, None, generation, None
            _log_answer(self.name, request.method, resp.path, resp.status, begun)
        retry_after = None
        if resp.status in (429, 503):
            retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        return (resp.status, resp.content, None, retry_after, generation,
                resp.headers.get("Location"))

    async def _send_direct(self, method: str, url: str, content: bytes,
                           headers: dict[str, str]) -> _Answer:
        """One request through the transport, its answer read whole (through the client
        when the environment names a proxy for the endpoint: the client routes to it).

        An answer without Content-Encoding is read straight off the transport's stream:
        httpx's Response.aread (decoders, chunker, request context) was a sixth of the
        per-request CPU for the small answers publish gets."""
        if self._proxied:
            resp = await self.client.request(method, url, content=content, headers=headers)
            return _Answer(resp.status_code, resp.headers, resp.content, resp.request.url.path)
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 256:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        merged = httpx.Headers(self._base_headers)
        merged.update(headers)
        req = httpx.Request(method, parsed, content=content, headers=merged,
                            extensions={"timeout": self._timeouts})
        resp = await self._direct.handle_async_request(req)
        try:
            if resp.headers.get("Content-Encoding", "identity").strip().lower() == "identity":
                body = b"".join([part async for part in resp.stream])
            else:  # gzip, br, ...: httpx decodes
                resp.request = req
                body = await resp.aread()
        finally:
            await resp.stream.aclose()
        return _Answer(resp.status_code, resp.headers, body, parsed.path)

    async def _pace(self) -> None:
        """Token bucket of depth 1 on the injectable clock: starts >= 1/rate_limit apart."""
        if not self.rate_limit:
            return
        now = self.clock.now()
        start = now if self._next_start is None else max(now, self._next_start)
        self._next_start = start + 1.0 / self.rate_limit
        if start > now:
            await self.clock.sleep(start - now)

    def _retryable(self, exc: BaseException, method: str) -> bool:
        if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
            return self.retry_timeouts  # the first copy may still be processing: see above
        if (isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError)
                and method.upper() not in SAFE_METHODS):
            return self.retry_timeouts  # a write sent, then the connection dropped: the same
        return isinstance(exc, httpx.TimeoutException | httpx.NetworkError
                          | httpx.RemoteProtocolError)

    def _describe(self, exc: BaseException | None) -> str:
        if isinstance(exc, httpx.TooManyRedirects):
            return "too many redirects"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {self.timeout:g}s ({type(exc).__name__})"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect: {exc or type(exc).__name__}"
        return f"{type(exc).__name__}: {exc}"
