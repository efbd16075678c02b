"""REST sink: one JSON body per row (FlowKit /data, PUT /things/{id}) or a JSON array /
NDJSON per batch.

Each op (insert, update, delete) has its method, path and answers: `success`,
`already_there` and `not_found` statuses (the op's own, else the publication's), and
`answer:` (a dotted path into the JSON answer, or `location`: the last segment of the
answer's Location header) naming what the ledger records as the row's answer. A path or
header value may name the row's columns (`/things/{id}`, `/things/{answer}`: paths.py);
such ops go one row per request. A DELETE whose path names the row sends no body
unless its op says `body: true`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from elt.http.messages import (
    GZIP_LEVEL,
    Request,
    answer_text,
    as_text,
    encode_json,
    gzip_body,
    pick,
    truncate,
)
from elt.publish.paths import ANSWER, MissingValue, Template, TemplateError
from elt.publish.sinks.base import (
    ACKNOWLEDGED,
    ALREADY_THERE,
    FAILED,
    NOT_THERE,
    Outcome,
    Refused,
    Row,
    Sink,
    sub_config,
)

DEFAULT_SUCCESS = (200, 201, 202, 204)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
OP_KEYS = {"method", "path", "success", "already_there", "not_found", "answer", "headers",
           "body"}
LOCATION = "location"  # `answer: location`: the new resource's id from the Location header
KEEP = ""  # an op without `answer:` while another op has one: the recorded id stays


@dataclass(frozen=True)
class Op:
    """One op's request and how its answers read."""

    method: str
    path: Template
    success: frozenset[int]
    already_there: frozenset[int]
    not_found: frozenset[int]
    gone_ok: bool  # delete with its own `not_found`: the key is gone already, as wanted
    answer: str | None  # dotted path into the JSON answer, `location`, KEEP, None: the body
    headers: tuple[tuple[str, Template], ...]
    body: bool  # send the row's body (false: a bare DELETE /things/{id})


class RestSink(Sink):
    """Maps each op to its method and path; reads status codes into outcomes."""

    kind = "rest"
    raw_bodies = True  # bodies are only re-emitted as JSON: no decode per row
    gzip_level = GZIP_LEVEL  # the endpoint's `gzip_level`, set by the runner

    def __init__(self, name: str, config: dict, base_dir: Path) -> None:
        super().__init__(name, config, base_dir)
        rest = sub_config(self.config, "rest")
        self.success = self._statuses("success", rest.get("success", DEFAULT_SUCCESS))
        self.already_there = self._statuses("already_there", rest.get("already_there", ()))
        self.not_found = self._statuses("not_found", rest.get("not_found", (404,)))
        self.answer = self._answer("rest.answer", rest.get("answer"))
        headers = rest.get("headers") or {}
        if not isinstance(headers, dict):
            raise self.error("rest.headers must be a mapping")
        self.headers = self._headers("rest.headers", headers)
        idem = rest.get("idempotency_key", False)
        if idem is not False and idem is not None and not isinstance(idem, bool | str):
            raise self.error("rest.idempotency_key must be true or a header name")
        self.idempotency_header = ("Idempotency-Key" if idem is True
                                   else str(idem) if idem else None)
        self.ops: dict[str, Op] = {}
        for op in ("insert", "update", "delete"):
            if rest.get(op) is not None:
                self.ops[op] = self._op(op, rest[op])
        if "insert" not in self.ops:
            self.ops["insert"] = Op("POST", Template.parse(""), self.success,
                                    self.already_there, self.not_found, False, self.answer,
                                    self.headers, True)  # the endpoint url itself
        if any(o.answer is not None for o in self.ops.values()):
            # `answer: id` on the insert: the PATCH's answer must not replace the id that
            # later paths (`/things/{answer}`) need with its body
            self.ops = {n: o if o.answer is not None else replace(o, answer=KEEP)
                        for n, o in self.ops.items()}
        # Missing ops are caught here, before anything is sent, not at the first changed row.
        if self.mode in ("upsert", "mirror") and "update" not in self.ops:
            raise self.error(f"mode {self.mode} needs `rest.update` (method and path)")
        if self.mode == "mirror" and "delete" not in self.ops:
            raise self.error("mode mirror deletes rows but `rest.delete` is not configured")
        self.fields = tuple(dict.fromkeys(
            f for o in self.ops.values() for t in (o.path, *(h for _, h in o.headers))
            for f in t.fields))
        # rows carry `values` (stream.py) for their templates, or to keep a recorded answer
        self.templated = bool(self.fields) or any(o.answer == KEEP for o in self.ops.values())
        if self.fields and self.batch_size > 1:
            where = next(f"rest.{n}" for n, o in self.ops.items()
                         if o.path.templated or any(h.templated for _, h in o.headers))
            raise self.error(f"{where} names row columns ({', '.join(self.fields)}): such ops "
                             f"go one row per request, so batch_size must be 1 or absent, "
                             f"not {self.batch_size}")
        self.compression = str(rest.get("compression") or "none")
        if self.compression not in ("gzip", "none"):
            raise self.error(f"rest.compression must be gzip or none, not {self.compression!r}")
        self.format = str(rest.get("format") or self.config.get("format") or "json")
        if self.format not in ("json", "ndjson"):
            raise self.error(f"rest.format must be json or ndjson, not {self.format!r}")

    def _op(self, op: str, spec: Any) -> Op:
        if not isinstance(spec, dict):
            raise self.error(f"rest.{op} must be a mapping with method and path")
        unknown = sorted(set(spec) - OP_KEYS)
        if unknown:
            raise self.error(f"rest.{op}: unknown setting(s) {', '.join(unknown)} (allowed: "
                             f"{', '.join(sorted(OP_KEYS))})")
        method = str(spec.get("method") or "POST").upper()
        if method not in METHODS:
            raise self.error(f"rest.{op}.method {method!r} is not one of {', '.join(METHODS)}")
        path = str(spec.get("path") or "")
        if not path:
            raise self.error(f"rest.{op} needs a `path` (e.g. /data or /things/{{id}})")
        if not path.startswith("/"):
            path = "/" + path
        try:
            template = Template.parse(path)
        except TemplateError as exc:
            raise self.error(f"rest.{op}.path {exc}") from None
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict):
            raise self.error(f"rest.{op}.headers must be a mapping")
        not_found = spec.get("not_found")
        return Op(method, template,
                  self._statuses(f"{op}.success", spec.get("success", sorted(self.success))),
                  self._statuses(f"{op}.already_there",
                                 spec.get("already_there", sorted(self.already_there))),
                  self._statuses(f"{op}.not_found",
                                 not_found if not_found is not None else sorted(self.not_found)),
                  op == "delete" and not_found is not None,
                  self._answer(f"rest.{op}.answer", spec.get("answer", self.answer)),
                  (*self.headers, *self._headers(f"rest.{op}.headers", headers)),
                  bool(spec.get("body", not (method == "DELETE" and template.templated))))

    def _answer(self, what: str, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(f"{what} must be a dotted path into the answer (id, data.id) or "
                             "`location`")
        return LOCATION if value.lower() in (LOCATION, "header:location") else value

    def _headers(self, what: str, headers: dict) -> tuple[tuple[str, Template], ...]:
        try:
            return tuple((str(k), Template.parse(str(v))) for k, v in headers.items())
        except TemplateError as exc:
            raise self.error(f"{what}: {exc}") from None

    def _statuses(self, what: str, value: Any) -> frozenset[int]:
        values = [value] if isinstance(value, int) else value
        try:
            return frozenset(int(v) for v in values)
        except (TypeError, ValueError):
            raise self.error(f"rest.{what} must be a list of HTTP status codes") from None

    def can(self, op: str) -> bool:
        return op in self.ops

    def template_params(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """The non-key columns the templates name (the pending set carries them); a delete
        may name only key columns and `answer`: its row is gone from the model."""
        delete = self.ops.get("delete")
        if delete is not None:
            extra = [f for t in (delete.path, *(h for _, h in delete.headers))
                     for f in t.fields if f not in key and f != ANSWER]
            if extra:
                raise self.error(f"rest.delete names {', '.join(extra)}: a deleted row is gone "
                                 f"from the model, so only key columns ({', '.join(key)}) and "
                                 "`answer` can be in its path")
        return tuple(f for f in self.fields if f not in key and f != ANSWER)

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
        spec = self.ops[op]
        values = rows[0].values or {}
        try:
            path = spec.path.render(values)
            extra = [(k, t.render(values, encode=False)) for k, t in spec.headers]
        except MissingValue as exc:
            return Refused(spec.method, spec.path.text, b"", {}, tuple(rows), f"rest.{op}: {exc}")
        bad = next((k for k, v in extra if not v.isascii() or any(c in v for c in "\r\n\0")),
                   None)
        if bad is not None:  # HTTP carries ASCII header values on one line, nothing else
            return Refused(spec.method, spec.path.text, b"", {}, tuple(rows),
                           f"rest.{op}: header {bad} cannot carry the row's value: it is not "
                           "ASCII on one line (encode it in the model, e.g. url_encode)")
        if self.batch_size == 1:
            content, ctype = encode_json(rows[0].body), "application/json"
        elif self.format == "ndjson":
            content = b"".join(encode_json(r.body) + b"\n" for r in rows)
            ctype = "application/x-ndjson"
        else:
            content, ctype = encode_json([r.body for r in rows]), "application/json"
        headers = {"Content-Type": ctype}
        if not spec.body:  # the row is named by its path: a bare request
            content, headers = b"", {}
        if self.compression == "gzip" and content:
            content = gzip_body(content, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        headers.update(extra)
        if self.idempotency_header and len(rows) == 1:
            headers[self.idempotency_header] = idempotency_key(self.name, rows[0])
        return Request(spec.method, path, content, headers, tuple(rows))

    # -- interpret ---------------------------------------------------------------------
    def interpret(self, request: Request, status: int, body: bytes) -> list[Outcome]:
        return self.read_reply(request, status, body)

    def read_reply(self, request: Request, status: int, body: bytes,
                   location: str | None = None) -> list[Outcome]:
        rows = request.rows
        spec = self.ops.get(rows[0].op) if rows else None
        success = spec.success if spec else self.success
        there = spec.already_there if spec else self.already_there
        if status in success or status in there:
            state = ACKNOWLEDGED if status in success else ALREADY_THERE
            answers = self._answers(body, len(rows), spec, location, self.batch_size > 1)
            return [Outcome(r.key, state, status, _kept(a, r), r.op)
                    for r, a in zip(rows, answers, strict=True)]
        text = truncate(answer_text(body)) or f"HTTP {status}"
        not_found = spec.not_found if spec else self.not_found
        if spec is not None and spec.gone_ok and status in not_found:  # already deleted
            return [Outcome(r.key, ACKNOWLEDGED, status, _kept(None, r), r.op) for r in rows]
        return [Outcome(r.key, NOT_THERE if r.op == "update" and status in not_found
                        else FAILED, status, text, r.op) for r in rows]

    @staticmethod
    def _answers(body: bytes, n: int, spec: Op | None, location: str | None,
                 batched: bool = False) -> list[str | None]:
        """A batch (a JSON array sent, even of one row) answered with a JSON array of n items
        gives each row its own answer; `answer:` picks a field of each (or the Location
        header's last segment)."""
        picked = spec.answer if spec else None
        if picked == KEEP:
            return [None] * n
        if picked == LOCATION:
            segment = unquote(urlsplit(location).path.rstrip("/").rpartition("/")[2]) \
                if location else None
            return [truncate(segment or None)] * n
        if batched or picked:
            try:
                value = json.loads(body)
            except ValueError:
                value = None
            if batched and isinstance(value, list) and len(value) == n:
                return [truncate(as_text(pick(v, picked))) for v in value]
            if picked:
                return [truncate(as_text(pick(value, picked)))] * n
        return [truncate(answer_text(body))] * n


def _kept(answer: str | None, row: Row) -> str | None:
    """An answer without the id (a 204 to a PUT) keeps the one recorded before: a later
    update or delete may need it in its path."""
    if answer is None and row.values is not None:
        return row.values.get(ANSWER)
    return answer


def idempotency_key(publication: str, row: Row) -> str:
    """Equal for every resend of the same row version and op (a retry after a timeout, a
    crashed run's resend), different once the row changes: the API can tell a copy from a
    new request."""
    text = "\n".join((publication, row.key, row.op, row.hash))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
