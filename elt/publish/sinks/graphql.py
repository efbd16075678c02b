"""GraphQL sink: one .gql operation per row, or n aliased copies of it in one document.

Database errors come back as HTTP 200 with `errors` (UOIS), so outcomes are read per field:
an error whose `path[0]` names a field's alias fails that row only. An error without a path
(gql_ug) fails the row whose key its database error names; the fields before it were
committed, the ones after it were not run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from elt.core.secrets import scrub
from elt.http.graphql import (
    VarMapper,
    batch_alias,
    build_batched_document,
    read_document,
    variable_names,
)
from elt.http.messages import Request, answer_text, as_text, encode_json, pick, truncate
from elt.publish.sinks.base import (
    ACKNOWLEDGED,
    ALREADY_THERE,
    CHANGED_MEANWHILE,
    FAILED,
    NOT_RUN,
    UNRESOLVED,
    Outcome,
    Row,
    Sink,
    sub_config,
)

KEY_DETAIL = re.compile(r"Key \([^)]*\)=\(([^)]*)\)")  # PostgreSQL's DETAIL: the row's key


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        msg = err.get("message") or err.get("msg")
        return str(msg) if msg else json.dumps(err, default=str)
    return str(err)


def _failing_row(rows: tuple[Row, ...], errors: list[str]) -> int | None:
    """Which row an error without a path is about, when its database error names a key
    (`Key (id)=(...) already exists`, `Key (group_id)=(...) is not present`): gql_ug runs
    the fields in order and stops at the first failure, so the first row whose variables
    hold every value of that key failed; the ones before it were committed."""
    for text in errors:
        found = KEY_DETAIL.search(text)
        if not found:
            continue
        values = {v.strip().lower() for v in found.group(1).split(",")}
        for i, row in enumerate(rows):
            held = row.body.values() if isinstance(row.body, dict) else ()
            if values <= {str(v).lower() for v in held if v is not None}:
                return i
    return None


def _without_echo(text: str | None, request: Request) -> str | None:
    """An answer that echoes the request's variables back (UOIS's 401: `["Unauthenticated",
    <query>, <variables>]`, measured as a Python repr string) is recorded without them: they
    are the row's data (emails)."""
    try:
        variables = json.loads(request.content)["variables"]
    except (ValueError, KeyError, TypeError):
        return text
    try:
        answer = json.loads(text or "")
    except ValueError:
        answer = None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if isinstance(errors, list) and variables in errors:
        answer["errors"] = ["<the request's variables>" if e == variables else e for e in errors]
        text = json.dumps(answer)
    return scrub(text, variables) if text else text  # echoed in any other encoding


def _same(value: Any, expected: Any) -> bool:
    return value == expected or (value is not None and str(value) == str(expected))


class _Doc:
    """One operation's document, with its aliased batches built on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text, op, field = read_document(path)
        self.variables = variable_names(op)
        self.response_key = (field.alias or field.name).value
        self._batched: dict[int, tuple[str, VarMapper]] = {}

    def batched(self, n: int) -> tuple[str, VarMapper]:
        if n not in self._batched:  # a benign race if two threads build the same n
            self._batched[n] = build_batched_document(self.text, n, source=str(self.path))
        return self._batched[n]


class GraphQLSink(Sink):
    """Variables come from the row body by the document's variable names; bodies never gzip."""

    kind = "graphql"

    def __init__(self, name: str, config: dict, base_dir: Path) -> None:
        super().__init__(name, config, base_dir)
        gql = sub_config(self.config, "graphql")
        if not (gql.get("document") or gql.get("insert")):
            raise self.error("`graphql.document` (a .gql file) is required")
        if str(gql.get("compression") or "none") != "none":
            raise self.error("graphql bodies are never compressed (UOIS does not decode gzip)")
        # one document per op: `document` (or `insert`), `update`, `delete`
        self.docs: dict[str, _Doc] = {}
        for op, option in (("insert", "insert"), ("insert", "document"), ("update", "update"),
                           ("delete", "delete")):
            if gql.get(option) and op not in self.docs:
                self.docs[op] = _Doc(self.base_dir / str(gql[option]))
        if self.mode in ("upsert", "mirror") and "update" not in self.docs:
            raise self.error(f"mode {self.mode} needs `graphql.update` (a .gql mutation)")
        if self.mode == "mirror" and "delete" not in self.docs:
            raise self.error("mode mirror deletes rows but `graphql.delete` is not configured")
        insert = self.docs["insert"]
        self.document_path, self.document_text = insert.path, insert.text
        self.variables, self.response_key = insert.variables, insert.response_key
        self.result_path = gql.get("result")
        self.success = gql.get("success")
        there = gql.get("already_there") or []
        self.already_there = list(there) if isinstance(there, list) else [there]
        # Results of an update meaning "the row changed since you read it" (gql_ug answers
        # a stale `lastchange` with msg "fail"): re-read once, then failed with the answer.
        meanwhile = gql.get("changed_meanwhile") or []
        self.changed_meanwhile = (list(meanwhile) if isinstance(meanwhile, list)
                                  else [meanwhile])
        # Error texts that mean "a row with this id exists" (e.g. UniqueViolation): for an
        # insert-only publication such a row is there, not failed forever.
        marks = gql.get("already_there_errors") or []
        self.already_there_errors = [str(m).lower() for m in
                                     (marks if isinstance(marks, list) else [marks])]
        self.answer_path = gql.get("answer")
        headers = gql.get("headers") or {}
        self.headers = {str(k): str(v) for k, v in dict(headers).items()}
        if self.batch_size > 1:  # fail at construction, not mid-run: two copies rewrite
            for doc in self.docs.values():  # the AST as n do (n is built when a batch needs it)
                doc.batched(2)

    def can(self, op: str) -> bool:
        return op in self.docs

    def _document_for(self, n: int, op: str = "insert") -> tuple[str, VarMapper]:
        return self.docs[op].batched(n)

    # -- encode ------------------------------------------------------------------------
    def encode(self, rows: list[Row]) -> list[Request]:
        by_op: dict[str, list[Row]] = {}
        for row in rows:
            by_op.setdefault(row.op, []).append(row)
        requests = []
        for op, group in by_op.items():
            if op not in self.docs:
                raise self.error(f"row {group[0].key}: op {op!r} has no `graphql.{op}` "
                                 "document configured")
            doc = self.docs[op]
            for chunk in self.chunks(group):
                values = [self._row_variables(row, doc.variables) for row in chunk]
                if self.batch_size == 1:
                    query, variables = doc.text, values[0]
                else:
                    query, mapper = doc.batched(len(chunk))
                    variables = mapper(values)
                content = encode_json({"query": query, "variables": variables})
                headers = {"Content-Type": "application/json", **self.headers}
                requests.append(Request("POST", "", content, headers, tuple(chunk)))
        return requests

    def _row_variables(self, row: Row, names: list[str]) -> dict[str, Any]:
        if not isinstance(row.body, dict):
            raise self.error(f"row {row.key}: the body must be a JSON object of variables")
        return {name: row.body[name] for name in names if name in row.body}

    # -- interpret ---------------------------------------------------------------------
    def interpret(self, request: Request, status: int, body: bytes) -> list[Outcome]:
        if status != 200:
            text = _without_echo(answer_text(body), request)
            return self.fail_all(request, truncate(text) or f"HTTP {status}", status)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            text = truncate(body.decode("utf-8", "replace")) or "empty"
            return self.fail_all(request, f"not a GraphQL answer: {text}", status)
        rows = request.rows
        doc = self.docs.get(rows[0].op if rows else "insert") or self.docs["insert"]
        keys = ([doc.response_key] if self.batch_size == 1
                else [batch_alias(i) for i in range(len(rows))])
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        by_key: dict[str, list[str]] = {}
        general: list[str] = []
        for err in payload.get("errors") or []:
            path = err.get("path") if isinstance(err, dict) else None
            if isinstance(path, list) and path and path[0] in keys:
                by_key.setdefault(path[0], []).append(_error_message(err))
            else:
                general.append(_error_message(err))
        # An error without a path in a document of several fields (UOIS gql_ug): the fields
        # before the failing one are committed, later ones were not run; which is which the
        # answer does not say.
        unattributed = bool(general) and sum(data.get(k) is None for k in keys) > 1
        failing = _failing_row(rows, general) if unattributed else None
        outcomes = []
        for i, (row, key) in enumerate(zip(rows, keys, strict=True)):
            value = data.get(key)
            if key in by_key:
                outcomes.append(self._failed(row, "; ".join(by_key[key])))
            elif value is None and unattributed and i == failing:
                outcomes.append(self._failed(row, "; ".join(general)))
            elif value is None and unattributed:
                state = NOT_RUN if failing is not None and i > failing else UNRESOLVED
                outcomes.append(self._outcome(row, state, "; ".join(general)))
            elif value is None and general:
                outcomes.append(self._failed(row, "; ".join(general)))
            elif key not in data:
                outcomes.append(self._outcome(row, FAILED, f"the answer has no field {key!r}"))
            else:
                outcomes.append(self._judge(row, value, doc.response_key))
        return outcomes

    def _failed(self, row: Row, message: str) -> Outcome:
        """A field's error: failed, unless it is one the publication declares "already there"."""
        text = message.lower()
        if any(mark in text for mark in self.already_there_errors):
            # no answer worth keeping: the error text carries SQL parameters (emails)
            return self._outcome(row, ALREADY_THERE, None)
        return self._outcome(row, FAILED, message)

    def _judge(self, row: Row, value: Any, field: str) -> Outcome:
        answer = as_text(pick(value, self.answer_path, field))
        if self.success is None:
            return self._outcome(row, ACKNOWLEDGED, answer)
        result = pick(value, self.result_path, field)
        if _same(result, self.success):
            return self._outcome(row, ACKNOWLEDGED, answer)
        if row.op == "update" and any(_same(result, v) for v in self.changed_meanwhile):
            return self._outcome(row, CHANGED_MEANWHILE, f"changed meanwhile: {as_text(value)}")
        if any(_same(result, v) for v in self.already_there):
            return self._outcome(row, ALREADY_THERE, answer)
        if result is None:
            return self._outcome(row, FAILED, f"no {self.result_path} in {as_text(value)}")
        return self._outcome(row, FAILED, as_text(result))

    def _outcome(self, row: Row, status: str, answer: str | None) -> Outcome:
        return Outcome(row.key, status, 200, truncate(answer), row.op)
