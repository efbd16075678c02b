"""What goes over the wire and what comes back, shared by API sources and publish.

Requests are plain data (method, path, bytes, headers) so encoding can run in a worker thread
and be tested without a server; answers are read into short ledger-safe texts.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from typing import Any

try:  # a declared dependency; zlib still serves where no isal wheel installs
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover - depends on the platform
    _igzip = None

from elt.core import secrets

ANSWER_LIMIT = 500
# Level of gzip bodies unless the endpoint sets `gzip_level`. The publisher shares its cores
# with the rest of the machine (on the benchmark, with the receiver), and on a LAN or any
# link over ~10 Mbit/s per request in flight the saved CPU is worth more than the bytes;
# raise it for a slow uplink.
GZIP_LEVEL = 1
# Levels up to this one use ISA-L's deflate (python-isal): on a 50 kB FlowKit body its
# level 1 takes 0.09 ms of CPU for 1/8.2 of the size, zlib's level 1 0.28-0.32 ms for 1/7.6
# (zlib's level 5: 0.65 ms). Higher levels use zlib, whose levels go further.
ISAL_MAX_LEVEL = 3


def gzip_body(content: bytes, level: int = GZIP_LEVEL) -> bytes:
    """A request body as one gzip member (no timestamp, so equal bodies give equal bytes)."""
    if level <= ISAL_MAX_LEVEL and _igzip is not None:
        return _igzip.compress(content, level, mtime=0)
    return gzip.compress(content, compresslevel=level, mtime=0)


@dataclass(frozen=True)
class Request:
    """One HTTP request; `path` "" means the GraphQL path. `rows` is the caller's:
    publish attaches the rows a request carries, the transport never looks at them."""

    method: str
    path: str
    content: bytes
    headers: dict[str, str]
    rows: tuple[Any, ...] = ()  # what the caller attaches (publish: its rows)



class RawJSON(str):
    """A body that is already JSON text (the pending set's body column): sent as it is,
    with no decode + encode round trip per row."""

    __slots__ = ()


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; dates and decimals that slipped through become strings."""
    if isinstance(value, RawJSON):
        return value.encode()
    if isinstance(value, list) and any(isinstance(v, RawJSON) for v in value):
        return b"[" + b",".join(encode_json(v) for v in value) + b"]"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def as_text(value: Any) -> str | None:
    """A JSON value as the ledger's answer text: strings bare, everything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def answer_text(body: bytes) -> str | None:
    """A response body as answer text: a JSON scalar or string decoded (`17`, `"ok"`)."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict | list):
        return text
    return as_text(value)


# A database error's bound values (SQLAlchemy's `[parameters: (...)]`: the row's own data,
# emails included, as UOIS answers them) are never recorded; its SQL and DETAIL are.
SQL_PARAMETERS = re.compile(r"\[parameters: .*?\)\]", re.DOTALL)


def truncate(text: str | None, limit: int = ANSWER_LIMIT) -> str | None:
    """Shorten an answer for the ledger; secrets are redacted first, so a cut can never
    leave part of a secret behind where redaction would no longer find it, and a database
    error's parameters are left out."""
    if text is None:
        return text
    text = SQL_PARAMETERS.sub("[parameters: not recorded]", secrets.redact(text))
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def pick(value: Any, path: str | None, skip_first: str | None = None) -> Any:
    """Follow a dotted path (`a.b.0.c`) into a decoded answer; None where it leads nowhere.

    A leading `skip_first` segment names the GraphQL field itself (`result.msg` as written
    in YAML examples) and is skipped.
    """
    if not path:
        return value
    parts = str(path).split(".")
    if skip_first and parts[0] == skip_first:
        parts = parts[1:]
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
