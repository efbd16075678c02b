"""A process-wide register of secret values (from env vars), so any output can be redacted."""

from __future__ import annotations

_SECRETS: set[str] = set()
_LONGEST_FIRST: tuple[str, ...] = ()  # a secret containing another is replaced whole


def register(value: str | None) -> None:
    """Remember a value that must never be printed, logged or stored."""
    global _LONGEST_FIRST
    if value and len(value) >= 4 and value not in _SECRETS:
        _SECRETS.add(value)
        _LONGEST_FIRST = tuple(sorted(_SECRETS, key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _LONGEST_FIRST:
        text = text.replace(secret, "***")
    return text
