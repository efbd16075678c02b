"""A process-wide register of secret values (from env vars), so any output can be redacted."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

_SECRETS: set[str] = set()
_LONGEST_FIRST: tuple[str, ...] = ()  # a secret containing another is replaced whole
MIN_LENGTH = 4  # shorter values would blank out ordinary text wherever they occur


def _forms(value: str) -> set[str]:
    """The value as written, and as a server echoing it back writes it: inside a JSON string
    (`\\"`, `\\\\`, `\\u00fc`) or URL-encoded (a form body, a query string)."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
            quote(value, safe=""), quote_plus(value)}


def register(value: str | None) -> None:
    """Remember a value that must never be printed, logged or stored."""
    global _LONGEST_FIRST
    if not value or len(value) < MIN_LENGTH or value in _SECRETS:
        return
    _SECRETS.update(_forms(value))
    _LONGEST_FIRST = tuple(sorted(_SECRETS, key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _LONGEST_FIRST:
        text = text.replace(secret, "***")
    return text
