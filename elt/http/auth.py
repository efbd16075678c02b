"""Per-endpoint credentials: fetch, cache and refresh tokens, and never let them be printed.

Every secret (client secret, password, static or fetched token) is registered with
`elt.core.secrets` so the Console redacts it; error messages name the endpoint, URL and HTTP
status, never a credential.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx

from elt.core import secrets
from elt.core.errors import PublishError
from elt.http.clock import Clock, SystemClock
from elt.http.retry import RetryPolicy, retry_after_seconds, retryable_status


def _margin(lifetime: float) -> float:
    """Refresh early by 10% of the lifetime, at most 60 s, so no request carries a dying token."""
    return min(60.0, 0.1 * lifetime)


def jwt_claims(token: str | None) -> dict[str, Any] | None:
    """The claims of a JWT, unverified (to schedule a refresh, to read scopes), else None."""
    try:
        part = (token or "").split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def _jwt_lifetime(token: str) -> float | None:
    """exp - iat of a JWT, else its `expires_in` claim (UOIS tokens carry that and no exp),
    else None."""
    claims = jwt_claims(token) or {}
    for lifetime in (lambda: float(claims["exp"]) - float(claims["iat"]),
                     lambda: float(claims["expires_in"])):
        try:
            return lifetime()
        except (KeyError, TypeError, ValueError):
            continue
    return None


class CallError(PublishError):
    """A token or login request that failed: its HTTP status (None: no answer) and body."""

    def __init__(self, message: str, *, where: str, status: int | None = None,
                 body: bytes = b"") -> None:
        super().__init__(message, where=where)
        self.status, self.body = status, body


class Auth:
    """No credentials (`type: none`); also the base class of the others."""

    kind = "none"
    refreshable = False  # whether a 401 is worth one new token and one resend
    fetches = False  # whether check() asks a server (a static token is checked by no one)

    def __init__(self, config: dict, endpoint: str, clock: Clock,
                 policy: RetryPolicy | None = None) -> None:
        self.config = config
        self.endpoint = endpoint
        self.clock = clock
        self.policy = policy or RetryPolicy(clock)
        self.generation = 0  # bumped per new token, so a 401 invalidates only its own token
        self._configure(config)

    def _configure(self, config: dict) -> None:
        """Read and check this auth type's keys (a subclass's own settings)."""

    @property
    def where(self) -> str:
        return f"endpoint {self.endpoint}"

    def require(self, key: str) -> str:
        value = self.config.get(key)
        if value is None or value == "":
            raise PublishError(f"auth type {self.kind} needs `auth.{key}`", where=self.where)
        return str(value)

    async def apply(self, client: httpx.AsyncClient, request_headers: dict[str, str],
                    cookies: dict[str, str]) -> None:
        """Add credentials to one request's headers/cookies (fetching a token if needed)."""

    async def check(self, client: httpx.AsyncClient) -> None:
        """Obtain credentials now, so bad ones fail before any row is sent."""
        await self.apply(client, {}, {})

    def invalidate(self, generation: int | None = None) -> None:
        """Forget the token (if it is still the one of `generation`) after a 401."""


class BearerAuth(Auth):
    """A static token from config."""

    @property
    def current_token(self) -> str | None:
        return self.token

    kind = "bearer"

    def _configure(self, config: dict) -> None:
        self.token = self.require("token")
        secrets.register(self.token)

    async def apply(self, client: httpx.AsyncClient, request_headers: dict[str, str],
                    cookies: dict[str, str]) -> None:
        request_headers["Authorization"] = f"Bearer {self.token}"


class _TokenAuth(Auth):
    """A fetched token, cached until shortly before it expires; one fetch at a time."""

    refreshable = True
    fetches = True

    def __init__(self, config: dict, endpoint: str, clock: Clock,
                 policy: RetryPolicy | None = None) -> None:
        super().__init__(config, endpoint, clock, policy)
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self, client: httpx.AsyncClient) -> tuple[str, float | None]:
        raise NotImplementedError

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or self.clock.now() < self._expires_at

    async def token(self, client: httpx.AsyncClient) -> str:
        if self._fresh():
            return self._token  # type: ignore[return-value]
        async with self._lock:  # concurrent senders wait for the one fetch
            if not self._fresh():
                token, lifetime = await self._fetch(client)
                secrets.register(token)
                self._token = token
                self.generation += 1
                self._expires_at = (self.clock.now() + lifetime - _margin(lifetime)
                                    if lifetime else None)
            return self._token  # type: ignore[return-value]

    def invalidate(self, generation: int | None = None) -> None:
        if generation is None or generation == self.generation:
            self._token = None

    @property
    def current_token(self) -> str | None:
        """The token in use (for `elt debug` to read its scopes); never printed."""
        return self._token

    async def _call(self, client: httpx.AsyncClient, method: str, url: str, what: str, *,
                    retry: bool = True, **kwargs: Any) -> dict:
        """One JSON request to the token/login URL, retried like data requests (connection
        errors, 429, 5xx; the same 5xx only `same_error_retries` times). With retry=False
        it is sent once (a login POST: its key is spent whatever the answer)."""
        repeats = self.policy.tracker()
        attempts = self.policy.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = await client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                if attempt < attempts:
                    await self.clock.sleep(self.policy.backoff(attempt))
                    continue
                detail = str(exc) or type(exc).__name__
                raise CallError(secrets.redact(f"{what} {url}: cannot connect: {detail}"),
                                where=self.where) from None
            if (retryable_status(resp.status_code) and attempt < attempts
                    and not repeats.exhausted(resp.status_code, resp.content)):
                after = retry_after_seconds(resp.headers.get("Retry-After"))
                await self.clock.sleep(self.policy.delay(attempt, after))
                continue
            break
        if resp.status_code != 200:
            body = secrets.redact(resp.text.strip())[:200]  # redact before cutting
            raise CallError(secrets.redact(f"{what} {url} answered HTTP {resp.status_code}"
                                           + (f": {body}" if body else "")),
                            where=self.where, status=resp.status_code, body=resp.content)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._error(f"{what} {url} answered HTTP 200 without a JSON object")
        return data

    def _error(self, message: str) -> PublishError:
        return PublishError(secrets.redact(message), where=self.where)


class OAuth2ClientCredentials(_TokenAuth):
    """OAuth2 client-credentials grant (FlowKit's Auth0): JSON body, Bearer header."""

    kind = "oauth2_client_credentials"

    def _configure(self, config: dict) -> None:
        self.token_url = self.require("token_url")
        self.client_id = self.require("client_id")
        self.client_secret = self.require("client_secret")
        secrets.register(self.client_secret)
        self.audience = config.get("audience")

    async def _fetch(self, client: httpx.AsyncClient) -> tuple[str, float | None]:
        body: dict[str, Any] = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.audience:
            body["audience"] = self.audience
        body["grant_type"] = "client_credentials"
        data = await self._call(client, "POST", self.token_url, "token request to", json=body)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._error(f"token request to {self.token_url} answered no access_token")
        try:
            lifetime: float | None = float(data["expires_in"])
        except (KeyError, TypeError, ValueError):
            lifetime = _jwt_lifetime(token)
        return token, lifetime

    async def apply(self, client: httpx.AsyncClient, request_headers: dict[str, str],
                    cookies: dict[str, str]) -> None:
        request_headers["Authorization"] = f"Bearer {await self.token(client)}"


class Login3(_TokenAuth):
    """UOIS two-step login: GET a key, POST key + username + password, get a JWT.

    The token always goes as `Authorization: Bearer` (the production front end forwards
    only that header); `token_in: cookie` (the default) sends the `authorization` cookie too.
    """

    kind = "login3"

    def _configure(self, config: dict) -> None:
        self.login_url = self.require("login_url")
        self.username = self.require("username")
        self.password = self.require("password")
        secrets.register(self.password)
        self.token_in = str(config.get("token_in") or "cookie")
        if self.token_in not in ("cookie", "header"):
            raise PublishError(f"auth.token_in must be cookie or header, not {self.token_in!r}",
                               where=self.where)

    async def _fetch(self, client: httpx.AsyncClient) -> tuple[str, float | None]:
        """A fresh key for every POST (a used key answers 303 to ./login3); a failed login is
        tried again from a new key, and the error reported is the first answer, not the 303s
        or repeats that follow it."""
        first: CallError | None = None
        repeats = self.policy.tracker()
        for attempt in range(1, self.policy.max_attempts + 1):
            data = await self._call(client, "GET", self.login_url, "login key request to")
            key = data.get("key")
            if not key:
                raise self._error(f"login key request to {self.login_url} answered no key")
            body = {"key": key, "username": self.username, "password": self.password}
            try:
                data = await self._call(client, "POST", self.login_url, "login to",
                                        retry=False, json=body)
            except CallError as exc:
                first = first or exc
                blip = exc.status is None or exc.status >= 500
                if not blip or repeats.exhausted(exc.status, exc.body) \
                        or attempt == self.policy.max_attempts:
                    raise first from None
                await self.clock.sleep(self.policy.backoff(attempt))
                continue
            token = data.get("token")
            if not isinstance(token, str) or not token:
                raise self._error(f"login to {self.login_url} answered no token "
                                  "(wrong username or password?)")
            return token, _jwt_lifetime(token)
        raise first or self._error(f"login to {self.login_url} failed")

    async def apply(self, client: httpx.AsyncClient, request_headers: dict[str, str],
                    cookies: dict[str, str]) -> None:
        token = await self.token(client)
        request_headers["Authorization"] = f"Bearer {token}"
        if self.token_in == "cookie":
            cookies["authorization"] = token


AUTH_TYPES: dict[str, type[Auth]] = {
    "none": Auth,
    "bearer": BearerAuth,
    "oauth2_client_credentials": OAuth2ClientCredentials,
    "login3": Login3,
}


def make_auth(config: dict | None, *, endpoint: str = "", clock: Clock | None = None,
              policy: RetryPolicy | None = None) -> Auth:
    """The Auth for an endpoint's `auth:` mapping (already rendered from env vars)."""
    if clock is None:
        clock = SystemClock()
    if not config:
        return Auth({}, endpoint, clock, policy)
    if not isinstance(config, dict):
        raise PublishError("`auth` must be a mapping", where=f"endpoint {endpoint}")
    kind = str(config.get("type") or "none")
    if kind not in AUTH_TYPES:
        raise PublishError(f"unknown auth type {kind!r}; expected one of: "
                           f"{', '.join(AUTH_TYPES)}", where=f"endpoint {endpoint}")
    return AUTH_TYPES[kind](config, endpoint, clock, policy)
