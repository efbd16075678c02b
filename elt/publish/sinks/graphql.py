"""GraphQL sink: one .gql operation per row, or n aliased copies of it in one document.

Database errors come back as HTTP 200 with `errors` (UOIS), so outcomes are read per field:
an error whose `path[0]` names a field's alias fails that row only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from graphql import GraphQLSyntaxError, Visitor, parse, print_ast, visit
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableDefinitionNode,
    VariableNode,
)

from elt.errors import PublishError
from elt.publish.sinks.base import (
    ACKNOWLEDGED,
    FAILED,
    Outcome,
    Request,
    Row,
    Sink,
    answer_text,
    as_text,
    encode_json,
    pick,
    sub_config,
    truncate,
)

VarMapper = Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]


def batch_alias(i: int) -> str:
    return f"r{i}"


def parse_document(text: str, source: str = "<document>") -> DocumentNode:
    """Parse, turning a syntax error into a PublishError that names file:line:col."""
    try:
        return parse(text)
    except GraphQLSyntaxError as exc:
        where = source
        if exc.locations:
            where += f":{exc.locations[0].line}:{exc.locations[0].column}"
        raise PublishError(f"GraphQL syntax error: {exc.description}", where=where) from None


def read_document(path: Path) -> tuple[str, OperationDefinitionNode, FieldNode]:
    """A .gql file's text, its one operation and its one top-level field; errors name the
    file (and line:col for a syntax error)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PublishError(f"cannot read GraphQL document: {exc.strerror or exc}",
                           where=source) from None
    op, field = single_field(parse_document(text, source), source)
    return text, op, field


def single_field(doc: DocumentNode, source: str) -> tuple[OperationDefinitionNode, FieldNode]:
    """The document's one operation and its one top-level field (what gets aliased)."""
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if len(ops) != 1:
        raise PublishError(f"must hold exactly one operation, found {len(ops)}", where=source)
    fields = ops[0].selection_set.selections
    if len(fields) != 1 or not isinstance(fields[0], FieldNode):
        raise PublishError("the operation must select exactly one top-level field",
                           where=source)
    return ops[0], fields[0]


def variable_names(op: OperationDefinitionNode) -> list[str]:
    return [vd.variable.name.value for vd in op.variable_definitions or ()]


class _Rename(Visitor):
    """Replaces `$name` by `$name_i` everywhere inside one field."""

    def __init__(self, mapping: dict[str, str]) -> None:
        super().__init__()
        self.mapping = mapping

    def enter_variable(self, node: VariableNode, *_: Any) -> VariableNode | None:
        new = self.mapping.get(node.name.value)
        return VariableNode(name=NameNode(value=new)) if new else None


class _Collect(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.found = True


def build_batched_document(
    document_text: str, n: int, *, source: str = "<document>"
) -> tuple[str, VarMapper]:
    """One document with n copies of the field, aliased r0..r{n-1}, variables `$x_i`.

    Rewrites the parsed AST (not the text), so strings and comments that look like
    variables are left alone. The mapper turns n per-row variable dicts into one dict.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    doc = parse_document(document_text, source)
    op, field = single_field(doc, source)
    collect = _Collect()
    for frag in doc.definitions:
        if isinstance(frag, FragmentDefinitionNode):
            visit(frag, collect)
    if collect.found:
        raise PublishError("fragments that use variables cannot be batched", where=source)
    names = variable_names(op)  # `x_i` never clashes: i has no underscore
    definitions: list[VariableDefinitionNode] = []
    fields: list[FieldNode] = []
    for i in range(n):
        mapping = {name: f"{name}_{i}" for name in names}
        for vd in op.variable_definitions or ():
            var = VariableNode(name=NameNode(value=mapping[vd.variable.name.value]))
            definitions.append(dataclasses.replace(vd, variable=var, loc=None))
        copy = visit(field, _Rename(mapping))
        fields.append(dataclasses.replace(copy, alias=NameNode(value=batch_alias(i)), loc=None))
    new_op = dataclasses.replace(
        op, variable_definitions=tuple(definitions),
        selection_set=SelectionSetNode(selections=tuple(fields)), loc=None)
    new_doc = DocumentNode(definitions=tuple(new_op if d is op else d for d in doc.definitions))
    text = print_ast(new_doc)

    def var_mapper(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, values in enumerate(rows):
            for name in names:
                if name in values:
                    out[f"{name}_{i}"] = values[name]
        return out

    return text, var_mapper


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        msg = err.get("message") or err.get("msg")
        return str(msg) if msg else json.dumps(err, default=str)
    return str(err)


def _same(value: Any, expected: Any) -> bool:
    return value == expected or (value is not None and str(value) == str(expected))


class GraphQLSink(Sink):
    """Variables come from the row body by the document's variable names; bodies never gzip."""

    kind = "graphql"

    def __init__(self, name: str, config: dict, base_dir: Path) -> None:
        super().__init__(name, config, base_dir)
        gql = sub_config(self.config, "graphql")
        if not gql.get("document"):
            raise self.error("`graphql.document` (a .gql file) is required")
        if self.mode == "mirror":
            raise self.error("mode mirror needs deletes, which a graphql publication cannot send")
        if str(gql.get("compression") or "none") != "none":
            raise self.error("graphql bodies are never compressed (UOIS does not decode gzip)")
        self.document_path = self.base_dir / str(gql["document"])
        self.document_text, op, field = read_document(self.document_path)
        self.variables = variable_names(op)
        self.response_key = (field.alias or field.name).value
        self.result_path = gql.get("result")
        self.success = gql.get("success")
        there = gql.get("already_there") or []
        self.already_there = list(there) if isinstance(there, list) else [there]
        self.answer_path = gql.get("answer")
        headers = gql.get("headers") or {}
        self.headers = {str(k): str(v) for k, v in dict(headers).items()}
        self._batched: dict[int, tuple[str, VarMapper]] = {}
        if self.batch_size > 1:  # fail at construction, not mid-run
            self._document_for(self.batch_size)

    def _document_for(self, n: int) -> tuple[str, VarMapper]:
        if n not in self._batched:  # a benign race if two threads build the same n
            self._batched[n] = build_batched_document(
                self.document_text, n, source=str(self.document_path))
        return self._batched[n]

    # -- encode ------------------------------------------------------------------------
    def encode(self, rows: list[Row]) -> list[Request]:
        requests = []
        for chunk in self.chunks(rows):
            values = [self._row_variables(row) for row in chunk]
            if self.batch_size == 1:
                query, variables = self.document_text, values[0]
            else:
                query, mapper = self._document_for(len(chunk))
                variables = mapper(values)
            content = encode_json({"query": query, "variables": variables})
            headers = {"Content-Type": "application/json", **self.headers}
            requests.append(Request("POST", "", content, headers, tuple(chunk)))
        return requests

    def _row_variables(self, row: Row) -> dict[str, Any]:
        if row.op == "delete":
            raise self.error(f"row {row.key}: a graphql publication cannot delete")
        if not isinstance(row.body, dict):
            raise self.error(f"row {row.key}: the body must be a JSON object of variables")
        return {name: row.body[name] for name in self.variables if name in row.body}

    # -- interpret ---------------------------------------------------------------------
    def interpret(self, request: Request, status: int, body: bytes) -> list[Outcome]:
        if status != 200:
            return self.fail_all(request, truncate(answer_text(body)) or f"HTTP {status}", status)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            text = truncate(body.decode("utf-8", "replace")) or "empty"
            return self.fail_all(request, f"not a GraphQL answer: {text}", status)
        rows = request.rows
        keys = ([self.response_key] if self.batch_size == 1
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
        outcomes = []
        for row, key in zip(rows, keys, strict=True):
            value = data.get(key)
            if key in by_key:
                outcomes.append(self._outcome(row, FAILED, "; ".join(by_key[key])))
            elif value is None and general:
                outcomes.append(self._outcome(row, FAILED, "; ".join(general)))
            elif key not in data:
                outcomes.append(self._outcome(row, FAILED, f"the answer has no field {key!r}"))
            else:
                outcomes.append(self._judge(row, value))
        return outcomes

    def _judge(self, row: Row, value: Any) -> Outcome:
        answer = as_text(pick(value, self.answer_path, self.response_key))
        if self.success is None:
            return self._outcome(row, ACKNOWLEDGED, answer)
        result = pick(value, self.result_path, self.response_key)
        if _same(result, self.success) or any(_same(result, v) for v in self.already_there):
            return self._outcome(row, ACKNOWLEDGED, answer)
        if result is None:
            return self._outcome(row, FAILED, f"no {self.result_path} in {as_text(value)}")
        return self._outcome(row, FAILED, as_text(result))

    def _outcome(self, row: Row, status: str, answer: str | None) -> Outcome:
        return Outcome(row.key, status, 200, truncate(answer), row.op)
