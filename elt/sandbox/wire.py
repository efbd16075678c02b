"""Request/response values shared by the server and the two service emulations.

Kept apart from server.py so flowkit.py and uois.py stay plain functions of a Request
(testable without sockets) and the server owns all socket handling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any


@dataclass
class Request:
    """One HTTP request, body already read (and gunzipped where the route decodes gzip)."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    gzipped: bool = False  # the client sent Content-Encoding: gzip
    delay: float = 0.0  # seconds to hold the request "in flight" (slow fault, X-Sandbox-Delay)
    commit_late: bool = False  # slow_commit fault: the hold is inside the write, answer lost

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Response:
    """What the handler writes back; `reset` means: answer nothing, reset the connection."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False


class Reply(Exception):
    """Raised deep in a handler to answer at once (validation failures, auth errors)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(value, separators=(",", ":"), default=str).encode()
    return Response(status, body, "application/json", dict(headers or {}))


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8", dict(headers or {}))


def internal_error() -> Response:
    """FastAPI's bare 500: what the real services answer for validation failures too."""
    return text_response(500, "Internal Server Error")


def parse_json(body: bytes) -> Any:
    """Decode a JSON body; raise ValueError (the caller decides the status)."""
    return json.loads(body.decode("utf-8"))
