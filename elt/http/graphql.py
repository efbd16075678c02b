"""GraphQL documents: read one operation from a .gql file, batch it as aliased copies.

Used by API sources (lookups) and by the GraphQL sink alike. The rewrite works on the parsed
AST, never on text, so strings and comments that look like variables are left alone.
"""

from __future__ import annotations

import dataclasses
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

from elt.core.errors import PublishError

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
