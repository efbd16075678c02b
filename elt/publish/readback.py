"""A publication's `read:` request: ask the endpoint what it holds for a batch of rows.

One read layer serves three uses: the current `lastchange` an update needs (gql_ug's
optimistic concurrency), a look before inserting rows the ledger does not know (so rows
another checkout or a lost ledger already sent are recorded `already_there` without a write),
and `elt verify` (what the API holds against the model and the ledger).

```yaml
read:                                   # GraphQL: one query field, batched as aliases
  document: uois/user_by_id.gql         # variables from the row (key columns and body)
  result: result                        # path inside the field's data (optional)
  match: {outer_id: outerId}            # a list result: the items whose fields equal the row's
                                        # (`$`: the item itself)
  compare: {name: name, email: email}   # body field -> answer field: differs = stale
  provides: {lastchange: lastchange}    # update variables taken from the answer
  answer: id                            # what the ledger records for a row found
  batch_size: 25
  before_insert: true                   # look before inserting rows the ledger does not know
  endpoint: other                       # another endpoint of the target (default: the pub's)
read:                                   # REST: one request per row
  method: POST                          # GET | POST
  path: /query
  body: {category_id: $category_id, start_date: $dt, duration: 1}   # `$col`: the row's value
  params: {id: $id}                     # query string (GET)
  missing: [404]                        # statuses meaning "nothing for this key"
  result: mdids                         # a list: its distinct items count the rows held
```
Sinks keep the writes; this module builds the read requests and reads their answers, and
the caller sends them through the endpoint's Transport.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from elt.core.errors import PublishError
from elt.http.graphql import batch_alias, build_batched_document, read_document, variable_names
from elt.http.messages import Request, answer_text, as_text, encode_json, pick, truncate

_ALLOWED = {"document", "result", "match", "compare", "provides", "answer", "batch_size",
            "before_insert", "endpoint", "method", "path", "body", "params", "missing",
            "headers"}


@dataclass(frozen=True)
class Found:
    """What the endpoint holds for one row: n copies (0 missing, >1 duplicated), the first."""

    n: int
    value: Any = None
    error: str | None = None  # the read itself failed: nothing is known


Send = Callable[[Request], Awaitable[Any]]


def _mapping(spec: dict, name: str, where: str) -> dict[str, str]:
    value = spec.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PublishError(f"`read.{name}` must be a mapping of names to answer fields",
                           where=where)
    return {str(k): v for k, v in value.items()}


class ReadBack:
    """The parsed `read:` of one publication; pure apart from `read` (which sends)."""

    def __init__(self, publication: str, kind: str, spec: dict[str, Any], base_dir: Path,
                 default_endpoint: str) -> None:
        where = f"publication {publication}"
        self.where = where
        unknown = sorted(set(spec) - _ALLOWED)
        if unknown:
            raise PublishError(f"unknown `read:` setting(s) {', '.join(unknown)} (allowed: "
                               f"{', '.join(sorted(_ALLOWED))})", where=where)
        self.kind = kind
        self.endpoint = str(spec.get("endpoint") or default_endpoint)
        self.result_path = spec.get("result")
        self.answer_path = spec.get("answer")
        self.match = _mapping(spec, "match", where)
        self.compare = _mapping(spec, "compare", where)
        self.provides = _mapping(spec, "provides", where)
        self.before_insert = bool(spec.get("before_insert", True))
        self.headers = {str(k): str(v) for k, v in dict(spec.get("headers") or {}).items()}
        size = spec.get("batch_size", 25 if kind == "graphql" else 1)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise PublishError("`read.batch_size` must be a positive integer", where=where)
        if kind == "graphql":
            if not spec.get("document"):
                raise PublishError("`read.document` (a .gql query) is required", where=where)
            self.document_path = base_dir / str(spec["document"])
            self.document, op, field = read_document(self.document_path)
            self.variables = variable_names(op)
            self.field = (field.alias or field.name).value
            self.batch_size = size
            self._batched: dict[int, Any] = {}
        else:
            self.method = str(spec.get("method") or "GET").upper()
            if self.method not in ("GET", "POST"):
                raise PublishError("`read.method` must be GET or POST", where=where)
            self.path = str(spec.get("path") or "")
            if not self.path.startswith("/"):
                raise PublishError("`read.path` (e.g. /query) is required", where=where)
            self.body = spec.get("body")
            self.params = spec.get("params") or {}
            missing = spec.get("missing", [404])
            self.missing = frozenset(int(m) for m in (missing if isinstance(missing, list)
                                                      else [missing]))
            self.batch_size = 1
            if self.provides:
                raise PublishError("`read.provides` is for GraphQL updates", where=where)

    @staticmethod
    def row_values(key_json: str | None, body: Any) -> dict[str, Any]:
        return row_values(key_json, body)

    # -- requests -----------------------------------------------------------------------
    def requests(self, rows: Sequence[dict[str, Any]]) -> list[Request]:
        """Requests asking about `rows` (variable dicts: key columns and body fields)."""
        out = []
        for start in range(0, len(rows), self.batch_size):
            chunk = tuple(rows[start:start + self.batch_size])
            out.append(self._graphql(chunk) if self.kind == "graphql" else self._rest(chunk))
        return out

    def _graphql(self, chunk: tuple[dict[str, Any], ...]) -> Request:
        values = [{n: r.get(n) for n in self.variables} for r in chunk]
        if len(chunk) == 1:
            query, variables = self.document, values[0]
        else:
            if len(chunk) not in self._batched:
                self._batched[len(chunk)] = build_batched_document(
                    self.document, len(chunk), source=str(self.document_path))
            query, mapper = self._batched[len(chunk)]
            variables = mapper(values)
        content = encode_json({"query": query, "variables": variables})
        return Request("POST", "", content, {"Content-Type": "application/json", **self.headers},
                       chunk)

    def _rest(self, chunk: tuple[dict[str, Any], ...]) -> Request:
        row = chunk[0]
        path = self.path
        if self.params:
            path += "?" + urlencode({k: _fill(v, row) for k, v in dict(self.params).items()})
        content = encode_json(_fill(self.body, row)) if self.body is not None else b""
        headers = {"Content-Type": "application/json", **self.headers} if content else {}
        return Request(self.method, path, content, headers, chunk)

    # -- answers ------------------------------------------------------------------------
    def answers(self, request: Request, status: int | None, body: bytes,
                error: str | None = None) -> list[Found]:
        """One Found per row of the request."""
        n = len(request.rows)
        if status is None:
            return [Found(0, None, error or "no answer")] * n
        if self.kind != "graphql":
            if status in self.missing:
                return [Found(0)]
            if status != 200:
                return [Found(0, None, truncate(answer_text(body)) or f"HTTP {status}")]
            try:
                value = json.loads(body)
            except ValueError:
                return [Found(0, None, "the answer is not JSON")]
            return [self._found(request.rows[0], pick(value, self.result_path))]
        try:
            payload = json.loads(body) if status == 200 else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            text = truncate(answer_text(body)) or f"HTTP {status}"
            return [Found(0, None, f"HTTP {status}: {text}")] * n
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        keys = [self.field] if n == 1 else [batch_alias(i) for i in range(n)]
        errors = payload.get("errors") or []
        out = []
        for row, key in zip(request.rows, keys, strict=True):
            if key not in data or (data.get(key) is None and errors):
                out.append(Found(0, None, "the read failed: " + (truncate(json.dumps(
                    errors, default=str)) or "no data")))
                continue
            out.append(self._found(row, pick(data.get(key), self.result_path, self.field)))
        return out

    def _found(self, row: dict[str, Any], value: Any) -> Found:
        if isinstance(value, list):
            if self.match:  # `$`: the item itself (a list of ids, e.g. FlowKit's mdids)
                value = [v for v in value if all(
                    same(row.get(col), v if f == "$" else
                         v.get(f) if isinstance(v, dict) else None)
                    for col, f in self.match.items())]
            distinct = {json.dumps(v, sort_keys=True, default=str) for v in value}
            return Found(len(distinct), value[0] if value else None)
        return Found(0 if value is None else 1, value)

    # -- what the caller does with them ---------------------------------------------------
    def differs(self, row: dict[str, Any], found: Found) -> list[str]:
        """The compared fields whose held value is not the row's (empty: the same)."""
        if found.n != 1:
            return []
        return [col for col, f in self.compare.items() if col in row
                and not same(row.get(col), pick(found.value, f if f != "$" else None))]

    def answer(self, found: Found) -> str | None:
        """What the ledger records for a row found: the declared answer field."""
        path = None if self.answer_path == "$" else self.answer_path  # `$`: the item itself
        return truncate(as_text(pick(found.value, path)))

    def provided(self, found: Found) -> dict[str, Any]:
        """Update variables taken from the answer (e.g. lastchange)."""
        return {var: pick(found.value, f) for var, f in self.provides.items()}

    async def read(self, send: Send, rows: Sequence[dict[str, Any]]) -> list[Found]:
        """Ask about every row (batched, the batches concurrently); one Found per row."""
        requests = self.requests(rows)

        async def one(request: Request) -> list[Found]:
            reply = await send(request)
            return self.answers(request, reply.status, reply.body, reply.error)

        results = await asyncio.gather(*(one(r) for r in requests))
        return [f for batch in results for f in batch]


def _fill(template: Any, row: dict[str, Any]) -> Any:
    """A body or parameter template: strings `$col` become the row's value of col."""
    if isinstance(template, str) and template.startswith("$"):
        return row.get(template[1:])
    if isinstance(template, dict):
        return {k: _fill(v, row) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, row) for v in template]
    return template


def same(a: Any, b: Any) -> bool:
    """Equal as the API would store them: UUIDs and text compared case-insensitively only
    when both are strings that differ just in case of hex digits; numbers by value."""
    if a == b:
        return True
    if a is None or b is None:
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    sa, sb = str(a), str(b)
    return sa == sb or (len(sa) == 36 and sa.lower() == sb.lower())


def row_values(key_json: str | None, body: Any) -> dict[str, Any]:
    """The values a read request is filled from: the key columns, then the body's fields."""
    values: dict[str, Any] = {}
    if key_json:
        try:
            values.update(json.loads(key_json))
        except ValueError:
            pass
    if isinstance(body, str):  # a RawJSON body (REST)
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    if isinstance(body, dict):
        values.update(body)
    return values


def make_readback(pub: Any) -> ReadBack | None:
    """The publication's ReadBack, or None when it declares no `read:`."""
    if not pub.read:
        return None
    return ReadBack(pub.name, pub.kind, pub.read, pub.base_dir, pub.endpoint)
