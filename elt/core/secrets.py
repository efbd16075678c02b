"""A process-wide register of secret values (from env vars), so any output can be redacted."""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

_SECRETS: set[str] = set()
_LONGEST_FIRST: tuple[str, ...] = ()  # a secret containing another is replaced whole
MIN_LENGTH = 4  # shorter values would blank out ordinary text wherever they occur


def _forms(value: str) -> set[str]:
    """The value as written, and as a server echoing it back writes it: inside a JSON string
    (`\\"`, `\\\\`, `\\u00fc`) or URL-encoded (a form body, a query string)."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
            quote(value, safe=""), quote_plus(value)}


def _echoes(value: str) -> set[str]:
    """`_forms`, plus the Python repr a server may echo (gql_ug's 401: `{'email_0': 'a@b'}`)
    and JSON escaping twice (a JSON echo quoted inside another JSON string)."""
    once = _forms(value)
    twice = {json.dumps(form, ensure_ascii=ascii)[1:-1] for form in once for ascii in (True, False)}
    return once | twice | {repr(value)[1:-1]}


def _leaves(value: object) -> Iterable[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)


def scrub(text: str, sent: object, mark: str = "<sent>") -> str:
    """An answer without any value the request carried (a row's personal data as much as a
    secret), in every encoding a server echoes it in: as written, JSON-escaped, Python repr,
    URL-encoded, and cut off where the answer ends (a server truncating its echo)."""
    echoes = sorted({form for leaf in _leaves(sent) if len(leaf) >= MIN_LENGTH
                     for form in _echoes(leaf)}, key=len, reverse=True)
    for echo in echoes:
        text = text.replace(echo, mark)
    body = text.rstrip(".…")
    for echo in echoes:  # the longest prefix of a value that the (cut) answer ends with
        cut = next((n for n in range(len(echo) - 1, MIN_LENGTH - 1, -1)
                    if body.endswith(echo[:n])), 0)
        if cut:
            return body[:-cut] + mark + text[len(body):]
    return text


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
