"""A process-wide register of secret values (from env vars), so any output can be redacted."""

from __future__ import annotations

_SECRETS: set[str] = set()


def register(value: str | None) -> None:
    """Remember a value that must never be printed, logged or stored."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
