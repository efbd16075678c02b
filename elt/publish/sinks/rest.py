"""REST sink: one JSON body per row (FlowKit /data) or a JSON array / NDJSON per batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from elt.http.messages import (
    GZIP_LEVEL,
    Request,
    answer_text,
    as_text,
    encode_json,
    gzip_body,
    truncate,
)
from elt.publish.sinks.base import (
    ACKNOWLEDGED,
    ALREADY_THERE,
    FAILED,
    NOT_THERE,
    Outcome,
    Row,
    Sink,
    sub_config,
)

DEFAULT_SUCCESS = (200, 201, 202, 204)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class RestSink(Sink):
    """Maps each op to its configured method and path; reads status codes into outcomes."""

    kind = "rest"
    raw_bodies = True  # bodies are only re-emitted as JSON: no decode per row
    gzip_level = GZIP_LEVEL  # the endpoint's `gzip_level`, set by the runner

    def __init__(self, name: str, config: dict, base_dir: Path) -> None:
        super().__init__(name, config, base_dir)
        rest = sub_config(self.config, "rest")
        self.ops: dict[str, tuple[str, str]] = {"insert": ("POST", "")}
        for op in ("insert", "update", "delete"):
            if rest.get(op) is not None:
                self.ops[op] = self._op(op, rest[op])
        # Missing ops are caught here, before anything is sent, not at the first changed row.
        if self.mode in ("upsert", "mirror") and "update" not in self.ops:
            raise self.error(f"mode {self.mode} needs `rest.update` (method and path)")
        if self.mode == "mirror" and "delete" not in self.ops:
            raise self.error("mode mirror deletes rows but `rest.delete` is not configured")
        self.success = self._statuses("success", rest.get("success", DEFAULT_SUCCESS))
        self.already_there = self._statuses("already_there", rest.get("already_there", ()))
        self.not_found = self._statuses("not_found", rest.get("not_found", (404,)))
        self.compression = str(rest.get("compression") or "none")
        if self.compression not in ("gzip", "none"):
            raise self.error(f"rest.compression must be gzip or none, not {self.compression!r}")
        self.format = str(rest.get("format") or self.config.get("format") or "json")
        if self.format not in ("json", "ndjson"):
            raise self.error(f"rest.format must be json or ndjson, not {self.format!r}")
        headers = rest.get("headers") or {}
        if not isinstance(headers, dict):
            raise self.error("rest.headers must be a mapping")
        self.headers = {str(k): str(v) for k, v in headers.items()}

    def _op(self, op: str, spec: Any) -> tuple[str, str]:
        if not isinstance(spec, dict):
            raise self.error(f"rest.{op} must be a mapping with method and path")
        method = str(spec.get("method") or "POST").upper()
        if method not in METHODS:
            raise self.error(f"rest.{op}.method {method!r} is not one of {', '.join(METHODS)}")
        path = str(spec.get("path") or "")
        if not path:
            raise self.error(f"rest.{op} needs a `path` (e.g. /data)")
        if not path.startswith("/"):
            path = "/" + path
        if "{" in path or "}" in path:  # it would go out as %7Bid%7D: refuse it up front
            raise self.error(f"rest.{op}.path {path!r}: one path per op, no templates: the "
                             "row's key travels in its body")
        return method, path

    def _statuses(self, what: str, value: Any) -> frozenset[int]:
        values = [value] if isinstance(value, int) else value
        try:
            return frozenset(int(v) for v in values)
        except (TypeError, ValueError):
            raise self.error(f"rest.{what} must be a list of HTTP status codes") from None

    def can(self, op: str) -> bool:
        return op in self.ops

    # -- encode ------------------------------------------------------------------------
    def encode(self, rows: list[Row]) -> list[Request]:
        if self.batch_size == 1:
            return [self._request(row.op, [row]) for row in rows]
        by_op: dict[str, list[Row]] = {}
        for row in rows:
            by_op.setdefault(row.op, []).append(row)
        return [self._request(op, chunk) for op, group in by_op.items()
                for chunk in self.chunks(group)]

    def _request(self, op: str, rows: list[Row]) -> Request:
        if op not in self.ops:
            raise self.error(f"row {rows[0].key}: op {op!r} has no `rest.{op}` configured")
        method, path = self.ops[op]
        if self.batch_size == 1:
            content, ctype = encode_json(rows[0].body), "application/json"
        elif self.format == "ndjson":
            content = b"".join(encode_json(r.body) + b"\n" for r in rows)
            ctype = "application/x-ndjson"
        else:
            content, ctype = encode_json([r.body for r in rows]), "application/json"
        headers = {"Content-Type": ctype}
        if self.compression == "gzip":
            content = gzip_body(content, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        headers.update(self.headers)
        return Request(method, path, content, headers, tuple(rows))

    # -- interpret ---------------------------------------------------------------------
    def interpret(self, request: Request, status: int, body: bytes) -> list[Outcome]:
        rows = request.rows
        if status in self.success or status in self.already_there:
            state = ACKNOWLEDGED if status in self.success else ALREADY_THERE
            answers = self._answers(body, len(rows))
            return [Outcome(r.key, state, status, a, r.op)
                    for r, a in zip(rows, answers, strict=True)]
        text = truncate(answer_text(body)) or f"HTTP {status}"
        return [Outcome(r.key, NOT_THERE if r.op == "update" and status in self.not_found
                        else FAILED, status, text, r.op) for r in rows]

    @staticmethod
    def _answers(body: bytes, n: int) -> list[str | None]:
        """A batch answered with a JSON array of n items gives each row its own answer."""
        if n > 1:
            try:
                value = json.loads(body)
            except ValueError:
                value = None
            if isinstance(value, list) and len(value) == n:
                return [truncate(as_text(v)) for v in value]
        return [truncate(answer_text(body))] * n
