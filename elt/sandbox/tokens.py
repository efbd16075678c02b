"""HS256 JWTs with the stdlib: the sandbox signs its own tokens, so no JWT library is needed.

Both real services hand out JWTs (Auth0 for FlowKit, login3 for UOIS); clients treat them
as opaque. The real services check only the signature (FlowKit accepts expired and
wrong-audience tokens; UOIS tokens carry no `exp`), so forged tokens are rejected and
expiry and audience are checked only when asked (the sandbox's strict_tokens option).
The real tokens are RS256; HS256 keeps the sandbox on the stdlib and clients never look.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class TokenError(Exception):
    """The token is malformed, forged or expired; the message says which."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: dict[str, Any], secret: str, *, ttl: float | None = None) -> str:
    """Return a compact JWS; with `ttl`, `iat` and `exp` are set from the current time."""
    body = dict(claims)
    if ttl is not None:
        now = int(time.time())
        body.setdefault("iat", now)
        body["exp"] = now + int(ttl)
    header = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64encode(json.dumps(body, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64encode(signature)}"


def verify(token: str, secret: str, *, check_expiry: bool = True,
           audience: str | None = None) -> dict[str, Any]:
    """Check signature and algorithm, optionally expiry and audience; return the claims."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a JWT")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError(f"undecodable: {exc}") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("unsupported algorithm")
    if not isinstance(claims, dict):
        raise TokenError("claims are not an object")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.digest(), signature):
        raise TokenError("bad signature")
    exp = claims.get("exp")
    if check_expiry and exp is not None and (not isinstance(exp, int | float) or exp < time.time()):
        raise TokenError("expired")
    if audience is not None:
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if audience not in auds:
            raise TokenError("wrong audience")
    return claims
