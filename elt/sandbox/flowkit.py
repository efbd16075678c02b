"""The FlowKit UI backend's REST API under /v1: tokens, auth and routing (see flowkit-api.md).

The point of the sandbox is that a publisher which copes with it copes with the real
service, so every rule below imitates a measured answer of the real backend:
- Auth: only the JWT signature is checked. Expired and wrong-audience tokens are accepted
  (unless the sandbox runs with `strict_tokens`, an option for testing a client's own
  expiry handling); authorisation reads only the `scope` claim, `permissions` grant nothing.
  A missing scope answers 401 `"Invalid token: Required permissions ['write:data'] not
  present"`; `admin` grants no read (/categories and /indicators_for_category answer an
  admin-only token 401 `... ['read:free_data'] not present`, second round), while /query
  takes any valid token and lists what its scopes may see. An undecodable token answers
  401 `"Could not decode token"`, no Authorization header at all a plain 500 `Internal
  Server Error` (not 401).
- GET /heartbeat answers `{datetime, python_version, config{...}}` with no `version`; its
  config exposes (here: fake) database host, user and port, the Auth0 domain and client id
  and many more keys, secrets among them (a database password, the Auth0 client secret).
- /data, /setup, /query, /scope_mapping: see flowkit_data.py and flowkit_reads.py.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import elt.sandbox.tokens as tokens
from elt.sandbox.flowkit_data import DataWriter
from elt.sandbox.flowkit_openapi import OPENAPI
from elt.sandbox.flowkit_reads import Reads
from elt.sandbox.store import Store
from elt.sandbox.wire import Reply, Request, Response, internal_error, json_response, parse_json

SECRET = "sandbox-secret"
AUDIENCE = "https://flowkit-ui-backend.sandbox"
AUTH0_DOMAIN = "elt-sandbox.eu.auth0.com"
CLIENTS: dict[str, list[str]] = {
    "elt-sandbox-admin": ["admin"],
    "elt-sandbox-updater": ["write:data", "read:free_data"],
}
TOKEN_TTL = 86400
# What the real heartbeat leaks (database and Auth0 settings, secrets among them: second
# round), with fake values; HEARTBEAT_SECRETS are the ones a client must never log.
HEARTBEAT_SECRETS = {"db_password": "sandbox-db-password-never-log",
                     "auth0_client_secret": "sandbox-auth0-secret-never-log"}
HEARTBEAT_CONFIG = {
    "db_host": "flowkit-ui-backend-db.sandbox", "db_port": 3306, "db_user": "flowkit",
    "db_name": "flowkit_ui_backend", "auth0_domain": AUTH0_DOMAIN,
    "auth0_client_id": "sandbox-auth0-client-id", "auth0_audience": AUDIENCE,
    "auth0_issuer": f"https://{AUTH0_DOMAIN}/", "cors_origins": ["*"], "log_level": "INFO",
    "flowkit_ui_backend_version": None, "pool_size": 10, **HEARTBEAT_SECRETS,
}

Counter = Callable[[str, str, str], None]  # (service, key, field) -> None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def granted(claims: dict[str, Any]) -> set[str]:
    """What a token may do: its `scope` claim only (the real backend ignores `permissions`)."""
    scope = claims.get("scope")
    return set(scope.split()) if isinstance(scope, str) else set()


class FlowKit:
    """Handlers for /oauth/token and /v1/*; every method takes a Request, returns a Response."""

    def __init__(self, store: Store, counter: Counter, *, null_sink: bool = False,
                 strict_tokens: bool = False) -> None:
        self.store = store
        self.strict_tokens = strict_tokens
        self.data = DataWriter(store, counter, null_sink=null_sink)
        self.reads = Reads(store)

    # -- auth -------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        """Auth0-style client-credentials grant; JSON or form body."""
        try:
            if "json" in (req.header("Content-Type") or "json"):
                body = parse_json(req.body)
            else:
                body = dict(parse_qsl(req.body.decode()))
        except ValueError:
            return json_response(400, {"error": "invalid_request", "error_description": "bad body"})
        if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
            return json_response(
                403, {"error": "unauthorized_client", "error_description": "Grant type not allowed"}
            )
        client = body.get("client_id")
        if client not in CLIENTS or body.get("client_secret") != SECRET:
            denied = {"error": "access_denied", "error_description": "Unauthorized"}
            return json_response(401, denied)
        if body.get("audience") != AUDIENCE:
            msg = f"Service not enabled within domain: {body.get('audience')}"
            return json_response(403, {"error": "access_denied", "error_description": msg})
        scopes = CLIENTS[client]
        claims = {
            "iss": f"https://{AUTH0_DOMAIN}/", "sub": f"{client}@clients", "aud": AUDIENCE,
            "azp": client, "gty": "client-credentials",
            "scope": " ".join(scopes), "permissions": scopes,
        }
        token = tokens.sign(claims, SECRET, ttl=TOKEN_TTL)
        return json_response(200, {"access_token": token, "expires_in": TOKEN_TTL,
                                   "token_type": "Bearer", "scope": claims["scope"]})

    def _claims(self, req: Request, needed: str | None) -> dict[str, Any]:
        """The verified token's claims; Reply 401 unless its `scope` holds `needed` (None: any
        valid token, as /query takes: what it lists depends on the caller's scopes)."""
        header = req.header("Authorization")
        if header is None:
            raise Reply(internal_error())
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise tokens.TokenError("not a bearer token")
            claims = tokens.verify(token.strip(), SECRET, check_expiry=self.strict_tokens,
                                   audience=AUDIENCE if self.strict_tokens else None)
        except tokens.TokenError as exc:
            text = "Token has expired" if str(exc) == "expired" else "Could not decode token"
            raise Reply(json_response(401, text)) from exc
        if needed and needed not in granted(claims):  # admin holds no read:free_data
            raise Reply(
                json_response(401, f"Invalid token: Required permissions ['{needed}'] not present")
            )
        return claims

    # -- routing ----------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Dispatch a request whose path starts with /v1."""
        path, method = req.path[len("/v1"):] or "/", req.method
        try:
            if path == "/heartbeat" and method == "GET":
                return json_response(200, {
                    "datetime": _now().isoformat(),
                    "python_version": platform.python_version(),
                    "config": HEARTBEAT_CONFIG})
            if path == "/openapi.json" and method == "GET":  # FastAPI's, served without a token
                return json_response(200, OPENAPI)
            if path == "/data" and method in ("POST", "PATCH", "DELETE"):
                self._claims(req, "write:data")
                return self.data.handle(req)
            if path == "/setup" and method == "POST":
                self._claims(req, "admin")
                return self.reads.setup(req)
            if path == "/categories" and method == "GET":
                return self.reads.categories(granted(self._claims(req, "read:free_data")))
            if path.startswith("/indicators_for_category/") and method == "GET":
                scopes = granted(self._claims(req, "read:free_data"))
                return self.reads.indicators(scopes, path.rsplit("/", 1)[1])
            if path == "/query" and method == "POST":
                return self.reads.query(req, granted(self._claims(req, None)))
            if path == "/scope_mapping" and method == "POST":
                self._claims(req, "write:data")
                return self.reads.scope_mapping(req)
        except Reply as reply:
            return reply.response
        known = {"/heartbeat", "/data", "/setup", "/categories", "/query", "/scope_mapping"}
        if path in known or path.startswith("/indicators_for_category/"):
            return json_response(405, {"detail": "Method Not Allowed"})
        return json_response(404, {"detail": "Not Found"})

    def ambiguous_keys(self) -> list[str]:
        """Keys stored more than once (the "Ambiguous dataset" state), for /_sandbox/stats."""
        return self.data.ambiguous_keys()
